"""The pattern engine against tables of cases (tests/data/patterns/*.json), plus hostile input.

Each operator table lists patterns with events that must match and events
that must not; invalid.json lists patterns EventBridge rejects, with the
reason we give. Every case runs through a dict pattern, the same pattern as
JSON text, and a one-rule RuleSet, so all three entry points agree.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from triggerfish.errors import InvalidEventError, InvalidJSONError, InvalidPatternError
from triggerfish.events._pattern_compile import MAX_ALTERNATIVES, MAX_DEPTH
from triggerfish.events.patterns import Pattern, compile_pattern
from triggerfish.events.ruleset import RuleSet

DATA = Path(__file__).parent / "data" / "patterns"
TABLES = sorted(p for p in DATA.glob("*.json") if p.name != "invalid.json")


def _cases() -> list[Any]:
    cases = []
    for table in TABLES:
        for case in json.loads(table.read_text(encoding="utf-8")):
            for kind in ("match", "no_match"):
                for i, event in enumerate(case[kind]):
                    ident = f"{table.stem}: {case['name']}: {kind}[{i}]"
                    cases.append(pytest.param(case["pattern"], event, kind == "match", id=ident))
    return cases


def _invalid() -> list[Any]:
    cases = json.loads((DATA / "invalid.json").read_text(encoding="utf-8"))
    return [pytest.param(c, id=f"{i}: {c['reason_contains']}") for i, c in enumerate(cases)]


def test_the_tables_cover_every_operator() -> None:
    text = "".join(t.read_text(encoding="utf-8") for t in TABLES)
    for operator in ("prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr"):
        assert f'"{operator}"' in text, operator
    assert '"$or"' in text


@pytest.mark.parametrize(("pattern", "event", "expected"), _cases())
def test_table_case(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.matches(event) is expected
    assert compile_pattern(json.dumps(pattern)).matches(json.dumps(event)) is expected
    rules = RuleSet()
    rules.add("rule", pattern)
    assert rules.matches(event) == (["rule"] if expected else [])


@pytest.mark.parametrize("case", _invalid())
def test_invalid_pattern_is_rejected_with_its_reason(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidPatternError) as caught:
        compile_pattern(case["pattern"])
    assert case["reason_contains"] in caught.value.reason
    if "path" in case:
        assert caught.value.path == case["path"]
        assert f"at {case['path']}:" in str(caught.value)
    # The same pattern as JSON text is rejected for the same reason.
    with pytest.raises(InvalidPatternError, match="invalid event pattern"):
        compile_pattern(json.dumps(case["pattern"]))


def test_a_rejected_pattern_leaves_a_ruleset_unchanged() -> None:
    rules = RuleSet()
    rules.add("keep", {"source": ["a"]})
    with pytest.raises(InvalidPatternError):
        rules.add("keep", {"source": "a"})
    assert rules.matches({"source": "a"}) == ["keep"]
    assert len(rules) == 1


def test_invalid_json_text_is_an_invalid_pattern_keeping_the_json_message() -> None:
    with pytest.raises(InvalidPatternError, match=r"pattern: .*line 1"):
        compile_pattern('{"source": ["a"]')
    with pytest.raises(InvalidPatternError, match="pattern"):
        compile_pattern(b'{"source": ["\xff"]}')
    with pytest.raises(InvalidPatternError, match="pattern"):
        compile_pattern(b'{"source": ["a"], "source": ["\xff"]}')
    with pytest.raises(InvalidPatternError, match="pattern"):
        compile_pattern('{"source": ["\\ud800"]}')
    with pytest.raises(InvalidPatternError, match="pattern"):
        compile_pattern('{"n": [{"numeric": [">", NaN]}]}')


def test_invalid_event_text_is_rejected() -> None:
    pattern = compile_pattern({"source": ["a"]})
    with pytest.raises(InvalidJSONError, match="event"):
        pattern.matches('{"source": "a"')
    with pytest.raises(InvalidJSONError, match="duplicate key"):
        pattern.matches('{"source": "b", "source": "a"}')
    with pytest.raises(InvalidEventError, match="must be a JSON object, not list"):
        pattern.matches('["a"]')
    with pytest.raises(InvalidEventError, match="must be a dict or JSON text"):
        pattern.matches(5)  # type: ignore[arg-type]


def test_python_values_that_are_not_json_are_rejected() -> None:
    with pytest.raises(InvalidPatternError, match="set is not a JSON value") as caught:
        compile_pattern({"source": [{"a"}]})
    assert caught.value.path == "source[0]"
    with pytest.raises(InvalidPatternError, match="field names must be strings"):
        compile_pattern({1: ["a"]})  # type: ignore[dict-item]
    with pytest.raises(InvalidPatternError, match="not a JSON number"):
        compile_pattern({"n": [float("nan")]})
    with pytest.raises(InvalidPatternError, match="not a JSON number"):
        compile_pattern({"n": [{"numeric": [">", float("inf")]}]})
    with pytest.raises(InvalidPatternError, match="a pattern is a JSON object, not a number"):
        compile_pattern(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidPatternError, match="object is not a JSON value"):
        compile_pattern(object())  # type: ignore[arg-type]


def test_tuples_are_arrays_and_the_source_is_a_private_copy() -> None:
    original = {"source": ("a", "b"), "data": {"n": [{"numeric": (">", 1)}]}}
    pattern = compile_pattern(original)
    assert pattern.source == {"source": ["a", "b"], "data": {"n": [{"numeric": [">", 1]}]}}
    original["source"] = ("z",)
    assert pattern.matches({"source": "a", "data": {"n": 2}})
    assert compile_pattern(pattern) is pattern
    assert isinstance(pattern, Pattern)
    assert "Pattern(" in repr(pattern)


def test_deep_nesting_is_rejected_not_a_crash() -> None:
    deep: dict[str, Any] = {"leaf": ["x"]}
    for _ in range(MAX_DEPTH + 5):
        deep = {"a": deep}
    with pytest.raises(InvalidPatternError, match="nested more than"):
        compile_pattern(deep)
    cyclic: dict[str, Any] = {}
    cyclic["a"] = cyclic
    with pytest.raises(InvalidPatternError, match="nested more than"):
        compile_pattern(cyclic)


def test_or_explosion_is_capped() -> None:
    pattern: dict[str, Any] = {}
    level = pattern
    for i in range(12):  # 2**12 combinations
        level["$or"] = [{f"a{i}": ["x"]}, {f"b{i}": ["y"]}]
        level[f"n{i}"] = {}
        level = level[f"n{i}"]
    level["z"] = ["z"]
    with pytest.raises(InvalidPatternError, match=f"more than {MAX_ALTERNATIVES} combinations"):
        compile_pattern(pattern)


def test_hostile_wildcard_matches_in_linear_time() -> None:
    # EventBridge refuses a wildcard this repetitive ("Rule is too complex"); the most it accepts still
    # matches without backtracking.
    with pytest.raises(InvalidPatternError, match="Rule is too complex"):
        compile_pattern({"v": [{"wildcard": "*a" * 40 + "*b"}]})
    pattern = compile_pattern({"v": [{"wildcard": "*a" * 8 + "*b"}]})
    event = {"v": "a" * 50_000}
    started = time.perf_counter()
    assert not pattern.matches(event)
    # Generous: a backtracking matcher would take astronomically long here.
    assert time.perf_counter() - started < 5


def test_hostile_events_do_not_crash_matching() -> None:
    nested: Any = "x"
    for _ in range(100_000):
        nested = [nested]
    pattern = compile_pattern({"data": {"v": ["x"]}})
    assert pattern.matches({"data": {"v": nested}})
    rules = RuleSet()
    rules.add("r", {"data": {"v": ["x"]}})
    assert rules.matches({"data": {"v": nested}}) == ["r"]
    odd = {"data": {"v": object(), "n": float("nan")}}
    assert not compile_pattern({"data": {"n": [{"numeric": [">", 0]}]}}).matches(odd)
    assert not compile_pattern({"data": {"v": [{"anything-but": "x"}]}}).matches({"data": {}})


def test_events_may_be_any_mapping() -> None:
    from types import MappingProxyType

    event = MappingProxyType({"source": "a", "data": MappingProxyType({"items": ({"n": 1},)})})
    assert compile_pattern({"source": ["a"], "data": {"items": {"n": [1]}}}).matches(event)


def test_a_repeated_key_in_pattern_text_is_read_as_eventbridge_reads_it() -> None:
    # The later value wins; objects under a repeated key merge key by key; deep merges too.
    assert compile_pattern('{"a": ["x"], "a": ["y"]}').source == {"a": ["y"]}
    assert compile_pattern(b'{"d": {"a": ["x"]}, "d": {"b": ["y"]}}').source == {"d": {"a": ["x"], "b": ["y"]}}
    deep = compile_pattern('{"d": {"e": {"a": ["x"]}}, "d": {"e": {"a": ["z"], "b": ["y"]}}}')
    assert deep.source == {"d": {"e": {"a": ["z"], "b": ["y"]}}}
    assert compile_pattern('{"d": {"a": ["x"]}, "d": ["y"]}').source == {"d": ["y"]}
    rules = RuleSet()
    rules.add("r", '{"source": ["shop"], "source": ["bank"]}')
    assert rules.matches({"source": "bank"}) == ["r"]
    assert rules.matches({"source": "shop"}) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": ["x"], "a": "y"}', "must be in an array"),  # the later value is checked like any other
        ('{"a": [1], "a": [1e999]}', "overflows a double"),
        ('{"a": [1], "a": [18446744073709551616]}', "outside -2**63..2**64-1"),
        ('{"a": [1], "a": [NaN]}', "invalid JSON"),
    ],
)
def test_repeated_keys_do_not_let_bad_json_through(text: str, reason: str) -> None:
    with pytest.raises(InvalidPatternError, match="invalid event pattern") as caught:
        compile_pattern(text)
    assert reason in str(caught.value)


def test_an_event_with_a_repeated_key_is_still_refused() -> None:
    with pytest.raises(InvalidJSONError, match="duplicate key 'x'"):
        compile_pattern({"x": ["1"]}).matches('{"x": "1", "x": "2"}')


def test_wildcard_complexity_follows_what_eventbridge_is_observed_to_accept() -> None:
    from triggerfish.events._pattern_compile import _wildcard
    from triggerfish.events._wildcard_complexity import LIMIT, complexity

    def measure(*wildcards: str) -> int:
        return complexity(_wildcard(w, "") for w in wildcards)

    assert measure("*.bif", "*.tiff", "*.tif", "*.svs") <= LIMIT  # accepted by EventBridge
    assert measure("*/datasync/*.bif", "*/datasync/*.tif") <= LIMIT  # accepted
    assert measure("*/datasync/*.bif", "*/datasync/*.tif", "*/datasync/*.tiff", "*/datasync/*.svs") > LIMIT
    assert measure("dir/*.png") < measure("*a*a*a*") < measure("*a*a*a*a*a*")
    # Hostile input stays cheap: the measure stops as soon as the limit is passed.
    started = time.perf_counter()
    assert measure(*(f"*{i}*{i}*" for i in range(300))) > LIMIT
    assert time.perf_counter() - started < 5
