"""RuleSet: many patterns compiled into one automaton, agreeing with Pattern.matches rule by rule."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triggerfish.errors import InvalidInputError, InvalidPatternError
from triggerfish.events.patterns import compile_pattern
from triggerfish.events.ruleset import RuleSet

# --- a small vocabulary, so random patterns and events meet often ---------------------------------

# Dotted names on both sides: EventBridge flattens the pattern and the event, so "a.b" is a -> b.
TOP = ["source", "type", "detail-type", "data", "detail", "subject", "data.a", "detail.b"]
INNER = ["a", "b", "c", "a.b"]
TEXTS = ["", "a", "ab", "abc", "b", "ba", "A", "AB", "10.0.0.7", "2001:db8::1", "a*b"]
NUMBERS = [-1, 0, 0.5, 1, 2, 10, 300, 300.0, 3e2, 5e9]
LEAVES = st.sampled_from([*TEXTS, *NUMBERS, True, False, None])

conditions = st.one_of(
    LEAVES,
    st.builds(lambda t: {"prefix": t}, st.sampled_from(TEXTS)),
    st.builds(lambda t: {"suffix": t}, st.sampled_from(TEXTS)),
    st.builds(lambda t: {"prefix": {"equals-ignore-case": t}}, st.sampled_from(TEXTS)),
    st.builds(lambda t: {"suffix": {"equals-ignore-case": t}}, st.sampled_from(TEXTS)),
    st.builds(lambda t: {"equals-ignore-case": t}, st.sampled_from(TEXTS)),
    st.builds(lambda t: {"wildcard": t}, st.sampled_from(["a*", "*b", "a*b", "*", "*a*", "ab", "\\**"])),
    st.builds(lambda v: {"anything-but": v}, st.sampled_from([*TEXTS[:5], 0, 1, [0, 300], ["b", "ab"]])),
    st.builds(lambda t: {"anything-but": {"prefix": t}}, st.sampled_from(["a", "b", ["a", "ab"], ["b", "A"]])),
    st.builds(lambda t: {"anything-but": {"suffix": t}}, st.sampled_from(["a", "b", ["b", "ab"]])),
    st.builds(lambda t: {"anything-but": {"equals-ignore-case": t}}, st.sampled_from(["a", ["ab", "B"]])),
    st.builds(lambda t: {"anything-but": {"wildcard": t}}, st.sampled_from(["a*", ["*b", "x"]])),
    st.builds(
        lambda op, v: {"numeric": [op, v]}, st.sampled_from(["<", "<=", "=", ">", ">="]), st.sampled_from(NUMBERS)
    ),
    st.builds(
        lambda lo, hi, a, b: {"numeric": [a, min(lo, hi), b, max(lo, hi) + 1]},
        st.sampled_from(NUMBERS[:-1]),
        st.sampled_from(NUMBERS[:-1]),
        st.sampled_from([">", ">="]),
        st.sampled_from(["<", "<="]),
    ),
    st.builds(lambda e: {"exists": e}, st.booleans()),
    st.builds(lambda c: {"cidr": c}, st.sampled_from(["10.0.0.0/24", "2001:db8::/32"])),
)
value_arrays = st.lists(conditions, min_size=1, max_size=3)


def _objects(names: list[str], depth: int, *, with_or: bool) -> st.SearchStrategy[dict[str, Any]]:
    # $or at one level per pattern: several nested ones multiply past the engine's cap on combinations.
    inner: st.SearchStrategy[Any] = value_arrays
    if depth > 0:
        inner = st.one_of(value_arrays, _objects(INNER, depth - 1, with_or=False))
    plain = st.dictionaries(st.sampled_from(names), inner, min_size=1, max_size=3)
    if not with_or:
        return plain
    or_pattern = st.builds(
        lambda base, alts: {**base, "$or": alts},
        plain,
        st.lists(st.dictionaries(st.sampled_from(names), inner, min_size=1, max_size=2), min_size=2, max_size=3),
    )
    return st.one_of(plain, plain, or_pattern)


patterns = st.one_of(
    _objects(TOP, 2, with_or=True),
    st.builds(lambda top, inner: {top: inner}, st.sampled_from(["data", "detail"]), _objects(INNER, 1, with_or=True)),
)

event_values = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(INNER), children, max_size=3),
    ),
    max_leaves=8,
)
events = st.dictionaries(st.sampled_from(TOP), event_values, max_size=5)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, min_size=1, max_size=8), st.lists(events, min_size=1, max_size=6))
def test_ruleset_agrees_with_matching_each_pattern(rules: list[dict[str, Any]], sample: list[dict[str, Any]]) -> None:
    ruleset = RuleSet()
    compiled = []
    for i, pattern in enumerate(rules):
        ruleset.add(f"r{i}", pattern)
        compiled.append((f"r{i}", compile_pattern(pattern)))
    for event in sample:
        expected = [rule_id for rule_id, pattern in compiled if pattern.matches(event)]
        assert ruleset.matches(event) == expected


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, min_size=2, max_size=10), st.lists(events, min_size=1, max_size=5), st.data())
def test_removing_and_replacing_rules_keeps_the_automaton_exact(
    rules: list[dict[str, Any]], sample: list[dict[str, Any]], data: st.DataObject
) -> None:
    ruleset = RuleSet()
    live: dict[str, Any] = {}
    for i, pattern in enumerate(rules):
        ruleset.add(f"r{i}", pattern)
        live[f"r{i}"] = compile_pattern(pattern)
    for rule_id in data.draw(st.lists(st.sampled_from(sorted(live)), unique=True, max_size=len(live))):
        if data.draw(st.booleans()):
            assert ruleset.remove(rule_id)
            del live[rule_id]
        else:
            replacement = data.draw(patterns)
            ruleset.add(rule_id, replacement)
            live[rule_id] = compile_pattern(replacement)
    order = [r for r in (f"r{i}" for i in range(len(rules))) if r in live]
    assert list(ruleset) == order
    for event in sample:
        assert ruleset.matches(event) == [r for r in order if live[r].matches(event)]


# --- behaviour a user relies on ---------------------------------------------------------------------


def test_matches_are_in_the_order_rules_were_added() -> None:
    rules = RuleSet()
    rules.add("z", {"source": ["shop"]})
    rules.add("a", {"data": {"total": [{"numeric": [">", 10]}]}})
    rules.add("m", {"type": [{"prefix": "order."}]})
    event = {"source": "shop", "type": "order.placed", "data": {"total": 20}}
    assert rules.matches(event) == ["z", "a", "m"]
    assert rules.matches({"source": "shop"}) == ["z"]
    assert rules.matches({}) == []


def test_replacing_keeps_the_place_and_changes_the_pattern() -> None:
    rules = RuleSet()
    rules.add("first", {"source": ["a"]})
    rules.add("second", {"source": ["a"]})
    rules.add("first", {"source": ["a", "b"]})
    assert rules.matches({"source": "a"}) == ["first", "second"]
    assert rules.matches({"source": "b"}) == ["first"]
    assert len(rules) == 2
    assert rules.pattern("first").source == {"source": ["a", "b"]}


def test_remove_len_and_contains() -> None:
    rules = RuleSet()
    assert len(rules) == 0
    assert "x" not in rules
    rules.add("x", '{"source": ["a"]}')
    rules.add("y", compile_pattern({"source": [{"anything-but": "a"}]}))
    assert "x" in rules
    assert len(rules) == 2
    assert rules.remove("x")
    assert not rules.remove("x")
    assert "x" not in rules
    assert rules.matches({"source": "a"}) == []
    assert rules.matches({"source": "b"}) == ["y"]
    assert rules.matches('{"source": "b"}') == ["y"]


def test_a_rule_with_several_matching_alternatives_is_listed_once() -> None:
    rules = RuleSet()
    rules.add("r", {"$or": [{"source": ["a"]}, {"type": ["t"]}], "data": {"tags": ["x", "y"]}})
    assert rules.matches({"source": "a", "type": "t", "data": {"tags": ["x", "y"]}}) == ["r"]


def test_bad_rule_ids_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="non-empty string"):
        RuleSet().add("", {"source": ["a"]})
    with pytest.raises(InvalidInputError, match="non-empty string"):
        RuleSet().add(5, {"source": ["a"]})  # type: ignore[arg-type]
    with pytest.raises(InvalidPatternError):
        RuleSet().add("r", {"source": "a"})


def test_many_rules_each_find_their_events() -> None:
    rules = RuleSet()
    for i in range(3000):
        kind = i % 6
        if kind == 0:
            rules.add(f"r{i}", {"type": [f"t{i}"]})
        elif kind == 1:
            rules.add(f"r{i}", {"data": {"sku": [{"prefix": f"p{i}-"}]}})
        elif kind == 2:
            rules.add(f"r{i}", {"data": {"amount": [{"numeric": [">=", i, "<", i + 1]}]}})
        elif kind == 3:
            rules.add(f"r{i}", {"data": {"file": [{"suffix": f".x{i}"}]}})
        elif kind == 4:
            rules.add(f"r{i}", {"subject": [{"equals-ignore-case": f"S{i}"}]})
        else:
            rules.add(f"r{i}", {"data": {"path": [{"wildcard": f"w{i}/*/end"}]}})
    assert rules.matches({"type": "t600"}) == ["r600"]
    assert rules.matches({"data": {"sku": "p601-blue"}}) == ["r601"]
    assert rules.matches({"data": {"amount": 602.5}}) == ["r602"]
    assert rules.matches({"data": {"file": "a.b.x603"}}) == ["r603"]
    assert rules.matches({"subject": "s604"}) == ["r604"]
    assert rules.matches({"data": {"path": "w605/deep/er/end"}}) == ["r605"]
    assert rules.matches({"data": {"path": "w605/end"}}) == []
    assert rules.matches({"type": "t601"}) == []


def test_numeric_ranges_sharing_bounds() -> None:
    rules = RuleSet()
    rules.add("lt", {"n": [{"numeric": ["<", 10]}]})
    rules.add("le", {"n": [{"numeric": ["<=", 10]}]})
    rules.add("eq", {"n": [{"numeric": ["=", 10]}]})
    rules.add("ge", {"n": [{"numeric": [">=", 10]}]})
    rules.add("gt", {"n": [{"numeric": [">", 10]}]})
    rules.add("band", {"n": [{"numeric": [">", 5, "<=", 10]}]})
    assert rules.matches({"n": 10}) == ["le", "eq", "ge", "band"]
    assert rules.matches({"n": 9.5}) == ["lt", "le", "band"]
    assert rules.matches({"n": 10.5}) == ["ge", "gt"]
    assert rules.matches({"n": 5}) == ["lt", "le"]
    assert rules.matches({"n": "10"}) == []
    assert rules.matches({"n": True}) == []
    assert rules.matches({"n": float("nan")}) == []
    rules.remove("band")
    assert rules.matches({"n": 10}) == ["le", "eq", "ge"]


def test_rules_sharing_an_anchor_field_share_one_group() -> None:
    rules = RuleSet()
    for i in range(1000):
        rules.add(
            f"r{i}", {"source": ["shop"], "detail-type": ["order.placed"], "detail": {"n": [{"numeric": [">", i]}]}}
        )
    # All are filed under one field (the type: a lookup serves it), so they are bits of one group.
    assert rules.groups == 1
    assert rules.matches({"source": "shop", "detail-type": "order.placed", "detail": {"n": 2}}) == ["r0", "r1"]
    for i in range(1000):
        assert rules.remove(f"r{i}")
    assert rules.groups == 0  # removing the rules removes their group
    assert rules.matches({"source": "shop", "detail-type": "order.placed", "detail": {"n": 2}}) == []


def test_an_alternative_met_twice_or_two_alternatives_of_a_rule_give_its_id_once() -> None:
    rules = RuleSet()
    rules.add("either", {"$or": [{"a": ["x"]}, {"b": ["y"]}]})
    rules.add("same-twice", {"$or": [{"a": ["x"]}, {"a": ["x"]}]})
    assert rules.matches({"a": "x", "b": "y"}) == ["either", "same-twice"]
    rules.remove("same-twice")
    assert rules.matches({"a": "x"}) == ["either"]
    assert rules.groups == 2  # one per alternative's anchor: a and b


def test_the_walk_reads_only_known_paths_and_both_names_of_an_aliased_field() -> None:
    rules = RuleSet()
    rules.add("placed", {"type": ["order.placed"]})
    rules.add("big", {"data": {"total": [{"numeric": [">", 100]}]}})
    # More keys in the event than paths in the index, and both names of `type` and of `data` present.
    event = {
        "id": "1",
        "source": "shop",
        "time": "t",
        "subject": "s",
        "type": "order.updated",
        "detail-type": "order.placed",
        "data": {"total": 5},
        "detail": {"total": 500},
    }
    assert rules.matches(event) == ["placed", "big"]
    assert rules.matches({**event, "detail-type": "x", "detail": {}}) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["0", "1", "9", "10", "01", "00", "99", "255", "256", "-1", " 1", "1 ", "a", "", "٣", "ff"]),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["10.0.0.0/8", "1.0.0.0/24", "0.0.0.0/0", "255.255.255.255/32", "::/0", "::ffff:0:0/96"]),
    st.sampled_from([".", ":", "::ffff:"]),
)
def test_cidr_reads_dotted_quads_as_ipaddress_does(parts: list[str], block: str, joiner: str) -> None:
    # The cidr test reads plain dotted quads itself, for speed; it must accept exactly what ipaddress accepts.
    import ipaddress

    value = ".".join(parts) if joiner == "." else joiner + ".".join(parts) if joiner == "::ffff:" else ":".join(parts)
    network = ipaddress.ip_network(block)
    try:
        address = ipaddress.ip_address(value)
        expected = address.version == network.version and address in network
    except ValueError:
        expected = False
    assert compile_pattern({"ip": [{"cidr": block}]}).matches({"ip": value}) is expected


def test_a_few_conditions_on_one_path_with_and_without_a_table() -> None:
    # Rules sharing their anchor (`source`) form one group, whose `country` step has a table of members per
    # class; a group of one rule ("solo") has none, its three conditions tested against the value's class.
    # Single values, arrays and a missing field must each pick exactly the rules whose field holds.
    rules = RuleSet()
    for i in range(8):  # sources many rules name: `source` is the rarer field, the anchor
        rules.add(f"other{i}", {"source": [f"other{i}"], "detail": {"country": ["NZ"]}})
    rules.add("nz-or-au", {"source": ["shop"], "detail": {"country": ["NZ", "AU"]}})
    rules.add("us", {"source": ["shop"], "detail": {"country": ["US"]}})
    rules.add("any", {"source": ["shop"]})
    rules.add("solo", {"source": ["solo"], "detail": {"country": ["NZ", "AU", "US"]}})
    assert rules.groups == 10  # the three "shop" rules are one group
    for _ in range(3):  # the second and third time from memo tables
        assert rules.matches({"source": "shop", "detail": {"country": "AU"}}) == ["nz-or-au", "any"]
        assert rules.matches({"source": "shop", "detail": {"country": "US"}}) == ["us", "any"]
        assert rules.matches({"source": "shop", "detail": {"country": ["GB", "NZ", "US"]}}) == ["nz-or-au", "us", "any"]
        assert rules.matches({"source": "shop", "detail": {"country": "GB"}}) == ["any"]
        assert rules.matches({"source": "shop", "detail": {}}) == ["any"]
        assert rules.matches({"source": "other", "detail": {"country": "NZ"}}) == []
        for country, met in (("AU", ["solo"]), ("GB", []), (["GB", "US"], ["solo"]), (["GB", "FR"], [])):
            assert rules.matches({"source": "solo", "detail": {"country": country}}) == met
        assert rules.matches({"source": "solo", "detail": {"country": None}}) == []
        assert rules.matches({"source": "solo"}) == []


# --- many rules at once -----------------------------------------------------------------------------


def counting_compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rules each compile of any RuleSet took, from now on."""
    compiles: list[int] = []
    compile_set = RuleSet._compile

    def counted(self: RuleSet) -> None:
        compiles.append(len(self))
        compile_set(self)

    monkeypatch.setattr(RuleSet, "_compile", counted)
    return compiles


