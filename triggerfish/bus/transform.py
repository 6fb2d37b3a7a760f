"""EventBridge's input transformer: pick values out of an event and fill a template with them. Pure.

An `InputTransformer` has two parts, as on EventBridge:

- `input_paths`: variable name -> JSON path into the event (`$.detail.state`,
  `$.resources[0]`, `$.detail.items[*].sku`); at most 100 variables. A path
  that finds nothing leaves its variable unset, and `<var>` then renders as
  nothing (as AWS does).
- `input_template`: text with `<var>` placeholders. Where a placeholder
  stands as a JSON value (`{"state": <state>}`) the value goes in as JSON
  (`"RUNNING"`, `3`, `{...}`); where it stands inside a quoted string
  (`"is in <state>"`) it goes in as text: a string without its quotes, and an
  object or array with its inner quotes removed, as AWS does.

Predefined variables, reserved (no input path may use their names):
`<aws.events.rule-name>`, `<aws.events.rule-arn>`,
`<aws.events.event.ingestion-time>` (ISO 8601), `<aws.events.event>` (the
event without `detail`) and `<aws.events.event.json>` (the whole event); the
last two only as JSON values, never inside a string.

One deliberate difference: AWS does not escape a string value dropped into
a quoted string, so a value holding `"` breaks the JSON the target gets.
Triggerfish escapes `"`, `\\` and control characters there, so a template
that is JSON stays JSON whatever the event holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError

MAX_VARIABLES = 100
PREDEFINED = (
    "aws.events.rule-name",
    "aws.events.rule-arn",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
)
_WHOLE_EVENT = ("aws.events.event", "aws.events.event.json")
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]{1,256})>")
# One step of a path: .name (letters, digits, - _ /), [index] or .* / [*]
_STEP = re.compile(r"\.([A-Za-z0-9_/-]+)|\[(\d+)\]|\.\*|\[\*\]")


@dataclass(frozen=True, slots=True)
class InputTransformer:
    """Variables taken from the event by JSON path, and the template they fill."""

    input_template: str
    input_paths: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.input_template, str) or not self.input_template:
            raise InvalidInputError("input_template must be a non-empty string")
        if not isinstance(self.input_paths, Mapping):
            raise InvalidInputError("input_paths must be an object mapping variable names to JSON paths")
        if len(self.input_paths) > MAX_VARIABLES:
            raise InvalidInputError(f"input_paths has {len(self.input_paths)} variables; at most {MAX_VARIABLES}")
        for name, path in self.input_paths.items():
            if not isinstance(name, str) or not _VARIABLE_NAME.fullmatch(name):
                raise InvalidInputError(
                    f"input_paths: invalid variable name {name!r}; use letters, digits, '.', '_' and '-'"
                )
            if name in PREDEFINED:
                raise InvalidInputError(f"input_paths: {name!r} is a predefined variable and cannot be redefined")
            parse_path(path, where=f"input_paths[{name!r}]")
        for piece, in_string in _pieces(self.input_template):
            if in_string and piece in _WHOLE_EVENT:
                raise InvalidInputError(
                    f"input_template: <{piece}> can only be the value of a JSON field, not part of a string"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"input_template": self.input_template, "input_paths": dict(self.input_paths)}

    def render(
        self, event: Mapping[str, Any], *, rule_name: str = "", rule_arn: str = "", ingestion_time: str = ""
    ) -> str:
        """The template filled from `event` (the document the target would get without a transformer)."""
        values: dict[str, Any] = {}
        for name, path in self.input_paths.items():
            found, value = resolve(event, parse_path(path))
            if found:
                values[name] = value
        values["aws.events.rule-name"] = rule_name
        values["aws.events.rule-arn"] = rule_arn
        values["aws.events.event.ingestion-time"] = ingestion_time
        values["aws.events.event.json"] = dict(event)
        values["aws.events.event"] = {k: v for k, v in event.items() if k not in ("detail", "data")}
        out: list[str] = []
        for piece, in_string in _pieces(self.input_template):
            if isinstance(piece, _Text):
                out.append(piece.text)
            elif piece in values:
                out.append(_in_string(values[piece]) if in_string else _as_json(values[piece]))
            elif piece not in self.input_paths:
                out.append(f"<{piece}>")  # not a variable: left as written
            # a variable whose path found nothing renders as nothing, as on AWS
        return "".join(out)


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _pieces(template: str) -> list[tuple[Any, bool]]:
    """Split a template into text and placeholders, noting whether each placeholder sits inside a JSON string."""
    pieces: list[tuple[Any, bool]] = []
    in_string = escaped = False
    start = i = 0
    while i < len(template):
        char = template[i]
        if escaped:
            escaped = False
        elif char == "\\" and in_string:
            escaped = True
        elif char == '"':
            in_string = not in_string
        elif char == "<":
            match = _PLACEHOLDER.match(template, i)
            if match:
                pieces.append((_Text(template[start:i]), in_string))
                pieces.append((match.group(1), in_string))
                i = start = match.end()
                continue
        i += 1
    pieces.append((_Text(template[start:]), in_string))
    return pieces


def _as_json(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _in_string(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        # AWS drops the inner quotes of an object or array written into a string.
        text = _as_json(value).replace('"', "")
    else:
        text = _as_json(value)
    return _as_json(text)[1:-1]


def parse_path(path: object, *, where: str = "path") -> list[str | int | None]:
    """A JSON path (`$`, `.name`, `[0]`, `.*`, `[*]`) as steps: a key, an index, or None for a wildcard."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise InvalidInputError(f"{where}: a JSON path must be a string starting with '$', not {path!r}")
    steps: list[str | int | None] = []
    position = 1
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None:
            raise InvalidInputError(
                f"{where}: cannot read {path!r} at character {position + 1}; use dot names, [index] or * steps"
            )
        if match.group(1) is not None:
            steps.append(match.group(1))
        elif match.group(2) is not None:
            steps.append(int(match.group(2)))
        else:
            steps.append(None)
        position = match.end()
    return steps


def resolve(document: Any, steps: list[str | int | None]) -> tuple[bool, Any]:
    """(found, value) for a parsed path; a wildcard step collects the matches into a list."""
    current: list[Any] = [document]
    wildcard = False
    for step in steps:
        following: list[Any] = []
        for value in current:
            if step is None:
                wildcard = True
                following.extend(
                    value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
                )
            elif isinstance(step, int):
                if isinstance(value, list) and step < len(value):
                    following.append(value[step])
            elif isinstance(value, dict) and step in value:
                following.append(value[step])
        current = following
    if wildcard:
        return bool(current), current
    return (True, current[0]) if current else (False, None)
