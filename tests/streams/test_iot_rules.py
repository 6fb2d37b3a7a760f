"""The IoT rule engine against tables of rules, messages and what each rule makes of them (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish.streams.batches import Item
from triggerfish.streams.iot_rules import compile_rule
from triggerfish.streams.windows import WindowState, returned_state, split_by_window, window_event, window_start

HOT = "SELECT temperature, topic(2) AS room FROM 'home/+/temperature' WHERE temperature > 30"


@pytest.mark.parametrize(
    ("rule", "topic", "payload", "expected"),
    [
        (HOT, "home/kitchen/temperature", {"temperature": 31}, {"temperature": 31, "room": "kitchen"}),
        (HOT, "home/kitchen/temperature", {"temperature": 30}, None),
        (HOT, "home/kitchen/humidity", {"temperature": 40}, None),
        (HOT, "home/kitchen/temperature", {"humidity": 40}, None),  # undefined > 30 is not true
        (HOT, "home/kitchen/temperature", {"temperature": "31"}, None),  # a string is not compared with a number
        ("SELECT * FROM 'home/#'", "home/a/b", {"x": 1}, {"x": 1}),
        ("SELECT * FROM 'home/#'", "home", [1, 2], [1, 2]),
        ("SELECT *, topic() AS t FROM '#'", "a/b", {"x": 1}, {"x": 1, "t": "a/b"}),
        ("SELECT a.b.c FROM '#'", "t", {"a": {"b": {"c": 5}}}, {"c": 5}),
        ("SELECT missing, x FROM '#'", "t", {"x": 1}, {"x": 1}),  # an undefined column is left out
        ("SELECT x * 9 / 5 + 32 AS f FROM '#'", "t", {"x": 100}, {"f": 212.0}),
        ("SELECT x % 3 AS r, -x AS n FROM '#'", "t", {"x": 7}, {"r": 1, "n": -7}),
        ("SELECT x / 0 AS r FROM '#'", "t", {"x": 7}, {}),
        ("SELECT 'it''s' AS s, upper(topic(1)) AS u FROM '#'", "ab/c", {}, {"s": "it's", "u": "AB"}),
        ("SELECT * FROM '#' WHERE a = 1 OR missing > 2", "t", {"a": 1}, {"a": 1}),  # true OR unknown is true
        ("SELECT * FROM '#' WHERE a = 2 OR missing > 2", "t", {"a": 1}, None),
        ("SELECT * FROM '#' WHERE a = 1 AND NOT (b <> 'x')", "t", {"a": 1, "b": "x"}, {"a": 1, "b": "x"}),
        ("SELECT * FROM '#' WHERE flag = true AND n IS_NOT_SUPPORTED", "t", {}, "error"),
        ("SELECT * FROM '#' WHERE round(t) >= 21 AND abs(d) < 1", "t", {"t": 20.6, "d": -0.5}, {"t": 20.6, "d": -0.5}),
        ("SELECT * FROM '#' WHERE lower(s) = 'on'", "t", {"s": "ON"}, {"s": "ON"}),
        ("SELECT * FROM '#' WHERE 1 = 1.0 AND true <> 1", "t", {}, {}),
        ("select * from 'x/+' where v != null", "x/y", {"v": 0}, {"v": 0}),
    ],
)
def test_rules(rule: str, topic: str, payload: Any, expected: Any) -> None:
    if expected == "error":
        with pytest.raises(ValueError, match="unexpected"):
            compile_rule(rule)
        return
    assert compile_rule(rule).apply(topic, payload) == expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "a rule must be SQL text"),
        ("SELECT temperature", "expected FROM '<topic filter>' at 18, found 'the end'"),
        ("SELECT * FROM home", "expected a quoted topic filter after FROM, e.g. 'home/+/temperature' at 14"),
        ("SELECT * FROM home/#", "unexpected character '#' at 19"),
        ("SELECT * FROM 'home/#' WHERE", "expected a value, a field or a function at 28"),
        ("SELECT 1 + 2 FROM '#'", "the expression at 7 needs a name: add AS <name>"),
        ("SELECT * FROM '#' WHERE a ~ 2", "unexpected character '~' at 26"),
        ("SELECT topic(1, 2) AS t FROM '#'", "topic() at 7 takes other arguments"),
        ("SELECT x FROM 'a/+b'", "'+' must be a whole level"),
        ("SELECT (x FROM '#'", "expected ')' at 10"),
    ],
)
def test_bad_rules_say_what_and_where(rule: str, message: str) -> None:
    with pytest.raises(ValueError, match="rule") as caught:
        compile_rule(rule)
    assert message in str(caught.value)


def item(offset: int, arrived: float) -> Item:
    return Item(f"{offset:021d}", arrived, {"n": offset})


def test_windows_split_records_by_arrival_and_shape_lambdas_event() -> None:
    items = [item(1, 119.0), item(2, 120.0), item(3, 179.9), item(4, 180.0), item(5, 100.0)]
    runs = split_by_window(items, 60.0)
    assert [(start, [i.sequence[-1] for i in part]) for start, part in runs] == [
        (60.0, ["1"]),
        (120.0, ["2", "3"]),
        (180.0, ["4"]),
        (60.0, ["5"]),  # late: a run of its own window, in order
    ]
    assert window_start(1_700_000_059.9, 60) == 1_700_000_040
    event = window_event([{"n": 1}], start=0.0, size=60.0, state=None, final=True, shard="partition-000", arn="a")
    assert event["window"] == {"start": "1970-01-01T00:00:00Z", "end": "1970-01-01T00:01:00Z"}
    assert event["state"] == {}
    assert event["isFinalInvokeForWindow"] is True
    assert event["isWindowTerminatedEarly"] is False
    assert returned_state({"state": {"n": 2}}, {"n": 1}) == {"n": 2}
    assert returned_state(None, {"n": 1}) == {"n": 1}, "no state returned keeps the previous one"
    state = WindowState(60.0, {"sum": 3}, 17)
    assert WindowState.decode(state.encode()) == state