def test_extend_matches_as_adding_one_by_one_and_compiles_once(monkeypatch: pytest.MonkeyPatch) -> None:
    patterns = [(f"r{n}", {"type": [f"t{n % 7}"], "data": {"n": [{"numeric": [">", n]}]}}) for n in range(100)]
    one_by_one = RuleSet()
    for rule_id, pattern in patterns:
        one_by_one.add(rule_id, pattern)
    compiles = counting_compiles(monkeypatch)
    at_once = RuleSet()
    at_once.extend(patterns)
    assert compiles == [100]  # adding them one by one compiles dozens of times
    assert list(at_once) == list(one_by_one)
    for n in range(0, 120, 3):
        event = {"type": f"t{n % 7}", "data": {"n": n}}
        assert at_once.matches(event) == one_by_one.matches(event)
    assert at_once.matches({"type": "t3", "data": {"n": 50}}) == ["r3", "r10", "r17", "r24", "r31", "r38", "r45"]


def test_extend_replaces_in_place_and_is_all_or_nothing() -> None:
    rules = RuleSet()
    rules.extend([("a", {"source": ["x"]}), ("b", {"source": ["x"]})])
    rules.extend([("a", {"source": ["y"]}), ("c", {"source": ["y"]})])
    assert list(rules) == ["a", "b", "c"]
    assert rules.matches({"source": "y"}) == ["a", "c"]
    with pytest.raises(InvalidPatternError):
        rules.extend([("d", {"source": ["y"]}), ("e", {"source": "not in an array"})])
    with pytest.raises(InvalidInputError):
        rules.extend([("", {"source": ["y"]})])
    assert list(rules) == ["a", "b", "c"]
    assert rules.matches({"source": "y"}) == ["a", "c"]
    rules.extend([])
    assert len(rules) == 3


