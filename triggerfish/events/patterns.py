"""EventBridge event patterns: compile once, match many events.

    pattern = compile_pattern({"type": ["order.placed"], "data": {"total": [{"numeric": [">", 100]}]}})
    pattern.matches(event)          # event: a dict, or JSON text

Patterns use EventBridge's language (exact values, prefix, suffix,
equals-ignore-case, wildcard, anything-but, numeric, exists, cidr, $or) and
are written against the CloudEvents JSON form of an event. At the top level
`detail-type` means `type` and `detail` means `data`, in the pattern and in
the event, so EventBridge-style patterns and EventBridge envelopes work too.
docs/patterns.md is the full description.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from triggerfish.errors import InvalidEventError, InvalidJSONError, InvalidPatternError
from triggerfish.events._pattern_compile import compile_alternatives, plain
from triggerfish.events._pattern_match import Alternative


class Pattern:
    """A validated, compiled event pattern. Build one with `compile_pattern`."""

    __slots__ = ("_alternatives", "source")

    def __init__(self, source: dict[str, Any], alternatives: tuple[Alternative, ...]) -> None:
        #: The pattern as a plain dict (a private copy of what was compiled).
        self.source = source
        self._alternatives = alternatives

    @property
    def alternatives(self) -> tuple[Alternative, ...]:
        """The pattern with its `$or`s expanded: it matches when any alternative does."""
        return self._alternatives

    def matches(self, event: Mapping[str, Any] | str | bytes) -> bool:
        """True when `event` (a dict, or a JSON object as text) matches this pattern.

        A missing field, or a field under a value that is not an object
        (`data` being a string, say), simply does not match. JSON text that is
        not an object raises InvalidEventError; malformed JSON InvalidJSONError.
        """
        document = parse_event(event)
        for alternative in self._alternatives:  # noqa: SIM110 (hot path: a loop beats any() with a generator)
            if alternative.matches(document):
                return True
        return False

    def __repr__(self) -> str:
        return f"Pattern({self.source!r})"


def compile_pattern(pattern: Mapping[str, Any] | str | bytes | Pattern) -> Pattern:
    """Validate an EventBridge pattern (a dict or JSON text) and compile it for matching.

    Raises InvalidPatternError naming where in the pattern the problem is and
    why, for everything EventBridge's TestEventPattern rejects (values not in
    arrays, unknown operators, bad numeric ranges, ...) and for JSON text that
    is not valid JSON. In JSON text a repeated key is accepted as EventBridge
    accepts it: the later value replaces the earlier, and objects merge.

        >>> compile_pattern('{"source": [{"prefix": "shop."}]}').matches({"source": "shop.eu"})
        True
    """
    if isinstance(pattern, Pattern):
        return pattern
    if isinstance(pattern, str | bytes | bytearray | memoryview):
        # Imported here: the strict JSON reader is only needed for patterns given as text.
        from triggerfish._json import loads_merging_repeated_keys

        try:
            # A repeated key is read as EventBridge reads it: the later value wins, objects merge.
            pattern = loads_merging_repeated_keys(pattern, where="pattern")
        except InvalidJSONError as exc:
            raise InvalidPatternError(str(exc)) from None
    source = plain(pattern)
    return Pattern(source, compile_alternatives(source))


def parse_event(event: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    """The event as a mapping: JSON text is parsed strictly; a mapping is used as it is."""
    if type(event) is dict or isinstance(event, Mapping):
        return event
    if isinstance(event, str | bytes | bytearray | memoryview):
        from triggerfish._json import loads

        document = loads(event, where="event")
        if not isinstance(document, dict):
            raise InvalidEventError("event", f"must be a JSON object, not {type(document).__name__}")
        return document
    raise InvalidEventError("event", f"must be a dict or JSON text, not {type(event).__name__}")


__all__ = ["Pattern", "compile_pattern", "parse_event"]
