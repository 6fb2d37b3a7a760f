"""Kill -9 the platform's process in the middle of a projection's batch (a real process, a real SQLite file): started
again, the projection goes on from its checkpoint and every event is applied to its records exactly once, though the
handler's own side effects (a log file) ran again for the batch that was cut short."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.crash_child import Child, children
from tests.patience import eventually

__all__ = ["children"]  # the fixture, used by name

EVENTS = 40

CHILD = """
import asyncio, json, sys
from pathlib import Path
from triggerfish.server.platform import Platform

async def main(app, data, streams, count):
    platform = Platform(app, data_dir=Path(data))
    await platform.start()
    names = streams.split(",")
    if await platform.eventstore.events.version(names[0]) == 0:
        # Every event there before the projection reads any, so its batches are the same on every run; with
        # several streams, round-robin over them, so each batch of the global log holds some of each.
        await platform.projections.stop()
        if len(names) == 1:
            events = [{"type": "Deposited", "data": {"amount": n}} for n in range(1, int(count) + 1)]
            await platform.eventstore.append(names[0], events, expected_version=0)
        for n in range(1, int(count) + 1 if len(names) > 1 else 1):
            for stream in names:
                await platform.eventstore.append(stream, [{"type": "Deposited", "data": {"amount": n}}])
        await platform.projections.start()
    seen = None
    while True:
        [status] = await platform.projections.status()
        values = {r.key: json.loads(r.value) for r in await platform.store.kv.scan("projection.totals")}
        now = [status["position"], values]
        if now != seen:
            seen = now
            print(json.dumps(now), flush=True)
        await asyncio.sleep(0.02)

asyncio.run(main(*sys.argv[1:]))
"""


def start(app: Path, data: Path, streams: str = "acct-1", count: int = EVENTS) -> Child:
    return Child(CHILD, app, data, streams, count, what="the projection")


def applied(work: Path) -> list[int]:
    path = work / "applied.log"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def applied_per_stream(work: Path) -> list[tuple[str, int]]:
    path = work / "applied.log"
    found = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    return [(stream, int(version)) for stream, version in found]


def test_a_projection_killed_mid_batch_applies_every_event_exactly_once(tmp_path: Path, children: list[Child]) -> None:
    work = tmp_path / "app"
    work.mkdir()
    app = work / "app.py"
    shutil.copy(Path(__file__).with_name("crash_app.py"), app)
    data = tmp_path / "data"

    first = start(app, data)
    children.append(first)

    # Batches of 5: positions 21-25 are one batch, stopped at 23 with 21 and 22 applied but not committed.
    def reached_23() -> bool:
        assert first.process.poll() is None, "the platform died by itself"
        return 23 in applied(work)

    eventually(reached_23, 60, "the projection at position 23", interval=0.02)
    first.until(lambda state: state[0] == 20)
    first.kill()

    (work / "go").touch()
    second = start(app, data)
    children.append(second)
    _, values = second.until(lambda state: state[0] == EVENTS)
    assert values == {"count": EVENTS, "sum": EVENTS * (EVENTS + 1) // 2}
    # The handler itself ran again for the batch that was cut short: side effects are at least once, records not.
    log = applied(work)
    assert sorted(set(log)) == list(range(1, EVENTS + 1))
    assert [p for p in log if log.count(p) > 1] == [21, 22, 23, 21, 22, 23]


@pytest.mark.timeout(150)
def test_a_per_stream_projection_killed_mid_stream_applies_every_event_of_every_stream_once(
    tmp_path: Path, children: list[Child]
) -> None:
    work = tmp_path / "app"
    work.mkdir()
    app = work / "app.py"
    shutil.copy(Path(__file__).with_name("crash_stream_app.py"), app)
    data = tmp_path / "data"
    streams, count = ["acct-1", "acct-2", "acct-3"], 12

    first = start(app, data, ",".join(streams), count)
    children.append(first)
    # acct-2 stops at its version 7 with 5 and 6 applied in the same batch (of 4 per stream), not committed.
    deadline = time.monotonic() + 60
    while ("acct-2", 7) not in applied_per_stream(work):
        assert time.monotonic() < deadline, "the projection never reached acct-2 version 7"
        assert first.process.poll() is None, "the platform died by itself"
        time.sleep(0.02)
    # The other streams' batches beside it commit with their own checkpoints, while acct-2's waits.
    first.until(lambda state: [len(state[1].get(s, {}).get("versions", [])) for s in streams] == [8, 4, 8])
    first.kill()

    (work / "go").touch()
    second = start(app, data, ",".join(streams), count)
    children.append(second)
    _, values = second.until(
        lambda state: (
            state[0] == len(streams) * count
            and len(state[1]) == len(streams)
            and all(len(v["versions"]) == count for v in state[1].values())
        )
    )
    total = count * (count + 1) // 2
    assert values == {s: {"sum": total, "versions": list(range(1, count + 1))} for s in streams}
    log = applied_per_stream(work)
    for stream in streams:  # each stream's events reached the handler in its order
        versions = [v for s, v in log if s == stream]
        assert sorted(set(versions)) == list(range(1, count + 1))
    # Only the batch that was cut short ran again (its handler's side effects are at least once).
    again = sorted({entry for entry in log if log.count(entry) > 1})
    assert again == [("acct-2", 5), ("acct-2", 6), ("acct-2", 7)]