# --- leaves: a group of one alternative checked from one flat tuple -----------------------------------------

#: One field per kind a leaf checks itself (and some it leaves to Field.holds), each under a source of its own.
LEAF_FIELDS: dict[str, list[Any]] = {
    "exact": ["NZ"],
    "exact-several": ["NZ", "AU"],
    "exact-mixed-types": ["1", 1, True, None],
    "exact-number": [1],
    "exact-null": [None],
    "exact-true": [True],
    "prefix": [{"prefix": "ab"}],
    "suffix": [{"suffix": "bc"}],
    "prefix-ic": [{"prefix": {"equals-ignore-case": "AB"}}],
    "suffix-ic": [{"suffix": {"equals-ignore-case": "BC"}}],
    "ignore-case": [{"equals-ignore-case": "Abc"}],
    "numeric": [{"numeric": [">", 0, "<=", 5]}],
    "numeric-equal": [{"numeric": ["=", 300]}],
    "anything-but": [{"anything-but": "NZ"}],
    "anything-but-list": [{"anything-but": ["NZ", "AU"]}],
    "anything-but-numbers": [{"anything-but": [1, 2]}],
    "anything-but-prefix": [{"anything-but": {"prefix": "a"}}],
    "exists": [{"exists": True}],
    "not-exists": [{"exists": False}],
    "wildcard": [{"wildcard": "a*c"}],
    "cidr": [{"cidr": "10.0.0.0/8"}],
    "cidr-v6": [{"cidr": "2001:db8::/32"}],
    "anything-but-suffix": [{"anything-but": {"suffix": "c"}}],
    "wildcard-middle": [{"wildcard": "a*b*c"}],
    "prefix-or-exists-false": [{"prefix": "ab"}, {"exists": False}],
}
LEAF_VALUES: list[Any] = [
    "NZ", "AU", "nz", "abc", "ABC", "xbc", "a", "", "1", 1, 1.0, 0, 5, 5.0001, 300, 300.0, True, False, None,
    "10.1.2.3", "11.0.0.1", "2001:db8::1", "abbc",
    ["x", "abc"], ["GB", "NZ"], [], ["NZ", "AU"], [1, "1"], {"nested": "abc"},
]  # fmt: skip


