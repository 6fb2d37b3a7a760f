"""Where each alternative of a RuleSet is filed in the index, and how good a place that is.

An alternative is filed under one *anchor* field: one the index can look up
(`indexable`), preferably one few other alternatives share (`anchor_cost`).
Each condition of the anchor becomes a filing: a node, a kind of lookup and
a key. Removing the alternative undoes its filings and prunes empty nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from triggerfish.events._pattern_match import (
    EXACT,
    EXISTS,
    IGNORE_CASE,
    NUMERIC,
    PREFIX,
    PREFIX_IC,
    SUFFIX,
    SUFFIX_IC,
    WILDCARD,
    Condition,
    Field,
)
from triggerfish.events._ruleset_index import Affixes, Node, discard

#: Rough cost of anchoring on each kind, added to how many alternatives already share the key.
_KIND_COST = {
    EXACT: 0,
    IGNORE_CASE: 1,
    PREFIX: 4,
    PREFIX_IC: 5,
    SUFFIX: 4,
    SUFFIX_IC: 5,
    WILDCARD: 6,
    NUMERIC: 40,
    EXISTS: 1000,
}
#: The cost of anchoring on a path no other alternative uses (see `others_at`), in the units of `_KIND_COST`.
FRESH_PATH_COST = 8
_ANY_STRING = "any-string"
_ANY_LEAF = "any-leaf"


Filing = tuple[Node, str, Any]


def indexable(field: Field) -> bool:
    """Whether every condition of the field can be looked up (so the field can anchor an alternative)."""
    return all(_indexable(c) for c in field.conditions)


def _indexable(condition: Condition) -> bool:
    if condition.kind == EXISTS:
        return bool(condition.operand)
    if condition.kind == NUMERIC:
        low, _, high, _ = condition.operand
        return bool(low != -math.inf or high != math.inf)
    return condition.kind in _KIND_COST


def node_for(root: Node, path: tuple[str, ...], *, create: bool) -> Node | None:
    node = root
    for name in path:
        child = node.children.get(name)
        if child is None:
            if not create:
                return None
            child = node.children[name] = Node(node, name)
        node = child
    return node


def anchor_cost(root: Node, field: Field, own: int = 0) -> int:
    """How many alternatives already share this field's keys, plus a cost for looser kinds.

    The cost guesses how often the anchor will fire on events that then fail
    the full check: sharing a key with many others, a short prefix, a
    boolean or a wide numeric range all fire often. A path no other
    alternative is filed at costs extra: the walk would visit it for every
    event. `own` is how many filings there are the alternative's own.
    """
    node = node_for(root, field.path, create=False)
    total = FRESH_PATH_COST if node is None or node.filed - own <= 0 else 0
    for condition in field.conditions:
        kind, key = _filing_key(condition)
        total += _KIND_COST.get(condition.kind, 0)
        if kind in _AFFIXES:
            total += max(0, 8 - len(key))
        elif kind == EXACT and (key is None or isinstance(key, bool)):
            total += 20
        if node is not None:
            total += sharing((node, kind, key))
    return total


def others_at(root: Node, field: Field, own: int = 0) -> int:
    """How many filings of other alternatives share this field's path: the walk visits it for them anyway.

    A lookup on a path the walk visits anyway is nearly free; a path only one
    alternative needs is visited on every event (its prefixes probed, ...),
    which costs about as much as checking that alternative in full. `own` is
    how many of the node's filings are the alternative's own.
    """
    node = node_for(root, field.path, create=False)
    return 0 if node is None else max(0, node.filed - own)


def sharing(filing: Filing) -> int:
    """How many alternatives are filed under the same key (the size of its bucket)."""
    return len(members(filing))


def members(filing: Filing) -> list[int]:
    node, kind, key = filing
    table = _exact_table(node, key) if kind == EXACT else _table(node, kind)
    if isinstance(table, dict):
        found: list[int] = table.get(key, [])
        return found
    if kind == NUMERIC:
        return [alternative for _, alternative in node.ranges.entries]
    bucket: list[int] = table
    return bucket


def file_field(root: Node, field: Field, alternative: int) -> list[Filing]:
    """File an alternative under each condition of its anchor field; returns what to undo on removal."""
    node = node_for(root, field.path, create=True)
    assert node is not None
    filings: list[Filing] = []
    for condition in field.conditions:
        kind, key = _filing_key(condition)
        _add(node, kind, key, alternative)
        filings.append((node, kind, key))
    return filings


def unfile(filings: list[Filing], alternative: int) -> None:
    for node, kind, key in filings:
        _remove(node, kind, key, alternative)
        # Drop nodes left empty, so matching stops visiting paths no rule needs any more.
        current: Node | None = node
        while current is not None and current.parent is not None and current.empty():
            if current.parent.children.get(current.name) is current:
                del current.parent.children[current.name]
            current = current.parent


def _filing_key(condition: Condition) -> tuple[str, Any]:
    kind, operand = condition.kind, condition.operand
    if kind == EXISTS:
        return (_ANY_LEAF, None)
    if kind == NUMERIC and operand[0] == operand[2]:
        return (EXACT, operand[0])
    if kind == WILDCARD:
        # Anchor a wildcard on its literal start or end; the full test runs when the alternative is checked.
        if len(operand) == 1:
            return (EXACT, operand[0])
        if operand[0]:
            return (PREFIX, operand[0])
        if operand[-1]:
            return (SUFFIX, operand[-1])
        return (_ANY_STRING, None)
    return (kind, operand)


def _table(node: Node, kind: str) -> Any:
    return {
        IGNORE_CASE: node.ignore_case,
        PREFIX: node.prefix.keys,
        PREFIX_IC: node.prefix_ic.keys,
        SUFFIX: node.suffix.keys,
        SUFFIX_IC: node.suffix_ic.keys,
        NUMERIC: node.ranges.entries,
        _ANY_STRING: node.any_string,
        _ANY_LEAF: node.any_leaf,
    }[kind]


def _exact_table(node: Node, value: Any) -> dict[Any, list[int]]:
    if isinstance(value, str):
        return node.strings
    if value is None or isinstance(value, bool):
        return node.consts
    return node.numbers


_AFFIXES: dict[str, Callable[[Node], Affixes]] = {
    PREFIX: lambda n: n.prefix,
    PREFIX_IC: lambda n: n.prefix_ic,
    SUFFIX: lambda n: n.suffix,
    SUFFIX_IC: lambda n: n.suffix_ic,
}


def _add(node: Node, kind: str, key: Any, alternative: int) -> None:
    if kind == EXACT:
        _exact_table(node, key).setdefault(key, []).append(alternative)
    elif kind == IGNORE_CASE:
        node.ignore_case.setdefault(key, []).append(alternative)
    elif kind in _AFFIXES:
        _AFFIXES[kind](node).add(key, alternative)
    elif kind == NUMERIC:
        node.ranges.add(key, alternative)
    elif kind == _ANY_STRING:
        node.any_string.append(alternative)
    else:
        node.any_leaf.append(alternative)
    node.filed += 1
    node.refresh()


def _remove(node: Node, kind: str, key: Any, alternative: int) -> None:
    if kind == EXACT:
        discard(_exact_table(node, key), key, alternative)
    elif kind == IGNORE_CASE:
        discard(node.ignore_case, key, alternative)
    elif kind in _AFFIXES:
        _AFFIXES[kind](node).remove(key, alternative)
    elif kind == NUMERIC:
        node.ranges.remove(key, alternative)
    elif kind == _ANY_STRING:
        node.any_string.remove(alternative)
    else:
        node.any_leaf.remove(alternative)
    node.filed -= 1
    node.refresh()
