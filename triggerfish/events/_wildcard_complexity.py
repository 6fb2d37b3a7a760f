"""How complex a rule's wildcards are, measured as EventBridge measures it before accepting a rule.

EventBridge refuses a rule whose wildcards could make matching slow: "Rule is
too complex - try using fewer wildcard characters or fewer repeating
character sequences after a wildcard character". Its matcher, Event Ruler,
compiles the wildcards of one field into a byte automaton and evaluates its
*complexity*: the most wildcard patterns a worst-case value keeps in play at
once (Event Ruler's MachineComplexityEvaluator). We measure the same thing on
an automaton of our own over characters:

- the literal start of each wildcard (before its first `*`) is a trie shared by
  the patterns that begin alike, and so is the first `*` after it; every state
  counts the patterns that pass through it;
- after the first `*` each pattern has states of its own (weight 1), a `*`
  being a state that loops on any character;
- the complexity is the largest total weight of the states active together,
  over every value (explored state set by state set, the characters of the
  patterns plus one standing for all others).

A field whose complexity exceeds `LIMIT` is refused. EventBridge does not
publish its limit; 10 agrees with what it is observed to do: four `*.ext`
wildcards on a field are accepted (8), two `*/dir/*.ext` are accepted (6),
four `*/dir/*.ext` are refused (12).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

#: Largest complexity accepted.
LIMIT: Final = 10
#: State sets explored before giving up and calling the field too complex (our limit, against hostile input).
MAX_SETS: Final = 20_000
MESSAGE: Final = (
    "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences "
    "after a wildcard character"
)

_STAR: Final = None  # a token: the wildcard
_OTHER: Final = ""  # stands for every character no pattern names


def complexity(wildcards: Iterable[tuple[str, ...]]) -> int:
    """The complexity of one field's wildcards, each given as its literal segments (split on `*`).

    Stops counting once past LIMIT (returning LIMIT + 1) or after MAX_SETS state sets.
    """
    patterns = sorted(set(wildcards))
    if not patterns:
        return 0
    machine = _Machine(patterns)
    start = machine.closure(machine.initial())
    seen = {start}
    pending = [start]
    worst = machine.weight(start)
    alphabet = [*sorted({c for p in patterns for segment in p for c in segment}), _OTHER]
    while pending:
        if worst > LIMIT or len(seen) > MAX_SETS:
            return LIMIT + 1
        active = pending.pop()
        for char in alphabet:
            following = machine.closure(machine.step(active, char))
            if not following or following in seen:
                continue
            seen.add(following)
            pending.append(following)
            worst = max(worst, machine.weight(following))
    return worst


# A state is a tuple:
#   ("trie", prefix)            shared: the literal start read so far
#   ("first-star", prefix)      shared: the first * after that literal start
#   ("own", pattern index, i)   one pattern's own state before token i (a * if token i is one)
#   ("end", pattern index)      one pattern fully read
State = tuple[object, ...]


class _Machine:
    def __init__(self, patterns: list[tuple[str, ...]]) -> None:
        self.tokens: list[list[str | None]] = []
        self.weights: dict[State, int] = {}
        for _index, segments in enumerate(patterns):
            tokens: list[str | None] = []
            for j, segment in enumerate(segments):
                if j:
                    tokens.append(_STAR)
                tokens.extend(segment)
            self.tokens.append(tokens)
            head = segments[0]
            for length in range(1, len(head) + 1):
                self._weigh(("trie", head[:length]))
            if len(segments) > 1:
                self._weigh(("first-star", head))

    def _weigh(self, state: State) -> None:
        self.weights[state] = self.weights.get(state, 0) + 1

    def initial(self) -> frozenset[State]:
        return frozenset({("trie", "")})

    def weight(self, states: frozenset[State]) -> int:
        return sum(self.weights.get(state, 1) for state in states if state != ("trie", ""))

    def closure(self, states: set[State] | frozenset[State]) -> frozenset[State]:
        """Add the states reached without reading: a literal start that ends at its first `*` is in that `*`."""
        out = set(states)
        for state in states:
            if state[0] == "trie":
                prefix = state[1]
                assert isinstance(prefix, str)
                if ("first-star", prefix) in self.weights:
                    out.add(("first-star", prefix))
                for index, tokens in enumerate(self.tokens):
                    if _STAR not in tokens and "".join(t for t in tokens if t is not None) == prefix:
                        out.add(("end", index))
        return frozenset(out)

    def step(self, states: frozenset[State], char: str) -> set[State]:
        out: set[State] = set()
        for state in states:
            kind = state[0]
            if kind == "trie":
                prefix = state[1]
                assert isinstance(prefix, str)
                if char and ("trie", prefix + char) in self.weights:
                    out.add(("trie", prefix + char))
            elif kind == "first-star":
                out.add(state)  # a * reads anything
                for index, tokens in enumerate(self.tokens):
                    head = _head(tokens)
                    if ("first-star", head) == state:
                        self._advance(index, len(head) + 1, char, out)
            elif kind == "own":
                own, position = state[1], state[2]
                assert isinstance(own, int)
                assert isinstance(position, int)
                if self.tokens[own][position] is _STAR:
                    out.add(state)
                    self._advance(own, position + 1, char, out)
                else:
                    self._advance(own, position, char, out)
        return out

    def _advance(self, index: int, position: int, char: str, out: set[State]) -> None:
        """Read `char` at token `position` of a pattern's own states (entering a `*` that follows)."""
        tokens = self.tokens[index]
        if position >= len(tokens):
            return  # a trailing * already matched everything
        if tokens[position] is _STAR:
            return
        if char and tokens[position] == char:
            self._enter(index, position + 1, out)

    def _enter(self, index: int, position: int, out: set[State]) -> None:
        tokens = self.tokens[index]
        out.add(("end", index) if position >= len(tokens) else ("own", index, position))


def _head(tokens: list[str | None]) -> str:
    head: list[str] = []
    for token in tokens:
        if token is _STAR:
            break
        head.append(token)
    return "".join(head)
