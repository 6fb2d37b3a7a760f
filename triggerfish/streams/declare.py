"""What the stream decorators take beyond Lambda's batch settings, checked at declaration (pure, no I/O).

    extras = stream_extras({"window": 60, "to_bus": True, "rule": "SELECT * FROM 'home/#'"}, bad, positions=False)

`window` (tumbling windows, 1 to 900 seconds as on Lambda), `to_bus` (the
records go to a bus as CloudEvents instead of to the function), `rule` (an
IoT rule, compiled here so a bad one fails the declaration), and, for
sources that have positions (the built-in stream, JetStream, Redis
Streams), `starting_position` with its timestamp. Also the names those
sources take: NATS subjects and stream names, Redis stream keys, the
built-in stream's name and partition-key field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from triggerfish.errors import DeclarationError

#: Where a new consumer starts reading, as Lambda names it for Kinesis.
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
#: Lambda's longest tumbling window.
MAX_WINDOW = 900.0
_NATS_TOKEN = re.compile(r"^[^\s.*>]+$")
_NATS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def stream_extras(
    options: Mapping[str, Any], bad: Callable[[str], DeclarationError], *, positions: bool
) -> dict[str, Any]:
    """The checked `window`, `to_bus`, `rule` (and with `positions`, `starting_position`[_timestamp])."""
    out: dict[str, Any] = {}
    window = options.get("window", 0)
    if isinstance(window, bool) or not isinstance(window, int | float) or not (0 <= window <= MAX_WINDOW):
        raise bad(f"window must be 0 (none) or a tumbling window of 1 to {MAX_WINDOW:g} seconds, not {window!r}")
    if 0 < window < 1 or (window and not math.isfinite(window)):
        raise bad(f"window must be at least 1 second, not {window!r}")
    out["window"] = float(window)
    to_bus = options.get("to_bus")
    if to_bus is True:
        out["to_bus"] = "default"
    elif to_bus is None or to_bus is False:
        out["to_bus"] = None
    elif isinstance(to_bus, str) and _STREAM_NAME.match(to_bus):
        out["to_bus"] = to_bus
    else:
        raise bad(f"to_bus must be True (the default bus), False, or a bus name such as 'devices', not {to_bus!r}")
    if out["to_bus"] and out["window"]:
        raise bad("to_bus and window do not go together: records sent to a bus are not windowed")
    rule = options.get("rule")
    if rule is not None:
        from triggerfish.streams.iot_rules import compile_rule

        try:
            compile_rule(rule)
        except ValueError as exc:
            raise bad(str(exc)) from None
    out["rule"] = rule
    if positions:
        position = options.get("starting_position", "TRIM_HORIZON")
        stamp = options.get("starting_position_timestamp")
        if position not in STARTING_POSITIONS:
            raise bad(f"starting_position must be one of {', '.join(STARTING_POSITIONS)}, not {position!r}")
        if position == "AT_TIMESTAMP":
            if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp) or stamp < 0:
                raise bad(
                    "starting_position='AT_TIMESTAMP' needs starting_position_timestamp, seconds since the epoch"
                    f" such as 1767225600, not {stamp!r}"
                )
            stamp = float(stamp)
        elif stamp is not None:
            raise bad(f"starting_position_timestamp goes with starting_position='AT_TIMESTAMP', not {position!r}")
        out["starting_position"], out["starting_position_timestamp"] = position, stamp
    return out


def check_nats_subject(subject: object) -> str:
    """A NATS subject filter: dot-separated tokens, `*` a whole token, `>` a whole last token."""
    example = "such as 'orders.>' or 'orders.*.created'"
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"the NATS subject must be a non-empty string {example}, not {subject!r}")
    tokens = subject.split(".")
    for index, token in enumerate(tokens, start=1):
        if token == ">" and index == len(tokens):
            continue
        if token == "*":
            continue
        if not _NATS_TOKEN.match(token):
            raise ValueError(
                f"the NATS subject {subject!r}: token {index} ({token!r}) is empty, holds white space, or uses '*'"
                f" or '>' inside a token; {example}"
            )
    return subject


def nats_subject_matches(subject_filter: str, subject: str) -> bool:
    """Whether a message on `subject` matches `subject_filter`: `*` one token, `>` one or more at the end."""
    wanted, tokens = subject_filter.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(wanted) == len(tokens)


def check_nats_name(what: str, name: object) -> str:
    """A JetStream stream or consumer name: 1 to 64 letters, digits, '-' or '_'."""
    if not isinstance(name, str) or not _NATS_NAME.match(name):
        raise ValueError(f"the JetStream {what} name must be 1 to 64 letters, digits, '-' or '_', not {name!r}")
    return name


def check_stream_name(what: str, name: object) -> str:
    """A Redis stream key or consumer group, or a built-in stream's name: 1 to 128 of `A-Za-z0-9_.-`."""
    if not isinstance(name, str) or not _STREAM_NAME.match(name):
        raise ValueError(
            f"the {what} must be 1 to 128 letters, digits, '_', '.' or '-', such as 'readings', not {name!r}"
        )
    return name


def check_partition_key(field: object) -> str:
    """The record field a built-in stream is partitioned by: an identifier such as 'device'."""
    if not isinstance(field, str) or not _FIELD.match(field):
        raise ValueError(f"partition_key must name a field of the records, such as 'device', not {field!r}")
    return field
