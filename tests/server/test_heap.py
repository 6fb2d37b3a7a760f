"""The platform's heap after start: frozen out of the collector's full passes, thawed around a reload, its young
generation collected less often and its cyclic garbage still collected."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from triggerfish.cli.serving import serve_until_stopped
from triggerfish.server import heap


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    # The test process's own heap is frozen here, and its thresholds set: let the collector see it again afterwards.
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freezing_leaves_what_exists_out_of_full_collections_and_thawing_brings_it_back() -> None:
    kept = _Cycle()
    heap.freeze()
    assert gc.get_freeze_count() > 0
    assert not any(found is kept for found in gc.get_objects(generation=2))
    made_after = _Cycle()
    gc.collect(1)  # a survivor made after the freeze is in the generations the collector walks
    assert any(found is made_after for found in gc.get_objects(generation=2))
    heap.thaw()
    assert gc.get_freeze_count() == 0
    assert any(found is kept for found in gc.get_objects(generation=2))


class _Server:
    """Serves until told to stop; what serve_until_stopped needs of a GatewayServer."""

    def __init__(self) -> None:
        self.stopped = False

    async def wait(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


async def test_a_serving_platform_has_frozen_what_startup_built() -> None:
    gc.unfreeze()
    stop = asyncio.Event()
    server = _Server()
    frozen: list[int] = []

    async def stop_once_serving() -> None:
        await asyncio.sleep(0)
        frozen.append(gc.get_freeze_count())
        stop.set()

    async def drain() -> None:
        pass

    watcher = asyncio.create_task(stop_once_serving())
    await serve_until_stopped(server, stop, drain)  # type: ignore[arg-type]  # a stand-in for GatewayServer
    await watcher
    assert frozen[0] > 0
    assert gc.get_threshold()[0] == heap.YOUNG_OBJECTS
    assert server.stopped


def test_a_settled_heap_still_frees_cyclic_garbage_without_being_asked() -> None:
    heap.settle()
    assert gc.get_threshold()[0] == heap.YOUNG_OBJECTS > 700
    gc.collect(0)  # the young count at zero: no pass can promote the cycle before it is garbage
    garbage = _Cycle()
    freed = weakref.ref(garbage)
    del garbage  # a cycle: reference counting alone never frees it
    assert freed() is not None
    # Enough new containers for a young pass of the collector's own accord.
    kept: list[list[int]] = [[] for _ in range(3 * heap.YOUNG_OBJECTS)]
    assert freed() is None
    assert len(kept) == 3 * heap.YOUNG_OBJECTS
