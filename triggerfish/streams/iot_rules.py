"""IoT rules: `SELECT temperature, topic(2) AS room FROM 'home/+/temperature' WHERE temperature > 30`, compiled once.

    rule = compile_rule("SELECT temperature, topic(2) AS room FROM 'home/+/temperature' WHERE temperature > 30")
    rule.apply("home/kitchen/temperature", {"temperature": 31})   # {"temperature": 31, "room": "kitchen"}
    rule.apply("home/kitchen/temperature", {"temperature": 20})   # None: the WHERE clause is false

A pure engine in the spirit of AWS IoT Core's rules SQL, applied to a
stream's records before the function runs: records the rule drops are
never shown (the checkpoint moves past them), and the others reach the
function with their payload replaced by what the SELECT made. The subset
(docs/streams.md lists it):

- `SELECT *`, `SELECT <expr> [AS name], ...`, or both (`SELECT *, topic(2) AS room`);
- `FROM '<MQTT topic filter>'`, matched against the record's partition key (the MQTT topic);
- `WHERE <condition>`;
- expressions: numbers, 'strings', true, false, null, field paths (`a.b.c`), `+ - * / %`,
  `= <> != < <= > >=`, `AND OR NOT`, parentheses, and the functions `topic()`, `topic(n)`
  (the n-th level, from 1), `timestamp()` (milliseconds), `abs`, `round`, `lower`, `upper`.

As in AWS IoT, a field that is not there is *undefined*: a comparison with it is false,
and a selected expression that is undefined is left out of the result.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from triggerfish.sources.mqtt_config import check_topic_filter, topic_matches


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()

Expr = Callable[[str, Any], Any]

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.\d*|\.\d+|\d+)|(?P<string>'(?:[^']|'')*')|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><>|!=|<=|>=|[-+*/%=<>(),.]))"
)
_KEYWORDS = {"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "TRUE", "FALSE", "NULL"}


class RuleError(ValueError):
    """A rule that cannot be compiled: what is wrong and where (the character offset)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: `apply(topic, payload)` is the SELECT's output, or None when the record is dropped."""

    text: str
    topic_filter: str
    star: bool
    columns: tuple[tuple[str, Expr], ...]
    where: Expr | None

    def apply(self, topic: str, payload: Any) -> dict[str, Any] | Any | None:
        if not topic_matches(self.topic_filter, topic):
            return None
        if self.where is not None and self.where(topic, payload) is not True:
            return None
        if self.star and not self.columns:
            return payload
        out: dict[str, Any] = dict(payload) if self.star and isinstance(payload, Mapping) else {}
        for name, expr in self.columns:
            value = expr(topic, payload)
            if value is not UNDEFINED:
                out[name] = value
        return out


