"""DynamoDB's expression languages, parsed: conditions, key conditions, updates and projections.

    inputs = Inputs(names={"#s": "status"}, values={":paid": {"S": "PAID"}})
    condition = parse_condition("#s = :paid AND attribute_exists(total)", inputs, "ConditionExpression")
    update = parse_update("SET total = total + :n REMOVE draft", inputs)
    inputs.check_unused()        # DynamoDB refuses names and values no expression used

Placeholders are resolved while parsing, so the trees hold attribute names and typed
values only; `evaluate.py` runs them against items. Errors are ValidationErrors with
DynamoDB's own wording (`Invalid ConditionExpression: Syntax error; token: ...`).
The grammar and precedence are DynamoDB's: NOT binds tighter than AND, AND than OR;
comparisons, BETWEEN and IN sit below the functions. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from triggerfish.tables.errors import ValidationError
from triggerfish.tables.values import AttributeValue, check_value

# --- the trees --------------------------------------------------------------------------------

PathElement = str | int


@dataclass(frozen=True, slots=True)
class Path:
    elements: tuple[PathElement, ...]

    def __str__(self) -> str:
        text = ""
        for element in self.elements:
            text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else element)
        return text


@dataclass(frozen=True, slots=True)
class Value:
    value: AttributeValue


@dataclass(frozen=True, slots=True)
class Size:
    path: Path


@dataclass(frozen=True, slots=True)
class IfNotExists:
    path: Path
    default: Operand


@dataclass(frozen=True, slots=True)
class ListAppend:
    first: Operand
    second: Operand


@dataclass(frozen=True, slots=True)
class Arithmetic:
    op: str  # "+" or "-"
    left: Operand
    right: Operand


Operand = Path | Value | Size | IfNotExists | ListAppend | Arithmetic


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # = <> < <= > >=
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True, slots=True)
class In:
    operand: Operand
    choices: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class Function:
    name: str  # attribute_exists, attribute_not_exists, attribute_type, begins_with, contains
    args: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class And:
    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Or:
    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Not:
    condition: Condition


Condition = Compare | Between | In | Function | And | Or | Not


@dataclass(frozen=True, slots=True)
class Update:
    """An UpdateExpression's clauses: SET pairs, REMOVE paths, ADD and DELETE pairs."""

    set: tuple[tuple[Path, Operand], ...] = ()
    remove: tuple[Path, ...] = ()
    add: tuple[tuple[Path, AttributeValue], ...] = ()
    delete: tuple[tuple[Path, AttributeValue], ...] = ()

    def paths(self) -> list[Path]:
        return [p for p, _ in self.set] + list(self.remove) + [p for p, _ in self.add] + [p for p, _ in self.delete]


@dataclass(frozen=True, slots=True)
class KeyCondition:
    """A query's key condition: the partition key's value and, optionally, a condition on the sort key."""

    partition_name: str
    partition_value: AttributeValue
    #: (operator, sort key name, values): "=", "<", "<=", ">", ">=", "BETWEEN" (two values), "begins_with".
    sort: tuple[str, str, tuple[AttributeValue, ...]] | None = None


# --- placeholders -----------------------------------------------------------------------------


@dataclass
class Inputs:
    """A request's ExpressionAttributeNames and ExpressionAttributeValues, and which of them were used."""

    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    used_names: set[str] = field(default_factory=set)
    used_values: set[str] = field(default_factory=set)

    def name(self, token: str, kind: str) -> str:
        if token not in self.names:
            raise ValidationError(
                f"Invalid {kind}: An expression attribute name used in the document path is not defined;"
                f" attribute name: {token}"
            )
        self.used_names.add(token)
        return str(self.names[token])

    def value(self, token: str, kind: str) -> AttributeValue:
        if token not in self.values:
            raise ValidationError(
                f"Invalid {kind}: An expression attribute value used in expression is not defined;"
                f" attribute value: {token}"
            )
        self.used_values.add(token)
        return check_value(self.values[token], f"ExpressionAttributeValues.{token}")

    def check_unused(self) -> None:
        """DynamoDB's refusal of placeholders no expression of the request used."""
        unused = sorted(set(self.names) - self.used_names)
        if unused:
            raise ValidationError(
                f"Value provided in ExpressionAttributeNames unused in expressions: keys: {{{', '.join(unused)}}}"
            )
        unused = sorted(set(self.values) - self.used_values)
        if unused:
            raise ValidationError(
                f"Value provided in ExpressionAttributeValues unused in expressions: keys: {{{', '.join(unused)}}}"
            )