def test_leaves_agree_with_each_pattern_for_every_kind_of_check() -> None:
    # Each rule has an anchor of its own (its source), so each is a group of one alternative: a leaf. A second
    # field on another path, the `tier`, makes every leaf check two fields, the first of which may fail.
    rules, patterns = RuleSet(), {}
    # A leaf answering from its anchor alone, and four rules sharing an anchor (a group, not leaves: a group
    # of up to three alternatives is that many leaves).
    extras: dict[str, dict[str, Any]] = {
        "anchor-only": {"source": ["s-anchor-only"]},
        "grouped-1": {"source": ["s-grouped"], "detail": {"v": [{"prefix": "a"}]}},
        "grouped-2": {"source": ["s-grouped"], "detail": {"v": ["NZ"]}},
        "grouped-3": {"source": ["s-grouped"], "detail": {"v": [{"numeric": [">", 0]}]}},
        "grouped-4": {"source": ["s-grouped"], "detail": {"tier": ["gold"]}},
    }
    for rule_id, extra in extras.items():
        rules.add(rule_id, extra)
        patterns[rule_id] = compile_pattern(extra)
    for name, field in LEAF_FIELDS.items():
        for tiered in (False, True):
            rule_id = f"{name}{'-tiered' if tiered else ''}"
            pattern: dict[str, Any] = {"source": [f"s-{rule_id}"], "detail": {"v": field}}
            if tiered:
                pattern["detail"]["tier"] = ["gold"]
            rules.add(rule_id, pattern)
            patterns[rule_id] = compile_pattern(pattern)
    compiled = rules._live.compiled
    targets = [t for anchor in compiled._anchors for filed in anchor.matcher.strings.values() for t in filed]
    # Every compiled rule but the four grouped ones is a leaf (the last ones added are beside the compiled set).
    assert sum(type(target) is tuple for target in targets) == len(rules._live.names) - 4 > 30
    order = list(patterns)
    for name in [*patterns, "grouped"]:
        for value in [*LEAF_VALUES, "missing"]:
            for tier in ("gold", "silver", ["silver", "gold"], None):
                detail: dict[str, Any] = {} if value == "missing" else {"v": value}
                if tier is not None:
                    detail["tier"] = tier
                event = {"source": f"s-{name}", "detail": detail}
                expected = [rule_id for rule_id in order if patterns[rule_id].matches(event)]
                assert rules.matches(event) == expected, event


