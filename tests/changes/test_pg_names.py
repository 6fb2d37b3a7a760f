"""Replication slot names: valid for PostgreSQL, stable, and distinct for every app and function."""

from __future__ import annotations

import re

from triggerfish.names import pg_change_slot


def test_slot_names_are_valid_stable_and_distinct() -> None:
    names = [
        pg_change_slot("shop", "ship-order"),
        pg_change_slot("shop", "ship_order"),  # shortens alike: the hash keeps them apart
        pg_change_slot("Shop", "ship-order"),
        pg_change_slot("shop", "ship-order-" + "x" * 200),
        pg_change_slot("a" * 100, "élan.vital"),
    ]
    for name in names:
        assert re.fullmatch(r"[a-z0-9_]{1,63}", name), name
    assert len(set(names)) == len(names)
    assert pg_change_slot("shop", "ship-order") == names[0] == "tf_shop_ship_order_2397d38f"
