"""Declarations of the control API's inputs that both check a request and describe it as JSON Schema (pure).

    SEND = Object(
        {"body": AnyValue("the message"), "delay": Number(minimum=0, maximum=900)},
        required=("body",),
    )
    SEND.check({"body": "x", "delay": 5}, "body")      # the value, checked
    SEND.check({"delay": "soon"}, "body")              # InvalidInputError: body: body is required: the message
    SEND.json_schema()                                 # {"type": "object", "properties": {...}, ...}

One declaration, two readings: `check` refuses what the schema forbids with a
message naming the place (`body.targets[0].kind must be one of ...`), and
`json_schema` is the same constraint for the OpenAPI document, so the document
cannot promise what the server refuses or let through what it says it
refuses. Only the JSON Schema keywords both sides mean the same way are used:
types, `enum`, `minimum`/`maximum`, `minLength`/`maxLength`, `pattern` (always
anchored, matched whole), `required`, `additionalProperties`,
`minItems`/`maxItems`. `Named` makes a schema a component (`$ref`) of the document.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from triggerfish.errors import InvalidInputError


class Schema(ABC):
    """A JSON value's constraints: `check` enforces them, `json_schema` states them."""

    description: str = ""

    @abstractmethod
    def check(self, value: Any, where: str) -> Any:
        """`value` when it conforms (numbers made whole where asked); InvalidInputError naming `where` if not."""

    @abstractmethod
    def _schema(self) -> dict[str, Any]: ...

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (2020-12, as OpenAPI 3.1 reads it) of what `check` accepts."""
        schema = self._schema()
        if self.description:
            schema["description"] = self.description
        return schema

    def parse(self, text: str, where: str) -> Any:
        """A query or path parameter's text read as this schema's value, then checked."""
        return self.check(text, where)

    def components(self) -> dict[str, Schema]:
        """The named schemas within this one (for the document's components)."""
        return {}


def _refuse(where: str, what: str, value: Any) -> InvalidInputError:
    return InvalidInputError(f"{where} must be {what}, not {_shown(value)}")


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" of at least {low:g}"
    if high is not None:
        return f" of at most {high:g}"
    return ""


class AnyValue(Schema):
    """Any JSON value."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def check(self, value: Any, where: str) -> Any:
        return value

    def _schema(self) -> dict[str, Any]:
        return {}


class Boolean(Schema):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, bool):
            raise _refuse(where, "true or false", value)
        return value

    def parse(self, text: str, where: str) -> Any:
        if text in ("true", "false"):
            return text == "true"
        raise _refuse(where, "true or false", text)

    def _schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Number(Schema):
    """A finite number within [minimum, maximum]; with `whole`, an integer (2.0 counts, and is made 2)."""

    def __init__(
        self,
        description: str = "",
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        whole: bool = False,
    ) -> None:
        self.description = description
        self.minimum = minimum
        self.maximum = maximum
        self.whole = whole

    def check(self, value: Any, where: str) -> Any:
        ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
        if ok and self.whole:
            ok = isinstance(value, int) or float(value).is_integer()
            value = int(value) if ok else value
        if ok and self.minimum is not None and value < self.minimum:
            ok = False
        if ok and self.maximum is not None and value > self.maximum:
            ok = False
        if not ok:
            kind = "a whole number" if self.whole else "a number"
            raise _refuse(where, kind + _range(self.minimum, self.maximum), value)
        return value

    def parse(self, text: str, where: str) -> Any:
        try:
            value: Any = int(text) if self.whole and text.lstrip("-").isdigit() else float(text)
        except ValueError:
            value = text
        if isinstance(value, float) and not math.isfinite(value):
            value = text
        return self.check(value, where)

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer" if self.whole else "number"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


def Integer(description: str = "", *, minimum: int | None = None, maximum: int | None = None) -> Number:
    """A whole number within [minimum, maximum]."""
    return Number(description, minimum=minimum, maximum=maximum, whole=True)


class Text(Schema):
    """A string: `min_length` to `max_length` characters, matching `pattern` whole when given."""

    def __init__(
        self,
        description: str = "",
        *,
        min_length: int = 0,
        max_length: int | None = None,
        pattern: str | None = None,
        hint: str = "",
        hidden: bool = False,
    ) -> None:
        self.description = description
        #: A value never repeated in an error message (a secret's): refusals describe it, never quote it.
        self.hidden = hidden
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern
        self._compiled = None if pattern is None else re.compile(pattern)
        #: What a valid value looks like, for the error message (`letters, digits and -`).
        self.hint = hint

    def check(self, value: Any, where: str) -> Any:
        if self.hidden:
            self._check_hidden(value, where)
        if not isinstance(value, str):
            raise _refuse(where, "a string", value)
        if len(value) < self.min_length or (self.max_length is not None and len(value) > self.max_length):
            if self.max_length is None:
                raise _refuse(where, f"a string of at least {self.min_length} characters", value)
            raise _refuse(where, f"a string of {self.min_length} to {self.max_length} characters", value)
        if self._compiled is not None and not self._compiled.fullmatch(value):
            raise _refuse(where, self.hint or f"a string matching {self.pattern}", value)
        return value

    def _check_hidden(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise InvalidInputError(f"{where} must be a string, not {_json_kind(value)}")
        if len(value) < self.min_length or (self.max_length is not None and len(value) > self.max_length):
            most = "" if self.max_length is None else f" to {self.max_length}"
            raise InvalidInputError(f"{where} must be {self.min_length}{most} characters long, not {len(value)}")
        if self._compiled is not None and not self._compiled.fullmatch(value):
            raise InvalidInputError(f"{where} must be {self.hint or 'of the documented form'} (not shown here)")

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern is not None:
            # Anchored: JSON Schema's pattern matches anywhere, and the check matches the whole string.
            schema["pattern"] = f"^(?:{self.pattern})$"
        return schema


class Enum(Schema):
    """One of a few strings; with `any_case`, in any case, read as the declared spelling."""

    def __init__(self, values: Sequence[str], description: str = "", *, any_case: bool = False) -> None:
        self.values = tuple(values)
        self.description = description
        self.any_case = any_case
        self._folded = {value.lower(): value for value in self.values}

    def check(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            if value in self.values:
                return value
            if self.any_case and value.lower() in self._folded:
                return self._folded[value.lower()]
        raise _refuse(where, "one of " + ", ".join(self.values) + (" (any case)" if self.any_case else ""), value)

    def _schema(self) -> dict[str, Any]:
        if not self.any_case:
            return {"type": "string", "enum": list(self.values)}
        # JSON Schema has no case-insensitive enum; a pattern with both cases of every letter says the same.
        spelled = (
            "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in v) for v in self.values
        )
        return {"type": "string", "pattern": "^(?:" + "|".join(spelled) + ")$", "examples": list(self.values)}


class Array(Schema):
    def __init__(
        self, items: Schema, description: str = "", *, min_items: int = 0, max_items: int | None = None
    ) -> None:
        self.items = items
        self.description = description
        self.min_items = min_items
        self.max_items = max_items

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, list):
            raise _refuse(where, "an array", value)
        if len(value) < self.min_items or (self.max_items is not None and len(value) > self.max_items):
            bounds = _range(self.min_items, self.max_items).replace("from", "of", 1)
            raise InvalidInputError(f"{where} must be an array{bounds} items, not {len(value)}")
        if type(self.items) is AnyValue:  # nothing to check per item (a producer's batch of events): no path each
            return list(value)
        return [self.items.check(item, f"{where}[{index}]") for index, item in enumerate(value)]

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.items.json_schema()}
        if self.min_items:
            schema["minItems"] = self.min_items
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema

    def components(self) -> dict[str, Schema]:
        return self.items.components()


class Object(Schema):
    """An object with the given `properties`; `required` ones must be there; others are refused unless
    `additional` (a schema every other property's value must match) allows them."""

    def __init__(
        self,
        properties: Mapping[str, Schema],
        description: str = "",
        *,
        required: Sequence[str] = (),
        additional: Schema | None = None,
        key_pattern: str | None = None,
    ) -> None:
        unknown = set(required) - set(properties)
        if unknown:
            raise ValueError(f"required properties {sorted(unknown)} are not declared")
        self.properties = dict(properties)
        self.description = description
        self.required = tuple(required)
        self.additional = additional
        self.key_pattern = key_pattern

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise InvalidInputError(f"{where} must be a JSON object, not {_json_kind(value)}")
        # Unknown fields first: a misspelt name explains a "missing" one.
        for name in value:
            if name in self.properties:
                continue
            if self.additional is None:
                raise InvalidInputError(
                    f"{where}: unknown field {name!r}; the fields are: {', '.join(self.properties) or 'none'}"
                )
            if self.key_pattern is not None and not re.fullmatch(self.key_pattern, name):
                raise InvalidInputError(f"{where}: the key {name!r} must match {self.key_pattern}")
        for name in self.required:
            if name not in value:
                described = self.properties[name].description
                raise InvalidInputError(f"{where}: {name} is required" + (f": {described}" if described else ""))
        checked: dict[str, Any] = {}
        for name, item in value.items():
            schema = self.properties.get(name)
            checked[name] = (schema or self.additional or AnyValue()).check(item, f"{where}.{name}")
        return checked

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object"}
        if self.properties:
            schema["properties"] = {name: s.json_schema() for name, s in self.properties.items()}
        if self.required:
            schema["required"] = list(self.required)
        schema["additionalProperties"] = False if self.additional is None else self.additional.json_schema()
        if self.key_pattern is not None:
            schema["propertyNames"] = {"pattern": f"^(?:{self.key_pattern})$"}
        return schema

    def components(self) -> dict[str, Schema]:
        found: dict[str, Schema] = {}
        for schema in (*self.properties.values(), *([self.additional] if self.additional else [])):
            found.update(schema.components())
        return found


class Nullable(Schema):
    """`schema`, or null."""

    def __init__(self, schema: Schema, description: str = "") -> None:
        self.schema = schema
        self.description = description or schema.description

    def check(self, value: Any, where: str) -> Any:
        return None if value is None else self.schema.check(value, where)

    def _schema(self) -> dict[str, Any]:
        inner = self.schema.json_schema()
        inner.pop("description", None)
        return {"anyOf": [inner, {"type": "null"}]}

    def components(self) -> dict[str, Schema]:
        return self.schema.components()


class Moment(Schema):
    """A time: epoch seconds (a number, or its text), or ISO 8601 with a zone (`2024-05-01T12:00:00Z`).

    `check` returns epoch seconds as a float.
    """

    description = "Epoch seconds, or an ISO 8601 time with a zone (2024-05-01T12:00:00Z)"

    def check(self, value: Any, where: str) -> Any:
        import datetime

        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
            try:
                parsed = datetime.datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None:
                raise InvalidInputError(
                    f"{where} must be epoch seconds or an ISO 8601 time with a zone such as 2024-05-01T12:00:00Z,"
                    f" not {_shown(value)}"
                )
            return parsed.timestamp()
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInputError(f"{where} must be epoch seconds or an ISO 8601 time, not {_shown(value)}")
        return float(value)

    def _schema(self) -> dict[str, Any]:
        return {"type": ["number", "string"]}


class Named(Schema):
    """`schema` as a component of the document: described once, referred to by `$ref` wherever used."""

    def __init__(self, name: str, schema: Schema) -> None:
        self.name = name
        self.schema = schema
        self.description = ""

    def check(self, value: Any, where: str) -> Any:
        return self.schema.check(value, where)

    def parse(self, text: str, where: str) -> Any:
        return self.schema.parse(text, where)

    def _schema(self) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{self.name}"}

    def components(self) -> dict[str, Schema]:
        return {self.name: self.schema, **self.schema.components()}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
