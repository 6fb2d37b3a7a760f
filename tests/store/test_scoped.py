"""ScopedStore: the whole store contract through a scope, and the isolation between scopes sharing a store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.store import test_memory as memory_suite
from tests.store import test_postgres as postgres_suite
from tests.store import test_sqlite as sqlite_suite
from triggerfish.errors import InvalidInputError, InvalidNameError, StoreClosedError
from triggerfish.store import QueueConfig, ScopedStore, Store, open_store
from triggerfish.store.memory import open_memory_store


async def beside_a_neighbour(inner: Store) -> ScopedStore:
    """The scope under test shares its store with another scope, and unscoped data, under the contract's names."""
    for neighbour in (ScopedStore(inner, "app.other"), inner):
        for stream in ("s", "orders", "audit"):
            await neighbour.log.append(stream, b"not yours")
        for queue in ("jobs", "q", "dlq"):
            await neighbour.queues.send(queue, b"not yours")
        for key in ("k", "a", "b", "key"):
            await neighbour.kv.put("ns", key, b"not yours")
    return ScopedStore(inner, "app.shop")


class ClosesTheInnerStore:
    inner: Store | None = None

    @pytest.fixture(autouse=True)
    async def _close_inner(self) -> AsyncIterator[None]:
        yield
        if self.inner is not None:
            await self.inner.close()


class TestScopedOverMemory(ClosesTheInnerStore, memory_suite.TestMemoryStore):
    async def open(self) -> Store:
        self.inner = await super().open()
        return await beside_a_neighbour(self.inner)


class TestScopedOverSqlite(ClosesTheInnerStore, sqlite_suite.TestSqliteStore):
    async def open(self) -> Store:
        self.inner = await super().open()
        return await beside_a_neighbour(self.inner)


class TestScopedOverPostgres(ClosesTheInnerStore, postgres_suite.TestPostgresStore):
    async def open(self) -> Store:
        self.inner = await super().open()
        return await beside_a_neighbour(self.inner)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    yield store
    await store.close()


async def test_two_scopes_with_the_same_names_are_independent(store: Store) -> None:
    shop, blog = ScopedStore(store, "app.shop"), ScopedStore(store, "app.blog")
    for view, body in ((shop, b"shop"), (blog, b"blog")):
        record = await view.log.append("bus.default", body)
        assert (record.stream, record.offset) == ("bus.default", 1)
        await view.queues.send("orders", body)
        await view.kv.put("triggerfish.bus", "rules", body)
    for view, body in ((shop, b"shop"), (blog, b"blog")):
        assert [(r.stream, r.data) for r in await view.log.read("bus.default")] == [("bus.default", body)]
        [message] = await view.queues.receive("orders", visibility_timeout=30)
        assert (message.queue, message.body) == ("orders", body)
        rules = await view.kv.get("triggerfish.bus", "rules")
        assert rules is not None
        assert (rules.namespace, rules.value) == ("triggerfish.bus", body)
        assert [r.value for r in await view.kv.scan("triggerfish.bus")] == [body]
        assert await view.log.streams() == ["bus.default"]
        assert await view.queues.queues() == ["orders"]
    # What the host and an operator see in the shared store: the promised prefixed names.
    assert await store.log.streams() == ["app.blog/bus.default", "app.shop/bus.default"]
    assert await store.queues.queues() == ["app.blog/orders", "app.shop/orders"]
    assert (await store.kv.get("app.shop/triggerfish.bus", "rules")) is not None


async def test_purging_trimming_and_deleting_in_one_scope_leave_the_other_alone(store: Store) -> None:
    shop, blog = ScopedStore(store, "app.shop"), ScopedStore(store, "app.blog")
    for view in (shop, blog):
        await view.queues.send_many("orders", [])
        await view.queues.send("orders", b"x")
        await view.log.append("bus.default", b"x")
        await view.kv.put("ns", "k", b"x")
    assert await shop.queues.purge("orders") == 1
    assert await shop.log.trim("bus.default", max_bytes=0) == 1
    assert await shop.kv.delete("ns", "k")
    assert (await shop.queues.stats("orders")).depth == 0
    assert (await blog.queues.stats("orders")).depth == 1
    assert len(await blog.log.read("bus.default")) == 1
    assert await blog.kv.get("ns", "k") is not None


