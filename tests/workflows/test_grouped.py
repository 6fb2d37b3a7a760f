"""Group commit of workflow writes (grouped.py): concurrent atomic writes go to the store as one, a refused one
is written again on its own with the others, and a platform on PostgreSQL runs its workflows' writes grouped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.backends import platform_store
from triggerfish.errors import AtomicConflictError, StoreUnavailableError
from triggerfish.server.platform import Platform
from triggerfish.store import ABSENT, open_store
from triggerfish.store.atomic import Op, Put
from triggerfish.workflows.grouped import GroupedWrites
from triggerfish.workflows.state import WorkflowState

APP = """
import triggerfish

app = triggerfish.App("grouped")


def noop(value):
    return value


@app.workflow
def three(ctx, input):
    ctx.step(noop, 1)
    ctx.step(noop, 2)
    return ctx.step(noop, input)
"""


async def test_concurrent_writes_go_as_one_and_each_hears_its_own_results() -> None:
    store = await open_store("memory://")
    grouped = GroupedWrites(store.atomic)
    writes = [[Put("ns", f"k{n}", b"v", if_version=ABSENT), Put("ns", f"k{n}.more", b"w")] for n in range(3)]
    results = await asyncio.gather(*(grouped.atomic(ops) for ops in writes))
    # Made in one turn of the event loop, the three go as one atomic write.
    assert (grouped.groups, grouped.writes, grouped.split) == (1, 3, 0)
    assert [[record.key for record in result] for result in results] == [[f"k{n}", f"k{n}.more"] for n in range(3)]
    for n in range(3):
        found = await store.kv.get("ns", f"k{n}.more")
        assert found is not None
        assert found.value == b"w"


async def test_a_refused_write_fails_alone_and_the_others_are_written() -> None:
    store = await open_store("memory://")
    await store.kv.put("ns", "taken", b"first")
    grouped = GroupedWrites(store.atomic)
    outcomes = await asyncio.gather(
        grouped.atomic([Put("ns", "a", b"1", if_version=ABSENT)]),
        grouped.atomic([Put("ns", "taken", b"second", if_version=ABSENT)]),
        grouped.atomic([Put("ns", "b", b"2", if_version=ABSENT)]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], AtomicConflictError)
    assert grouped.split == 1
    for key, value in (("a", b"1"), ("b", b"2"), ("taken", b"first")):
        found = await store.kv.get("ns", key)
        assert found is not None
        assert found.value == value


async def test_only_a_store_whose_writes_commit_apart_groups_them(tmp_path: Path) -> None:
    sqlite = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert WorkflowState(sqlite).grouped is None  # its writer thread shares commits already
    finally:
        await sqlite.close()
    assert WorkflowState(await open_store("memory://")).grouped is None


async def test_workflows_on_postgresql_write_their_checkpoints_grouped(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    async with platform_store("postgres") as url:
        platform = Platform(str(tmp_path / "app.py"), data_dir=tmp_path / "data", store_url=url)
        await platform.start()
        try:
            grouped = platform.workflows.state.grouped
            assert grouped is not None
            ids = await asyncio.gather(*(platform.workflows.start_workflow("three", n) for n in range(40)))
            deadline = time.monotonic() + 60
            for n, workflow_id in enumerate(ids):
                while (record := await platform.workflows.describe(workflow_id))["status"] == "RUNNING":
                    assert time.monotonic() < deadline, record
                    await asyncio.sleep(0.02)
                assert record["status"] == "SUCCEEDED"
                assert record["result"] == n
            # 40 starts and 120 checkpoints, in fewer transactions than writes.
            assert grouped.writes >= 160
            assert grouped.groups < grouped.writes
        finally:
            await platform.stop()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_workflow_cancelled_between_checkpoints_stays_cancelled_when_grouped(
    tmp_path: Path, backend: str
) -> None:
    store_path = tmp_path / "app.py"
    store_path.write_text(APP)
    async with platform_store(backend) as url:
        platform = Platform(str(store_path), data_dir=tmp_path / "data", store_url=url)
        await platform.start()
        try:
            # A cancellation and running checkpoints race in the same groups: every one ends CANCELLED or
            # SUCCEEDED, as it would one write at a time.
            ids = await asyncio.gather(*(platform.workflows.start_workflow("three", n) for n in range(20)))
            cancels = await asyncio.gather(*(platform.workflows.cancel(i) for i in ids[::2]), return_exceptions=True)
            deadline = time.monotonic() + 60
            for workflow_id in ids:
                while (record := await platform.workflows.describe(workflow_id))["status"] == "RUNNING":
                    assert time.monotonic() < deadline, record
                    await asyncio.sleep(0.02)
                assert record["status"] in ("SUCCEEDED", "CANCELLED")
            for workflow_id, cancelled in zip(ids[::2], cancels, strict=True):
                status = (await platform.workflows.describe(workflow_id))["status"]
                assert status == ("SUCCEEDED" if isinstance(cancelled, Exception) else "CANCELLED")
        finally:
            await platform.stop()


async def test_a_failure_that_is_not_a_refusal_is_every_writer_s_and_nothing_is_written_again() -> None:
    calls: list[int] = []

    async def unreachable(ops: Sequence[Op]) -> list[Any]:
        calls.append(len(ops))
        raise StoreUnavailableError("the connection dropped during COMMIT")

    grouped = GroupedWrites(unreachable)
    outcomes = await asyncio.gather(
        *(grouped.atomic([Put("ns", f"k{n}", b"v", if_version=ABSENT)]) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(outcome, StoreUnavailableError) for outcome in outcomes)
    # One try of the group: written again one by one, a group that did commit would look like another's write.
    assert calls == [3]


async def test_writes_made_while_the_groups_in_flight_are_written_go_as_the_next_group() -> None:
    store = await open_store("memory://")
    gate, writing = asyncio.Event(), asyncio.Event()
    sizes: list[int] = []

    async def slow(ops: Sequence[Op]) -> list[Any]:
        sizes.append(len(ops))
        writing.set()
        await gate.wait()
        return await store.atomic(ops)

    grouped = GroupedWrites(slow, max_in_flight=1)
    first = asyncio.ensure_future(grouped.atomic([Put("ns", "first", b"1")]))
    await writing.wait()
    later = [asyncio.ensure_future(grouped.atomic([Put("ns", f"k{n}", b"2")])) for n in range(4)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert sizes == [1]  # the four wait: one group is in flight, the most there may be
    gate.set()
    await asyncio.gather(first, *later)
    assert sizes == [1, 4]
    assert (grouped.groups, grouped.writes) == (2, 5)