def test_leaves_follow_rules_added_and_removed_after_the_compile() -> None:
    rules = RuleSet()
    for i in range(64):
        rules.add(f"r{i}", {"source": [f"s{i}"], "detail": {"v": [{"prefix": f"p{i}"}]}})
    assert rules.matches({"source": "s3", "detail": {"v": "p3x"}}) == ["r3"]
    rules.remove("r3")  # a compiled leaf, now stale
    rules.add("r3b", {"source": ["s3"], "detail": {"v": [{"suffix": "x"}]}})  # recent, beside the compiled set
    rules.add("r4", {"source": ["s4"], "detail": {"v": [{"numeric": [">", 1]}]}})  # replaces a compiled leaf
    for _ in range(2):
        assert rules.matches({"source": "s3", "detail": {"v": "p3x"}}) == ["r3b"]
        assert rules.matches({"source": "s4", "detail": {"v": "p4x"}}) == []
        assert rules.matches({"source": "s4", "detail": {"v": [2, "p4"]}}) == ["r4"]
        assert rules.matches({"source": "s5", "detail": {"v": ["q", "p5"]}}) == ["r5"]
        for i in range(64, 80):  # enough changes to compile them in: the second round runs on new leaves
            rules.add(f"r{i}", {"source": [f"s{i}"]})
    assert rules.matches({"source": "s70"}) == ["r70"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text("ab.", max_size=4), min_size=1, max_size=12),
    st.lists(st.text("ab.", max_size=6), min_size=1, max_size=12),
    st.data(),
)
def test_affixes_skip_only_the_lengths_that_cannot_match(texts: list[str], values: list[str], data: Any) -> None:
    # Each length probed only when the value has one of its texts' last (first) characters there: the
    # prefixes and suffixes found must be exactly those a test of every text finds, after removals too.
    from triggerfish.events._value_matcher import Affixes

    affixes = Affixes()
    for i, text in enumerate(texts):
        affixes.add(text, i)
    live = dict(enumerate(texts))
    for i in data.draw(st.lists(st.sampled_from(range(len(texts))), unique=True, max_size=len(texts) // 2)):
        affixes.remove(texts[i], i)
        del live[i]
    for value in values:
        starting = sorted(item for items in affixes.starting(value) for item in items)
        ending = sorted(item for items in affixes.ending(value) for item in items)
        assert starting == sorted(i for i, text in live.items() if value.startswith(text))
        assert ending == sorted(i for i, text in live.items() if value.endswith(text))


# --- anchors: exact strings and prefixes of one path, looked up in tables that keep their keys' hashes ------

#: Texts that overlap as prefixes of each other, the empty text, and characters beyond ASCII (the tables are
#: probed at lengths counted in characters, not bytes).
ANCHOR_TEXTS = [
    "",
    "a",
    "a.",
    "a.b",
    "a.b.c",
    "ab",
    "é",
    "é.",
    "éa",
    "日本",
    "日本語",
    "日本語.x",
    "\U0001f600",
    "\U0001f600a",
]
anchor_conditions = st.one_of(
    st.sampled_from(ANCHOR_TEXTS), st.builds(lambda t: {"prefix": t}, st.sampled_from(ANCHOR_TEXTS))
)
anchored_rules = st.fixed_dictionaries(
    {"detail-type": st.lists(anchor_conditions, min_size=1, max_size=2)},
    optional={"detail": st.fixed_dictionaries({"tier": st.lists(st.sampled_from(["gold", "silver"]), min_size=1)})},
)
anchor_values = st.one_of(
    st.sampled_from(ANCHOR_TEXTS),
    st.builds(lambda a, b: a + b, st.sampled_from(ANCHOR_TEXTS), st.sampled_from(["", "x", ".", "é", "語"])),
    st.lists(st.sampled_from(ANCHOR_TEXTS), max_size=2),
    st.sampled_from([1, None, True]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(anchored_rules, min_size=1, max_size=12),
    st.lists(st.tuples(anchor_values, st.sampled_from(["gold", "silver", None])), min_size=1, max_size=8),
)
def test_exact_and_prefix_anchors_on_one_path_agree_with_each_pattern(
    rules: list[dict[str, Any]], events: list[tuple[Any, str | None]]
) -> None:
    # Rules of one or two anchor conditions, some sharing an anchor field (groups, of up to three as leaves),
    # compiled at once; a value may reach one target by its exact text and by a prefix, or by two prefixes.
    ruleset = RuleSet()
    ruleset.extend((f"r{i}", rule) for i, rule in enumerate(rules))
    assert not ruleset._live.recent.states > 1  # all compiled
    compiled = [compile_pattern(rule) for rule in rules]
    for value, tier in events:
        event: dict[str, Any] = {"detail-type": value, "detail": {} if tier is None else {"tier": tier}}
        expected = [f"r{i}" for i, pattern in enumerate(compiled) if pattern.matches(event)]
        assert ruleset.matches(event) == expected, event


def _anchor_of(rules: RuleSet, first: str) -> Any:
    return next(anchor for anchor in rules._live.compiled._anchors if anchor.paths.reader.first == first)


def test_an_anchor_of_exact_types_and_prefixes_is_looked_up_in_tables_without_a_set() -> None:
    rules = RuleSet()
    rules.extend(
        [
            *(
                (f"t{i}", {"detail-type": [f"order.t{i}.v1"], "detail": {"n": [{"numeric": [">", i]}]}})
                for i in range(40)
            ),
            *((f"p{i}", {"detail-type": [{"prefix": f"order.t{i}."}]}) for i in range(40)),
            ("both", {"detail-type": ["order.t1.v1"], "detail": {"tier": ["gold"]}}),
            ("empty", {"detail-type": [{"prefix": ""}], "detail": {"tier": ["silver"]}}),
        ]
    )
    anchor = _anchor_of(rules, "type")
    # The path's exact strings and prefixes, each target filed once: the set-free lookup serves it.
    assert anchor.strings is not None
    assert anchor.prefixes is not None
    assert rules.matches({"detail-type": "order.t1.v1", "detail": {"n": 2, "tier": "gold"}}) == ["t1", "p1", "both"]
    assert rules.matches({"detail-type": "order.t12.v1", "detail": {"n": 2, "tier": "silver"}}) == ["p12", "empty"]
    assert rules.matches({"detail-type": "order.t1", "detail": {"tier": "silver"}}) == ["empty"]

    # A target filed under an exact text and a prefix one value can both meet goes through the matcher's set.
    rules.add("twice", {"detail-type": ["order.t5.v1", {"prefix": "order.t5"}]})
    rules._compile()
    assert _anchor_of(rules, "type").prefixes is None
    assert rules.matches({"detail-type": "order.t5.v1", "detail": {"n": 9}}) == ["t5", "p5", "twice"]


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="a layout of CPython's dicts")
def test_anchor_tables_keep_their_keys_hashes() -> None:
    # A dict of str keys alone keeps (key, value) per entry and reads each candidate key's object to compare
    # hashes; the anchors' tables keep the hash in the entry (bigger entries), so an absent value's probe
    # does not read the keys' strings.
    from triggerfish.events._anchors import hashed

    table = {f"order.t{i}.v1": i for i in range(1000)}
    copy = hashed(table)
    assert copy == table
    assert list(copy) == list(table)
    assert sys.getsizeof(copy) > sys.getsizeof(dict(table.items()))
    assert hashed({}) == {}
    rules = RuleSet()
    rules.extend((f"r{i}", {"source": [f"app.s{i}"], "detail": {"n": [i]}}) for i in range(1000))
    strings = _anchor_of(rules, "source").strings
    assert sys.getsizeof(strings) > sys.getsizeof(dict(strings.items()))


def test_a_group_of_up_to_three_alternatives_is_that_many_leaves() -> None:
    rules = RuleSet()
    rules.extend(
        [
            *(
                (f"three{i}", {"source": ["three"], "detail": {"n": [{"numeric": [">=", i, "<", i + 1]}]}})
                for i in range(3)
            ),
            *(
                (f"four{i}", {"source": ["four"], "detail": {"n": [{"numeric": [">=", i, "<", i + 1]}]}})
                for i in range(4)
            ),
        ]
    )
    strings = _anchor_of(rules, "source").strings
    assert [type(target) is tuple for target in strings["three"]] == [True, True, True]
    assert type(strings["four"]) is not list  # one Group
    assert rules.matches({"source": "three", "detail": {"n": 1}}) == ["three1"]
    assert rules.matches({"source": "four", "detail": {"n": [1, 3]}}) == ["four1", "four3"]


def test_leaves_share_equal_operands() -> None:
    # Equal texts, sets of texts and bounds are one object across leaves, so one often read stays in cache.
    def fresh(text: str) -> str:
        return "".join(list(text))  # a new str object each time, as parsing each rule's JSON gives

    rules = RuleSet()
    rules.extend((f"r{i}", {"source": [f"s{i}"], "detail": {"file": [{"suffix": fresh(".png")}]}}) for i in range(3))
    strings = _anchor_of(rules, "source").strings
    operands = [strings[f"s{i}"][3] for i in range(3)]
    assert operands[0] == ".png"
    assert operands[0] is operands[1] is operands[2]
    assert rules.matches({"source": "s1", "detail": {"file": "a.png"}}) == ["r1"]