async def test_dead_letters_stay_in_their_scope() -> None:
    clock = memory_suite.FakeClock()
    store = open_memory_store(clock=clock)
    shop, blog = ScopedStore(store, "app.shop"), ScopedStore(store, "app.blog")
    config = QueueConfig(visibility_timeout=1, max_receives=1, dead_letter="dlq")
    await shop.queues.configure("jobs", config)
    assert await shop.queues.config("jobs") == config
    assert (await store.queues.config("app.shop/jobs")).dead_letter == "app.shop/dlq"
    await shop.queues.send("jobs", b"poison")
    await shop.queues.receive("jobs")
    clock.now += 2
    assert await shop.queues.receive("jobs") == []  # moved to the dead-letter queue instead
    [dead] = await shop.queues.receive("dlq")
    assert (dead.queue, dead.body) == ("dlq", b"poison")
    assert (await blog.queues.stats("dlq")).depth == 0
    await store.close()


async def test_a_waiting_receive_is_woken_by_a_send_through_another_view_of_its_scope(store: Store) -> None:
    waiting = ScopedStore(store, "app.shop")
    receiver = asyncio.ensure_future(waiting.queues.receive("orders", wait=30))
    reader = asyncio.ensure_future(waiting.log.read("bus.default", wait=30))
    await ScopedStore(store, "app.blog").queues.send("orders", b"for blog")
    sender = ScopedStore(store, "app.shop")
    await sender.queues.send("orders", b"for shop")
    await sender.log.append("bus.default", b"event")
    # Woken by the send, long before the 30 s wait ends (the test would time out otherwise).
    assert [m.body for m in await asyncio.wait_for(receiver, 10)] == [b"for shop"]
    assert [r.data for r in await asyncio.wait_for(reader, 10)] == [b"event"]


async def test_names_up_to_the_room_the_scope_leaves_work_and_longer_ones_are_refused(store: Store) -> None:
    shop = ScopedStore(store, "app.shop")
    room = 255 - len("app.shop/")
    longest = "n" * room
    await shop.log.append(longest, b"x")
    await shop.queues.send(longest, b"x")
    await shop.kv.put(longest, "k", b"x")
    assert await shop.log.streams() == [longest]
    assert await shop.queues.queues() == [longest]
    assert await shop.kv.get(longest, "k") is not None
    too_long = longest + "n"
    calls: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: shop.log.append(too_long, b"x"), "stream"),
        (lambda: shop.queues.send(too_long, b"x"), "queue"),
        (lambda: shop.kv.put(too_long, "k", b"x"), "namespace"),
        (lambda: shop.queues.configure("q", QueueConfig(max_receives=1, dead_letter=too_long)), "dead-letter queue"),
    ]
    for call, kind in calls:
        with pytest.raises(InvalidNameError) as caught:
            await call()
        message = str(caught.value)
        assert f"{kind} name {too_long!r}" in message
        assert f"at most {room}" in message
        assert "app.shop/" not in message


async def test_errors_name_what_the_caller_gave(store: Store) -> None:
    shop = ScopedStore(store, "app.shop")
    with pytest.raises(InvalidNameError, match=r"invalid queue name 'bad name'"):
        await shop.queues.send("bad name", b"x")
    with pytest.raises(InvalidInputError, match=r"queue 'q' cannot be its own dead-letter queue"):
        await shop.queues.configure("q", QueueConfig(max_receives=1, dead_letter="q"))
    assert await store.queues.queues() == []


@pytest.mark.parametrize("scope", ["", "app/shop", "bad scope", "s" * 254, None])
async def test_a_bad_scope_is_refused(store: Store, scope: str) -> None:
    with pytest.raises(InvalidNameError, match="scope"):
        ScopedStore(store, scope)


async def test_closing_a_view_leaves_the_store_and_other_views_open(store: Store) -> None:
    shop, blog = ScopedStore(store, "app.shop"), ScopedStore(store, "app.blog")
    async with shop:
        await shop.queues.send("orders", b"x")
    with pytest.raises(StoreClosedError, match=r"'app.shop'.*stays open"):
        await shop.queues.send("orders", b"y")
    with pytest.raises(StoreClosedError):
        await shop.log.streams()
    await blog.queues.send("orders", b"x")
    assert await store.queues.queues() == ["app.blog/orders", "app.shop/orders"]


async def test_limits_and_the_clock_are_the_inner_stores(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/s.db?max_record_bytes=100")
    shop = ScopedStore(store, "app.shop")
    assert shop.log.max_record_bytes == shop.queues.max_record_bytes == shop.kv.max_record_bytes == 100
    with pytest.raises(InvalidInputError, match="101 bytes"):
        await shop.kv.put("ns", "k", b"x" * 101)
    assert shop.kv.clock is store.kv.clock
    assert shop.url == store.url
    assert repr(shop) == f"<ScopedStore 'app.shop' of {store.url}>"
    await store.close()