# --- the tokenizer ----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<name>#[A-Za-z0-9_]+)|(?P<value>:[A-Za-z0-9_]+)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<index>\[\s*[0-9]+\s*\])|(?P<op><>|<=|>=|[=<>(),.+\-])|(?P<bad>\S))"
)
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}
_CONDITION_FUNCTIONS = {"attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2, "begins_with": 2,
                        "contains": 2}  # fmt: skip
_UPDATE_FUNCTIONS = {"if_not_exists": 2, "list_append": 2}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, value, word, index, op, end
    text: str


def _tokens(text: str, kind: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing space is left
            break
        position = match.end()
        group = match.lastgroup
        if group is None:
            break
        token = match.group(group)
        if group == "bad":
            near = text[max(0, match.start() - 8) : position + 8].strip()
            raise ValidationError(f'Invalid {kind}: Syntax error; token: "{token}", near: "{near}"')
        found.append(_Token(group, token))
    found.append(_Token("end", "<EOF>"))
    return found


class _Parser:
    def __init__(self, text: object, inputs: Inputs, kind: str) -> None:
        if not isinstance(text, str):
            raise ValidationError(f"{kind} must be a string, not {type(text).__name__}")
        if not text.strip():
            raise ValidationError(f"Invalid {kind}: The expression can not be empty;")
        self.kind = kind
        self.inputs = inputs
        self.tokens = _tokens(text, kind)
        self.at = 0

    # -- helpers --

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.at + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.at += 1
        return token

    def is_word(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "word" and token.text.upper() == word

    def is_op(self, op: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text == op

    def expect_op(self, op: str) -> None:
        if not self.is_op(op):
            raise self.syntax()
        self.take()

    def syntax(self) -> ValidationError:
        token = self.peek()
        near = " ".join(t.text for t in self.tokens[max(0, self.at - 1) : self.at + 2] if t.kind != "end")
        return ValidationError(f'Invalid {self.kind}: Syntax error; token: "{token.text}", near: "{near}"')

    def done(self) -> None:
        if self.peek().kind != "end":
            raise self.syntax()

    # -- paths and operands --

    def path(self) -> Path:
        token = self.take()
        elements: list[PathElement] = []
        if token.kind == "name":
            elements.append(self.inputs.name(token.text, self.kind))
        elif token.kind == "word" and token.text.upper() not in _KEYWORDS:
            elements.append(token.text)
        else:
            self.at -= 1
            raise self.syntax()
        while True:
            if self.peek().kind == "index":
                elements.append(int(self.take().text.strip("[] ")))
            elif self.is_op("."):
                self.take()
                token = self.take()
                if token.kind == "name":
                    elements.append(self.inputs.name(token.text, self.kind))
                elif token.kind == "word":
                    elements.append(token.text)
                else:
                    self.at -= 1
                    raise self.syntax()
            else:
                return Path(tuple(elements))

    def function_call(self, allowed: Mapping[str, int]) -> tuple[str, list[Any]]:
        name = self.take().text
        if name not in allowed:
            raise ValidationError(f"Invalid {self.kind}: Invalid function name; function: {name}")
        self.expect_op("(")
        args: list[Any] = []
        while not self.is_op(")"):
            if args:
                self.expect_op(",")
            args.append(self.update_value() if name in _UPDATE_FUNCTIONS else self.operand())
        self.take()
        if len(args) != allowed[name]:
            raise ValidationError(
                f"Invalid {self.kind}: Incorrect number of operands for operator or function;"
                f" operator or function: {name}, number of operands: {len(args)}"
            )
        return name, args

    def operand(self) -> Operand:
        token = self.peek()
        if token.kind == "value":
            self.take()
            return Value(self.inputs.value(token.text, self.kind))
        if token.kind == "word" and token.text == "size" and self.peek(1).text == "(":
            _, args = self.function_call({"size": 1})
            if not isinstance(args[0], Path):
                raise self._operand_type("size", args[0])
            return Size(args[0])
        if token.kind == "word" and self.peek(1).text == "(":
            name = token.text
            if name in _CONDITION_FUNCTIONS:
                raise ValidationError(
                    f"Invalid {self.kind}: The function is not allowed to be used this way in an expression;"
                    f" function: {name}"
                )
            raise ValidationError(f"Invalid {self.kind}: Invalid function name; function: {name}")
        return self.path()

    def _operand_type(self, function: str, operand: Any) -> ValidationError:
        return ValidationError(
            f"Invalid {self.kind}: Incorrect operand type for operator or function; operator or function: {function},"
            f" operand type: {type(operand).__name__.upper()}"
        )

    # -- conditions --

    def condition(self) -> Condition:
        left = self.conjunction()
        while self.is_word("OR"):
            self.take()
            left = Or(left, self.conjunction())
        return left

    def conjunction(self) -> Condition:
        left = self.negation()
        while self.is_word("AND"):
            self.take()
            left = And(left, self.negation())
        return left

    def negation(self) -> Condition:
        if self.is_word("NOT"):
            self.take()
            return Not(self.negation())
        return self.predicate()

    def predicate(self) -> Condition:
        if self.is_op("("):
            self.take()
            inner = self.condition()
            self.expect_op(")")
            return inner
        token = self.peek()
        if token.kind == "word" and token.text in _CONDITION_FUNCTIONS and self.peek(1).text == "(":
            name, args = self.function_call(_CONDITION_FUNCTIONS)
            if not isinstance(args[0], Path):
                raise self._operand_type(name, args[0])
            return Function(name, tuple(args))
        left = self.operand()
        token = self.peek()
        if token.kind == "op" and token.text in ("=", "<>", "<", "<=", ">", ">="):
            self.take()
            return Compare(token.text, left, self.operand())
        if self.is_word("BETWEEN"):
            self.take()
            low = self.operand()
            if not self.is_word("AND"):
                raise self.syntax()
            self.take()
            return Between(left, low, self.operand())
        if self.is_word("IN"):
            self.take()
            self.expect_op("(")
            choices = [self.operand()]
            while self.is_op(","):
                self.take()
                choices.append(self.operand())
            self.expect_op(")")
            if len(choices) > 100:
                raise ValidationError(f"Invalid {self.kind}: The IN operator takes at most 100 operands")
            return In(left, tuple(choices))
        raise self.syntax()

    # -- updates --

    def update_value(self) -> Operand:
        left = self.update_operand()
        if self.is_op("+") or self.is_op("-"):
            op = self.take().text
            return Arithmetic(op, left, self.update_operand())
        return left

    def update_operand(self) -> Operand:
        token = self.peek()
        if token.kind == "word" and self.peek(1).text == "(":
            name, args = self.function_call(_UPDATE_FUNCTIONS)
            if name == "if_not_exists":
                if not isinstance(args[0], Path):
                    raise self._operand_type(name, args[0])
                return IfNotExists(args[0], args[1])
            return ListAppend(args[0], args[1])
        if token.kind == "value":
            self.take()
            return Value(self.inputs.value(token.text, self.kind))
        return self.path()

    def update(self) -> Update:
        clauses: dict[str, list[Any]] = {}
        while self.peek().kind != "end":
            token = self.take()
            word = token.text.upper() if token.kind == "word" else ""
            if word not in ("SET", "REMOVE", "ADD", "DELETE"):
                self.at -= 1
                raise self.syntax()
            if word in clauses:
                raise ValidationError(
                    f'Invalid {self.kind}: The "{word}" section can only be used once in an update expression;'
                )
            items: list[Any] = []
            while True:
                path = self.path()
                if word == "SET":
                    self.expect_op("=")
                    items.append((path, self.update_value()))
                elif word == "REMOVE":
                    items.append(path)
                else:
                    token = self.take()
                    if token.kind != "value":
                        self.at -= 1
                        raise self.syntax()
                    items.append((path, self.inputs.value(token.text, self.kind)))
                if not self.is_op(","):
                    break
                self.take()
            clauses[word] = items
        update = Update(
            tuple(clauses.get("SET", ())), tuple(clauses.get("REMOVE", ())),
            tuple(clauses.get("ADD", ())), tuple(clauses.get("DELETE", ())),
        )  # fmt: skip
        _check_overlaps(update.paths(), self.kind)
        return update


def _check_overlaps(paths: list[Path], kind: str) -> None:
    for i, first in enumerate(paths):
        for second in paths[i + 1 :]:
            shorter = min(len(first.elements), len(second.elements))
            if first.elements[:shorter] == second.elements[:shorter]:
                one = ", ".join(map(str, first.elements))
                two = ", ".join(map(str, second.elements))
                reason = "conflict" if len(first.elements) == len(second.elements) else "overlap with each other"
                raise ValidationError(
                    f"Invalid {kind}: Two document paths {reason}; must remove or rewrite one of these paths;"
                    f" path one: [{one}], path two: [{two}]"
                )


# --- entry points -------------------------------------------------------------------------------


def parse_condition(text: object, inputs: Inputs, kind: str = "ConditionExpression") -> Condition:
    parser = _Parser(text, inputs, kind)
    condition = parser.condition()
    parser.done()
    return condition


def parse_update(text: object, inputs: Inputs) -> Update:
    parser = _Parser(text, inputs, "UpdateExpression")
    return parser.update()


def parse_projection(text: object, inputs: Inputs) -> list[Path]:
    parser = _Parser(text, inputs, "ProjectionExpression")
    paths = [parser.path()]
    while parser.is_op(","):
        parser.take()
        paths.append(parser.path())
    parser.done()
    return paths


def parse_key_condition(text: object, inputs: Inputs, partition_key: str, sort_key: str | None) -> KeyCondition:
    """A query's KeyConditionExpression, checked against the table's keys as DynamoDB checks it."""
    kind = "KeyConditionExpression"
    condition = parse_condition(text, inputs, kind)
    parts = [condition.left, condition.right] if isinstance(condition, And) else [condition]
    if any(isinstance(p, (And, Or, Not, In)) for p in parts) or isinstance(condition, (Or, Not)):
        raise ValidationError(f"Invalid {kind}: the key condition holds one partition key equality and at most one"
                              " sort key condition joined by AND")  # fmt: skip
    partition: AttributeValue | None = None
    sort: tuple[str, str, tuple[AttributeValue, ...]] | None = None
    for part in parts:
        name, op, values = _key_part(part, kind)
        if name == partition_key and op == "=":
            if partition is not None:
                raise ValidationError(f"Invalid {kind}: the partition key {name!r} is compared twice")
            partition = values[0]
        elif name == sort_key:
            if sort is not None:
                raise ValidationError(f"Invalid {kind}: the sort key {name!r} has two conditions")
            sort = (op, name, values)
        elif name == partition_key:
            raise ValidationError(f"Query key condition not supported: the partition key {name!r} takes only =")
        else:
            raise ValidationError(f"Query condition missed key schema element: {name} is not a key attribute")
    if partition is None:
        raise ValidationError(f"Query condition missed key schema element: {partition_key}")
    return KeyCondition(partition_key, partition, sort)


def _key_part(part: Condition, kind: str) -> tuple[str, str, tuple[AttributeValue, ...]]:
    if isinstance(part, Compare) and part.op != "<>":
        left, right, op = part.left, part.right, part.op
        if isinstance(right, Path) and isinstance(left, Value):
            left, right = right, left
            op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
        if isinstance(left, Path) and isinstance(right, Value) and len(left.elements) == 1:
            return str(left.elements[0]), op, (right.value,)
    if (
        isinstance(part, Between)
        and isinstance(part.operand, Path)
        and len(part.operand.elements) == 1
        and isinstance(part.low, Value)
        and isinstance(part.high, Value)
    ):
        return str(part.operand.elements[0]), "BETWEEN", (part.low.value, part.high.value)
    if isinstance(part, Function) and part.name == "begins_with":
        path, prefix = part.args
        if isinstance(path, Path) and isinstance(prefix, Value) and len(path.elements) == 1:
            return str(path.elements[0]), "begins_with", (prefix.value,)
    raise ValidationError(f"Invalid {kind}: Query key condition not supported")
