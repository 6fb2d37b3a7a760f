"""Which rule an event misses by one field: the pattern's top-level fields each tried alone (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish.server.control_events import near_miss

EVENT = {"specversion": "1.0", "id": "1", "source": "/warehose", "type": "StockDelivered", "data": {"sku": "net"}}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["/warehouse"], "type": ["StockDelivered"]}, "source"),
        ({"source": [{"prefix": "/ware"}], "type": ["StockDeliverd"]}, "type"),
        ({"source": ["/warehouse"], "type": ["Other"]}, None),  # two fields off: not near
        ({"source": ["/warehose"], "type": ["StockDelivered"]}, None),  # it matches: not a miss
        ({"type": ["Other"]}, None),  # one field: nothing to be near by
        ({"$or": [{"type": ["A"]}, {"type": ["B"]}], "source": ["/warehose"]}, None),  # $or: not judged
        ({"detail-type": ["StockDelivered"], "detail": {"sku": ["nets"]}}, "detail"),  # EventBridge's names
    ],
)
def test_an_event_misses_a_rule_by_one_named_field(pattern: dict[str, Any], expected: str | None) -> None:
    assert near_miss(pattern, EVENT, {}) == expected
