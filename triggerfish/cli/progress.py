"""Progress bars for the long verbs (deploy, replay, redrive), driven by what the server reports.

    answer = with_progress(out, client, "moving dead letters back to jobs",
                           lambda headers: client.request("POST", path, json=..., headers=headers))

The verb's request goes out on a thread of its own carrying an
`X-Triggerfish-Progress` id of this call's making; meanwhile this thread asks
the server `GET .../progress/{id}` (triggerfish.server.progress) a few times
a second and moves the bar: messages moved of the dead-letter depth, events
replayed of the archive range, a deploy's steps. On a terminal the bar is
rich's; in a pipe, a plain line on standard error each time the figure moves
(at most one a second, and the last one always), so a log shows how it went
while standard output keeps only the verb's result for scripts; with --json,
nothing but the answer.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, TypeVar

import click

from triggerfish.cli.client import Client, CliError
from triggerfish.cli.output import Output

T = TypeVar("T")

#: The header the server reads the progress id from (triggerfish.server.progress.PROGRESS_HEADER).
PROGRESS_HEADER = "x-triggerfish-progress"
#: Seconds between two questions to the server.
POLL = 0.2
#: Seconds between two plain lines (not a terminal).
PLAIN_EVERY = 1.0


class Bar:
    """One verb's bar: rich's on a terminal, plain lines elsewhere (unless `plain` is False: a verb whose own
    lines already say how it went), nothing with --json."""

    def __init__(
        self, out: Output, label: str, unit: str = "", *, plain: bool = True, err: IO[str] | None = None
    ) -> None:
        self.out = out
        self.label = label
        self.unit = unit
        self.plain = plain
        #: Where plain lines go: standard error (standard output is the verb's result).
        self.err = err
        self._rich: Any = None
        self._task: Any = None
        self._last_line: tuple[int, int | None, str] | None = None
        self._last_at = 0.0

    def __enter__(self) -> Bar:
        if self.out.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=self.out.console,
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=None, unit=self.unit)
        return self

    def update(
        self, done: int, total: int | None, step: str = "", unit: str | None = None, *, last: bool = False
    ) -> None:
        unit = self.unit if unit is None else unit
        if self._rich is not None:
            description = self.label if not step else f"{self.label}: {step}"
            self._rich.update(self._task, completed=done, total=total, description=description, unit=unit)
            return
        if self.out.as_json or not self.plain:
            return
        now = time.monotonic()
        moved = (done, total, step) != self._last_line
        if moved and (last or now - self._last_at >= PLAIN_EVERY or self._last_line is None):
            self._last_line, self._last_at = (done, total, step), now
            share = f" ({done * 100 // total}%)" if total else ""
            of = f"/{total}" if total is not None else ""
            at = f" [{step}]" if step else ""
            line = f"{self.label}: {done}{of} {unit}{share}{at}".replace("  ", " ")
            click.echo(line, file=self.err if self.err is not None else sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()


def with_progress(
    out: Output,
    client: Client,
    label: str,
    send: Callable[[Mapping[str, str]], T],
    *,
    progress_path: str,
    unit: str = "",
    plain: bool = True,
) -> T:
    """`send(headers)` (the verb's request, given the progress header), with a bar moved by the server's reports.

    `progress_path` is where the server answers this operation's progress, with `{id}` for the id; `plain`
    False shows nothing but on a terminal (and then asks the server nothing).
    """
    if out.as_json or not (plain or out.terminal):
        return send({})
    operation = uuid.uuid4().hex
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = send({PROGRESS_HEADER: operation})
        except BaseException as exc:  # handed to the caller's thread, raised there
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="triggerfish-progress", daemon=True)
    worker.start()
    where = progress_path.format(id=operation)
    with Bar(out, label, unit, plain=plain) as bar:
        while worker.is_alive():
            worker.join(POLL)
            _show(bar, client, where, last=False)
        if "error" not in outcome:
            _show(bar, client, where, last=True)
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def _show(bar: Bar, client: Client, where: str, *, last: bool) -> None:
    try:
        state = client.request("GET", where, timeout=5.0)
    except CliError:
        return  # not reported yet (404), or another node has it: the bar waits, the answer is the same
    if not isinstance(state, dict):
        return
    done, total = int(state.get("done") or 0), state.get("total")
    if last and state.get("finished") and total is not None:
        done = max(done, int(total))
    bar.update(done, total, str(state.get("step") or ""), str(state.get("unit") or "") or None, last=last)


def chunks(data: bytes, bar: Bar, size: int = 64 * 1024) -> Iterator[bytes]:
    """`data` in pieces of `size`, moving `bar` as each is handed to the connection (an upload's bytes)."""
    sent = 0
    bar.update(0, len(data), last=False)
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        yield piece
        sent += len(piece)
        bar.update(sent, len(data), last=sent == len(data))
