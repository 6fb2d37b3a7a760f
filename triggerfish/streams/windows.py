"""Tumbling windows over a partition's records, as Lambda gives them for Kinesis (pure, no I/O).

    for start, items in split_by_window(items, 60.0): ...
    event = window_event(records, start=start, size=60.0, state={"n": 3}, final=False, shard="partition-000", arn=...)

A record belongs to the window its arrival time falls in (`start = floor(arrived / size) * size`),
as Lambda uses `approximateArrivalTimestamp`. The handler gets each batch of a window with the
`state` it returned for the previous batch of that window (`{}` for the first), and once more
when the window has closed, with no records and `isFinalInvokeForWindow: true`; it answers
`{"state": {...}}`, with `batchItemFailures` when it reports partial failures.

The state is kept per partition with the offset of the last record folded into it
(`WindowState.through`), written before the batch's checkpoint moves: a batch run again after a
crash skips the records the state already holds, so a window's aggregate counts each record once.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.streams.batches import Item


@dataclass(frozen=True, slots=True)
class WindowState:
    """A partition's open window: its start, the handler's state, and the last offset folded into it."""

    start: float
    state: Any
    through: int

    def encode(self) -> bytes:
        return orjson.dumps({"start": self.start, "state": self.state, "through": self.through})

    @staticmethod
    def decode(data: bytes) -> WindowState:
        body = orjson.loads(data)
        return WindowState(float(body["start"]), body.get("state") or {}, int(body.get("through", 0)))


def window_start(arrived: float, size: float) -> float:
    """The start of the tumbling window of `size` seconds that `arrived` falls in."""
    return math.floor(arrived / size) * size


def split_by_window(items: Sequence[Item], size: float) -> list[tuple[float, list[Item]]]:
    """Consecutive runs of records of one window, in order (a late record starts a run of its own window)."""
    runs: list[tuple[float, list[Item]]] = []
    for item in items:
        start = window_start(item.arrived, size)
        if runs and runs[-1][0] == start:
            runs[-1][1].append(item)
        else:
            runs.append((start, [item]))
    return runs


def window_event(
    records: Sequence[Mapping[str, Any]],
    *,
    start: float,
    size: float,
    state: Any,
    final: bool,
    shard: str,
    arn: str,
) -> dict[str, Any]:
    """The event a window's invocation gets: Lambda's Kinesis event for tumbling windows."""
    return {
        "Records": [dict(record) for record in records],
        "window": {"start": _iso(start), "end": _iso(start + size)},
        "state": state if state is not None else {},
        "shardId": shard,
        "eventSourceARN": arn,
        "isFinalInvokeForWindow": final,
        "isWindowTerminatedEarly": False,
    }


def returned_state(result: Any, previous: Any) -> Any:
    """The state a handler returned (`{"state": ...}`); the previous one when it returned none."""
    if isinstance(result, Mapping) and "state" in result:
        return result["state"] if result["state"] is not None else {}
    return previous


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
