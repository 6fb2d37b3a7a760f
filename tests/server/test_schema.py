"""The control API's body checks (server/schema.py) where a hot operation takes a shortcut."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish.errors import InvalidInputError
from triggerfish.server.schema import AnyValue, Array, Number, Object


def test_an_array_of_any_values_is_checked_for_its_bounds_and_handed_back_as_a_copy() -> None:
    # invoke-batch's events: no check per item, so none is made, but the array's own checks and its copy stay.
    schema = Object({"events": Array(AnyValue(), min_items=1, max_items=3)}, required=("events",))
    events: list[Any] = [{"n": 1}, None, [1.5, "x"]]
    checked = schema.check({"events": events}, "body")
    assert checked == {"events": [{"n": 1}, None, [1.5, "x"]]}
    events.append("later")
    assert checked["events"] == [{"n": 1}, None, [1.5, "x"]]
    with pytest.raises(InvalidInputError, match=r"^body\.events must be an array of 1 to 3 items, not 0$"):
        schema.check({"events": []}, "body")
    with pytest.raises(InvalidInputError, match=r"^body\.events must be an array of 1 to 3 items, not 4$"):
        schema.check({"events": [1, 2, 3, 4]}, "body")
    with pytest.raises(InvalidInputError, match=r"^body\.events must be an array, not an object$"):
        schema.check({"events": {"n": 1}}, "body")


def test_an_array_of_checked_items_names_the_bad_items_index() -> None:
    with pytest.raises(InvalidInputError, match=r"^body\[1\] must be"):
        Array(Number(minimum=0)).check([1, -1], "body")
