"""Reading what a user types: JSON payloads (inline, from a file, or standard input), times, `NAME=VALUE` pairs.

Every mistake is a CliError with exit code 2 that says what was wrong and
where: `invalid JSON in --data at line 1 column 7: ...`.
"""

from __future__ import annotations

import datetime
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from triggerfish.cli.client import input_error

_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_json(text: str | bytes, where: str) -> Any:
    """`text` parsed strictly (see triggerfish._json); `where` names the option or file in the error."""
    from triggerfish._json import loads
    from triggerfish.errors import InvalidJSONError

    try:
        return loads(text, where=where)
    except InvalidJSONError as exc:
        reason = str(exc).removeprefix(f"{where}: ")
        if exc.line is not None:
            at = f"line {exc.line} column {exc.column}"
            plain = f"invalid JSON at {at}: "
            detail = reason.removeprefix(plain) if reason.startswith(plain) else reason
            raise input_error(f"invalid JSON in {where} at {at}: {detail}") from None
        raise input_error(f"invalid JSON in {where}: {reason.removeprefix('invalid JSON: ')}") from None


def read_payload(data: str | None, path: Path | None, *, data_option: str = "--data") -> tuple[str, str]:
    """The text given by `data_option` (inline), `--path FILE`, or standard input when it is not a terminal,
    and where it came from (for errors). Nothing given reads as an empty text."""
    if data is not None and path is not None:
        raise input_error(f"give the payload once: {data_option} or --path, not both")
    if data is not None:
        return data, data_option
    if path is not None:
        return read_file(path, "--path"), str(path)
    if sys.stdin is None or sys.stdin.isatty():
        return "", "no payload"
    return sys.stdin.read(), "standard input"


def read_file(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise input_error(f"cannot read {option} {str(path)!r}: {reason}") from None


def parse_time(text: str, option: str, *, now: float | None = None) -> float:
    """Epoch seconds from `now`, a time ago (`90s`, `10m`, `2h`, `1d`, `1w`), epoch seconds, or ISO 8601 with a
    zone (`2024-05-01T12:00:00Z`)."""
    current = time.time() if now is None else now
    given = text.strip()
    if given == "now":
        return current
    ago = _AGO.fullmatch(given)
    if ago is not None:
        return current - float(ago.group(1)) * _UNITS[ago.group(2)]
    try:
        return float(given)
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(given)
    except ValueError:
        raise input_error(
            f"{option} {text!r} is not a time: give now, a time ago (30s, 10m, 2h, 1d), epoch seconds,"
            " or ISO 8601 with a zone (2024-05-01T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise input_error(f"{option} {text!r} has no time zone: add one (Z for UTC, or +02:00)")
    return parsed.timestamp()


def parse_pairs(pairs: Sequence[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` texts as a mapping; a name given twice or a text without `=` is an error."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise input_error(f"{option} {pair!r} is not NAME=VALUE")
        if name in found:
            raise input_error(f"{option} gives {name!r} twice")
        found[name] = value
    return found