def compile_rule(text: object) -> Rule:
    """Compile a rule's SQL; RuleError (a ValueError) saying what is wrong, where, and what is supported."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("a rule must be SQL text such as \"SELECT * FROM 'home/+/temperature' WHERE temperature > 30\"")
    return _Parser(text).rule()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        stripped = text.rstrip()
        while position < len(stripped):
            match = _TOKEN.match(stripped, position)
            if match is None or match.end() == position:
                rest = stripped[position:]
                at = position + len(rest) - len(rest.lstrip())
                raise RuleError(f"rule {text!r}: unexpected character {rest.lstrip()[:1]!r} at {at}")
            kind = match.lastgroup or ""
            value, at = match.group(kind), match.start(kind)
            if kind == "name" and value.upper() in _KEYWORDS:
                kind, value = "keyword", value.upper()
            self.tokens.append((kind, value, at))
            position = match.end()
        self.index = 0

    # --- tokens -------------------------------------------------------------------------------

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", "", len(self.text))

    def accept(self, kind: str, value: str | None = None) -> str | None:
        token_kind, token_value, _ = self.peek()
        if token_kind == kind and (value is None or token_value == value):
            self.index += 1
            return token_value
        return None

    def expect(self, kind: str, value: str | None, wanted: str) -> str:
        got = self.accept(kind, value)
        if got is None:
            _, found, at = self.peek()
            raise RuleError(f"rule {self.text!r}: expected {wanted} at {at}, found {found or 'the end'!r}")
        return got

    # --- grammar ------------------------------------------------------------------------------

    def rule(self) -> Rule:
        self.expect("keyword", "SELECT", "SELECT")
        star = False
        columns: list[tuple[str, Expr]] = []
        while True:
            if self.accept("op", "*"):
                star = True
            else:
                start = self.peek()[2]
                expr = self.expression()
                if self.accept("keyword", "AS"):
                    name = self.expect("name", None, "a name after AS")
                else:
                    name = self._implicit_name(start)
                columns.append((name, expr))
            if not self.accept("op", ","):
                break
        self.expect("keyword", "FROM", "FROM '<topic filter>'")
        quoted = self.expect("string", None, "a quoted topic filter after FROM, e.g. 'home/+/temperature'")
        topic_filter = quoted[1:-1].replace("''", "'")
        try:
            check_topic_filter(topic_filter)
        except ValueError as exc:
            raise RuleError(f"rule {self.text!r}: {exc}") from None
        where = self.expression() if self.accept("keyword", "WHERE") else None
        if self.peek()[0] != "end":
            _, found, at = self.peek()
            raise RuleError(f"rule {self.text!r}: unexpected {found!r} at {at}; the rule ends after WHERE's condition")
        return Rule(self.text, topic_filter, star, tuple(columns), where)

    def _implicit_name(self, start: int) -> str:
        """A column without AS is named for its field (`a.b` -> `b`), as AWS IoT names it."""
        kind, value, _ = self.tokens[self.index - 1]
        if kind == "name":
            return value
        raise RuleError(f"rule {self.text!r}: the expression at {start} needs a name: add AS <name>")

    def expression(self) -> Expr:
        left = self.conjunction()
        while self.accept("keyword", "OR"):
            right, first = self.conjunction(), left
            left = _bool_op(True, first, right)
        return left

    def conjunction(self) -> Expr:
        left = self.negation()
        while self.accept("keyword", "AND"):
            right, first = self.negation(), left
            left = _bool_op(False, first, right)
        return left

    def negation(self) -> Expr:
        if self.accept("keyword", "NOT"):
            inner = self.negation()

            def negate(topic: str, payload: Any) -> Any:
                value = inner(topic, payload)
                return not value if isinstance(value, bool) else UNDEFINED

            return negate
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.additive()
        for op in ("=", "<>", "!=", "<=", ">=", "<", ">"):
            if self.accept("op", op):
                return _compare(op, left, self.additive())
        return left

    def additive(self) -> Expr:
        left = self.term()
        while (op := self.accept("op", "+") or self.accept("op", "-")) is not None:
            left = _arith(op, left, self.term())
        return left

    def term(self) -> Expr:
        left = self.unary()
        while (op := self.accept("op", "*") or self.accept("op", "/") or self.accept("op", "%")) is not None:
            left = _arith(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.accept("op", "-"):
            inner = self.unary()
            return _arith("-", lambda t, p: 0, inner)
        return self.primary()

    def primary(self) -> Expr:
        _, value, at = self.peek()
        if self.accept("number"):
            number: Any = float(value) if "." in value else int(value)
            return lambda t, p: number
        if self.accept("string"):
            text = value[1:-1].replace("''", "'")
            return lambda t, p: text
        if self.accept("keyword", "TRUE"):
            return lambda t, p: True
        if self.accept("keyword", "FALSE"):
            return lambda t, p: False
        if self.accept("keyword", "NULL"):
            return lambda t, p: None
        if self.accept("op", "("):
            inner = self.expression()
            self.expect("op", ")", "')'")
            return inner
        if self.accept("name"):
            if self.accept("op", "("):
                return self.function(value, at)
            path = [value]
            while self.accept("op", "."):
                path.append(self.expect("name", None, "a field name after '.'"))
            return _field(tuple(path))
        raise RuleError(
            f"rule {self.text!r}: expected a value, a field or a function at {at}, found {value or 'the end'!r}"
        )

    def function(self, name: str, at: int) -> Expr:
        args: list[Expr] = []
        if not self.accept("op", ")"):
            while True:
                args.append(self.expression())
                if self.accept("op", ")"):
                    break
                self.expect("op", ",", "',' or ')'")
        lowered = name.lower()
        made = _FUNCTIONS.get(lowered)
        if made is None:
            raise RuleError(
                f"rule {self.text!r}: unknown function {name!r} at {at}; supported: {', '.join(sorted(_FUNCTIONS))}"
            )
        try:
            return made(args)
        except (TypeError, ValueError):
            raise RuleError(f"rule {self.text!r}: {name}() at {at} takes other arguments (docs/streams.md)") from None


def _field(path: tuple[str, ...]) -> Expr:
    def get(topic: str, payload: Any) -> Any:
        value = payload
        for name in path:
            if not isinstance(value, Mapping) or name not in value:
                return UNDEFINED
            value = value[name]
        return value

    return get


def _bool_op(decides: bool, left: Expr, right: Expr) -> Expr:
    """OR (`decides` True) or AND (False), three-valued: one side equal to `decides` settles it."""

    def run(topic: str, payload: Any) -> Any:
        a, b = left(topic, payload), right(topic, payload)
        if a is decides or b is decides:
            return decides
        if isinstance(a, bool) and isinstance(b, bool):
            return not decides
        return UNDEFINED

    return run


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(op: str, left: Expr, right: Expr) -> Expr:
    def run(topic: str, payload: Any) -> Any:
        a, b = left(topic, payload), right(topic, payload)
        if a is UNDEFINED or b is UNDEFINED:
            return UNDEFINED
        if op in ("=", "<>", "!="):
            same = a == b and (_number(a) == _number(b))
            return same if op == "=" else not same
        if not ((_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))):
            return UNDEFINED
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    return run


def _arith(op: str, left: Expr, right: Expr) -> Expr:
    def run(topic: str, payload: Any) -> Any:
        a, b = left(topic, payload), right(topic, payload)
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if not (_number(a) and _number(b)):
            return UNDEFINED
        if op in ("/", "%") and b == 0:
            return UNDEFINED
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b, "%": lambda: a % b}[
            op
        ]()

    return run


def _topic(args: list[Expr]) -> Expr:
    if not args:
        return lambda topic, payload: topic
    (level,) = args

    def run(topic: str, payload: Any) -> Any:
        n = level(topic, payload)
        levels = topic.split("/")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(levels):
            return UNDEFINED
        return levels[n - 1]

    return run


def _timestamp(args: list[Expr]) -> Expr:
    if args:
        raise TypeError
    return lambda topic, payload: int(time.time() * 1000)


def _one(apply: Callable[[Any], Any], accepts: Callable[[Any], bool]) -> Callable[[list[Expr]], Expr]:
    def make(args: list[Expr]) -> Expr:
        (inner,) = args

        def run(topic: str, payload: Any) -> Any:
            value = inner(topic, payload)
            return apply(value) if accepts(value) else UNDEFINED

        return run

    return make


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


_FUNCTIONS: dict[str, Callable[[list[Expr]], Expr]] = {
    "topic": _topic,
    "timestamp": _timestamp,
    "abs": _one(abs, _number),
    "round": _one(round, _number),
    "lower": _one(str.lower, _is_str),
    "upper": _one(str.upper, _is_str),
}
