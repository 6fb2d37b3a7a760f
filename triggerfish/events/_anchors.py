"""The anchor paths of a compiled rule set: the lookups that find which groups an event reaches.

Every alternative of a compiled set is filed under one of its fields, its
anchor (see `_compiled_rules`); the anchors on one path share one Anchor. An
event's value there is looked up, not classified: anchor paths (event types,
sources) mostly carry values no rule names, and one lookup costs less than a
class made for a value seen once.

With thousands of rules the anchors' tables are the largest structures an
event touches (a 10,000-rule sparse set has 4,768 exact types, 1,931 type
prefixes and 2,222 sources), and most probes are for a value that is not
there. Two things keep such a probe cheap:

- The tables are laid out with each key's hash in its entry (`hashed`). A
  CPython dict whose keys are all str keeps only (key, value) per entry and
  compares hashes by reading each candidate key's str object, which with
  thousands of keys is outside the CPU's cache: a miss per candidate. A dict
  that has held any other key keeps the hash beside the key, so a probe for
  an absent value reads the index and an entry, not the strings.
- A path whose anchors are exact strings and prefixes (the common shape:
  `"detail-type": ["OrderPlaced"]`, `"source": [{"prefix": "com.shop."}]`)
  is looked up without a set of targets: when no target is filed under two
  of the path's conditions, a value reaches each target at most once, and a
  set would hash every target reached (a leaf's hash reads every operand).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from triggerfish.events._value_matcher import Affixes, ValueMatcher

if TYPE_CHECKING:
    from triggerfish.events._compiled_rules import PathClasses

_V = TypeVar("_V")

#: A key that is not a str: inserted and removed again, it leaves a dict in the layout that keeps hashes.
_NOT_TEXT: Hashable = object()


def hashed(table: dict[str, _V]) -> dict[str, _V]:
    """A copy of `table` whose entries keep their keys' hashes (the same keys, values and order).

    A layout of CPython's (3.11 and later), and only a matter of cost: a probe for an absent key compares
    the hashes kept in the entries instead of reading each candidate key's str object. Another
    interpreter may lay the copy out as it likes; it is still an equal dict.
    """
    copy: dict[Any, _V] = {_NOT_TEXT: next(iter(table.values()))} if table else {}
    copy.update(table)
    copy.pop(_NOT_TEXT, None)
    return copy


class Anchor:
    """One path that anchors groups: every group's anchor field filed in one ValueMatcher, leading to the group.

    After `seal`, `strings` is set when exact strings (and, with `prefixes`,
    prefixes) are all the conditions on this path and no target is filed
    under two of them: `strings` maps a string to the one target it leads to
    (one object fewer to visit in the common case) or a list of several, and
    `prefixes` (None when there are none) the prefixes to the lists of their
    targets. Else the matcher answers, in a set.
    """

    __slots__ = ("_filings", "matcher", "paths", "prefixes", "strings")

    def __init__(self, paths: PathClasses) -> None:
        self.paths = paths
        self.matcher = ValueMatcher()
        self.strings: dict[str, Any] | None = None
        self.prefixes: Affixes | None = None
        #: the targets filed so far (by id), or None once one was filed under two conditions
        self._filings: set[int] | None = set()

    def add(self, condition: Any, target: Any) -> None:
        """File `target` under `condition` (a condition of its anchor field on this path)."""
        self.matcher.add(condition, target)
        if self._filings is not None:
            if id(target) in self._filings:
                self._filings = None
            else:
                self._filings.add(id(target))

    def seal(self) -> None:
        """Done filing: lay the tables out for lookups, and take the fast path when the conditions allow it."""
        matcher = self.matcher
        matcher.strings = hashed(matcher.strings)
        for affixes in (matcher.prefix, matcher.suffix, matcher.prefix_ic, matcher.suffix_ic):
            affixes.keys = hashed(affixes.keys)
        texts_only = not (
            matcher.any_value
            or matcher.absent
            or matcher.numbers
            or matcher.consts
            or matcher.ranges.entries
            or matcher.tests
            or matcher.all_but
            or matcher.ignore_case
            or matcher.suffix.keys
            or matcher.prefix_ic.keys
            or matcher.suffix_ic.keys
            or matcher.wild_prefix.keys
            or matcher.wild_suffix.keys
            or matcher.blocks.by_length
        )
        once = self._filings is not None
        self._filings = None
        if texts_only and (once or not matcher.prefix.keys):
            # Exact strings alone cannot lead one value to a target twice: a value equals one string.
            leads = {text: found[0] if len(found) == 1 else found for text, found in matcher.strings.items()}
            self.strings = hashed(leads)
            self.prefixes = matcher.prefix if matcher.prefix.keys else None

    def prefixed(self, value: str, found: Any) -> list[Any]:
        """The targets `value` reaches by a prefix, after `found` (what `strings` gave for it: None, a target
        or a list)."""
        assert self.prefixes is not None
        targets: list[Any] = [] if found is None else list(found) if type(found) is list else [found]
        for items in self.prefixes.starting(value):
            targets += items
        return targets
