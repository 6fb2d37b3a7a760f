"""What `triggerfish dev` prints as each invocation ends: its log lines and a one-line report, as `sam local` does.

    printer = InvocationPrinter(sys.stdout, colour=sys.stdout.isatty())
    platform.record_listeners.append(printer)

Each attempt prints its captured output (prints as INFO, logging's lines at
their level), its error (ERROR, with the traceback) and then one REPORT line:

    10:00:00.123 ship 4f1c2e9a INFO packing o-1
    10:00:00.125 ship 4f1c2e9a REPORT succeeded in 1.23 ms (billed 2 ms, 128 MB, cold start: init 180.4 ms)

Times are local, request ids shortened to 8 characters (`triggerfish logs
--request-id` takes the whole one, which the REPORT line's JSON in the
control API carries). The lines are made from the invocation record by
`log_lines.lines_of`, the same lines `triggerfish logs` shows. Colour (ANSI,
by level) only when asked: dev asks when its output is a terminal.
"""

from __future__ import annotations

import datetime
from typing import TextIO

import click

from triggerfish.runtime.records import InvocationRecord
from triggerfish.server.log_lines import lines_of

#: Colours by level (click.style's names).
_LEVEL_COLOURS = {"DEBUG": "bright_black", "INFO": None, "WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}
_STATUS_COLOURS = {"succeeded": "green"}


class InvocationPrinter:
    """A record listener printing each attempt's lines to `out` (never raising: a closed pipe stops it)."""

    def __init__(self, out: TextIO, *, colour: bool = False) -> None:
        self.out = out
        self.colour = colour
        self._broken = False

    def __call__(self, record: InvocationRecord) -> None:
        if self._broken:
            return
        try:
            self.out.write(self.render(record))
            self.out.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._broken = True  # whoever read dev's output went away; the platform keeps running

    def render(self, record: InvocationRecord) -> str:
        """The attempt's lines, each ending in a newline."""
        where = self._style(record.function, "cyan") + " " + record.request_id[:8]
        text = []
        for line in lines_of(record):
            if line.kind in ("start", "end", "report"):
                continue
            level = self._style(line.level, _LEVEL_COLOURS.get(line.level), bold=line.level == "CRITICAL")
            text.append(f"{_clock(line.time)} {where} {level} {line.message}\n")
        text.append(
            f"{_clock(record.ended_at)} {where} {self._style('REPORT', 'bright_black')} {self._report(record)}\n"
        )
        return "".join(text)

    def _report(self, record: InvocationRecord) -> str:
        status = self._style(record.status, _STATUS_COLOURS.get(record.status, "red"))
        if record.status in ("throttled", "expired"):
            return f"{status} (never ran)"
        details = [f"billed {record.billed_duration_ms} ms", f"{record.memory_mb} MB"]
        if record.cold_start:
            init = record.init_duration_ms
            details.append("cold start" + ("" if init is None else f": init {init:.1f} ms"))
        if record.attempt > 1:
            details.append(f"attempt {record.attempt}")
        return f"{status} in {record.duration_ms:.2f} ms ({', '.join(details)})"

    def _style(self, text: str, colour: str | None, *, bold: bool = False) -> str:
        if not self.colour or (colour is None and not bold):
            return text
        return click.style(text, fg=colour, bold=bold)


def _clock(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment).strftime("%H:%M:%S.%f")[:-3]
