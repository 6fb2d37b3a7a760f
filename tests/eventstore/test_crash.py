"""Kill -9 the platform's process in the middle of a projection's batch (a real process, a real SQLite file): started
again, the projection goes on from its checkpoint and every event is applied to its records exactly once, though the
handler's own side effects (a log file) ran again for the batch that was cut short."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.crash_child import Child, children
from tests.patience import eventually

__all__ = ["children"]  # the fixture, used by name

EVENTS = 40

CHILD = """
import asyncio, json, sys
from pathlib import Path
from triggerfish.server.platform import Platform

async def main(app, data, count):
    platform = Platform(app, data_dir=Path(data))
    await platform.start()
    if await platform.eventstore.events.version("acct-1") == 0:
        events = [{"type": "Deposited", "data": {"amount": n}} for n in range(1, int(count) + 1)]
        await platform.eventstore.append("acct-1", events, expected_version=0)
    seen = None
    while True:
        [status] = await platform.projections.status()
        values = {}
        for key in ("count", "sum"):
            record = await platform.store.kv.get("projection.totals", key)
            values[key] = None if record is None else json.loads(record.value)
        now = [status["position"], values]
        if now != seen:
            seen = now
            print(json.dumps(now), flush=True)
        await asyncio.sleep(0.02)

asyncio.run(main(*sys.argv[1:]))
"""


def start(app: Path, data: Path) -> Child:
    return Child(CHILD, app, data, EVENTS, what="the projection")


def applied(work: Path) -> list[int]:
    path = work / "applied.log"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


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
