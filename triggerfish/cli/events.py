"""`triggerfish events ...`: work with events and patterns."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from triggerfish.errors import InvalidInputError

#: Exit codes of `test-pattern`, like grep's: 0 match, 1 no match, 2 trouble.
EXIT_MATCH = 0
EXIT_NO_MATCH = 1
EXIT_ERROR = 2


@click.group()
def events() -> None:
    """Work with events and event patterns."""


def _read(value: str, what: str) -> str:
    """Inline JSON, or `@path` for a file's contents (`@-` reads standard input)."""
    if not value.startswith("@"):
        return value
    name = value[1:]
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise click.ClickException(f"cannot read the {what} file {name!r}: {reason}") from None


@events.command("test-pattern")
@click.option("--pattern", "-p", "pattern_text", required=True, help="The event pattern: JSON, or @FILE.")
@click.option("--event", "-e", "event_text", required=True, help="The event: JSON, or @FILE.")
def test_pattern(pattern_text: str, event_text: str) -> None:
    """Check whether an event matches an EventBridge pattern, as AWS's TestEventPattern does.

    Prints "match" (exit 0) or "no match" (exit 1). An invalid pattern, an
    invalid event or an unreadable file prints the reason and exits 2.

    \b
    Example:
      triggerfish events test-pattern \\
        --pattern '{"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}}' \\
        --event @examples/patterns/order-placed.event.json
    """
    # Imported here so `triggerfish --help` does not load the pattern engine.
    from triggerfish.events.patterns import compile_pattern

    try:
        pattern = compile_pattern(_read(pattern_text, "pattern"))
        matched = pattern.matches(_read(event_text, "event"))
    except click.ClickException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_ERROR)
    except InvalidInputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    click.echo("match" if matched else "no match")
    sys.exit(EXIT_MATCH if matched else EXIT_NO_MATCH)
