"""What verbs print: rich tables and colour on a terminal, plain columns in a pipe, one JSON document with `--json`.

    out = Output(as_json)
    if out.json(document):        # --json: the document is printed, nothing else is
        return
    out.table(["NAME", "VERSION"], [[app["name"], app["version"]]], title="apps")

Plain output (stdout is not a terminal and no `--json`) has no colour, no
box and no wrapping: a header line and one line per row, columns separated
by two spaces, so `grep`, `cut` and `awk` work on it. With `--json` a verb
prints exactly one document on stdout, whatever it would have shown.
Whether stdout is a terminal is rich's decision, so `TTY_COMPATIBLE=1`,
`FORCE_COLOR` and `NO_COLOR` work as they do for every rich program.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

#: Cells longer than this are cut short on a terminal (the whole value is in --json).
MAX_CELL = 80


def json_option(command: F) -> F:
    """`--json`, passed to the command as `as_json`."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")(command)


class Output:
    """Where a verb's results go; `console` is for tests (rich's `Console(force_terminal=True, file=...)`)."""

    def __init__(self, as_json: bool = False, *, console: Console | None = None) -> None:
        self.as_json = as_json
        self._console = console

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # Made on first use, so it writes to the stdout of the moment (click's test runner swaps it).
            self._console = Console(highlight=False, soft_wrap=True)
        return self._console

    @property
    def terminal(self) -> bool:
        return not self.as_json and self.console.is_terminal

    def json(self, document: Any) -> bool:
        """With --json, print `document` and answer True (the verb prints nothing else); else False."""
        if not self.as_json:
            return False
        self.write(json.dumps(document, indent=2, ensure_ascii=False))
        return True

    def write(self, text: str) -> None:
        """A line of text, exactly as given (no markup, no highlighting)."""
        click.echo(text, file=self.console.file)

    def line(self, text: str, *, style: str | None = None) -> None:
        """A message line: styled on a terminal, plain in a pipe."""
        if self.terminal and style is not None:
            from rich.text import Text

            self.console.print(Text(text, style=style))
        else:
            self.write(text)

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None, empty: str = ""
    ) -> None:
        """Rows under headers; `empty` is said instead when there are no rows."""
        if not rows:
            if empty:
                self.line(empty, style="dim")
            return
        cells = [[cell(value) for value in row] for row in rows]
        if not self.terminal:
            self.write(_columns([h.upper() for h in headers], cells))
            return
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold cyan", title_justify="left")
        for header in headers:
            # Folded, not cut short: an id or a name is no use with its end missing.
            table.add_column(header, overflow="fold")
        for row in cells:
            table.add_row(*(Text(_short(c)) for c in row))
        self.console.print(table)

    def fields(self, pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
        """`label: value` lines; on a terminal, a titled grid with the labels in bold."""
        if not self.terminal:
            if title is not None:
                self.write(f"{title}:")
            indent = "  " if title is not None else ""
            for label, value in pairs:
                self.write(f"{indent}{label}: {cell(value)}")
            return
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for label, value in pairs:
            grid.add_row(Text(label), Text(cell(value)))
        if title is not None:
            self.console.print(Text(title, style="bold cyan"))
        self.console.print(grid)


def cell(value: Any) -> str:
    """A value as one cell: `-` for none, yes/no, lists joined, objects as compact JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) if value else "-"
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else "-"
    return str(value)


def moment(epoch: float | None) -> str | None:
    """Epoch seconds as UTC time to the second (`2024-05-01 12:00:00Z`); None stays None."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _columns(headers: list[str], rows: list[list[str]]) -> str:
    # Newlines inside a value would break the one-row-per-line promise.
    table = [[value.replace("\n", "\\n") for value in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table)
