"""Per-app uids: given once from the range, recorded in the store, the same after a restart and for two
servers on one store, never shared by two apps, never reused, and refused when the range is used up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from triggerfish.errors import IsolationError
from triggerfish.isolation.uids import UID_BASE, AppUids
from triggerfish.store import open_store


async def test_each_app_keeps_the_uid_it_was_given_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as store:
        uids = AppUids(store)
        shop, blog = await uids.uid("shop"), await uids.uid("blog")
        assert (shop, blog) == (UID_BASE, UID_BASE + 1)
        assert await uids.uid("shop") == shop
    async with await open_store(url) as store:  # a restart: the same numbers, and the next one is new
        uids = AppUids(store)
        assert await uids.uid("blog") == blog
        assert await uids.uid("shop") == shop
        assert await uids.uid("wiki") == UID_BASE + 2


async def test_servers_racing_on_one_store_agree_and_never_share_a_uid(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as first, await open_store(url) as second:
        servers = [AppUids(first), AppUids(second)]
        apps = [f"app{i}" for i in range(10)]
        given = await asyncio.gather(*(servers[i % 2].uid(app) for i, app in enumerate(apps * 2)))
        by_app: dict[str, set[int]] = {}
        for app, uid in zip(apps * 2, given, strict=True):
            by_app.setdefault(app, set()).add(uid)
        assert all(len(uids) == 1 for uids in by_app.values())  # one uid per app, whoever asked
        distinct = {next(iter(uids)) for uids in by_app.values()}
        assert len(distinct) == len(apps)
        assert all(UID_BASE <= uid < UID_BASE + 100 for uid in distinct)


async def test_a_used_up_range_is_refused_with_what_to_do(tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        uids = AppUids(store, base=50_000, count=2)
        assert [await uids.uid("a"), await uids.uid("b")] == [50_000, 50_001]
        with pytest.raises(IsolationError, match=r"all 2 uids from 50000 are given to apps.*uid_base"):
            await uids.uid("c")
        assert await uids.uid("a") == 50_000  # the apps that have one keep it


@pytest.mark.parametrize(("base", "count"), [(0, 10), (999, 10), (2**31 - 5, 10), (50_000, 0)])
def test_a_range_reaching_system_uids_or_past_2_31_is_refused(base: int, count: int) -> None:
    with pytest.raises(ValueError, match="a uid range must lie between 1000 and 2147483647"):
        AppUids(None, base=base, count=count)  # type: ignore[arg-type]
