"""The PostgreSQL store as many nodes see it: migrations, URL options, wake-ups and claims across pools, clocks."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from tests.services import POSTGRES_URL, require_postgres
from triggerfish.errors import SchemaVersionError, StoreUnavailableError, UnknownStoreURLError
from triggerfish.store import OutgoingMessage, Store, open_store
from triggerfish.store._pg_engine import DatabaseClock
from triggerfish.store._pg_schema import SCHEMA_VERSION

pytestmark = pytest.mark.usefixtures("postgres")


@pytest.fixture
def postgres() -> None:
    require_postgres()


def url(schema: str, **options: object) -> str:
    extra = "".join(f"&{key}={value}" for key, value in options.items())
    return f"{POSTGRES_URL}?schema={schema}&pool_size=3{extra}"


async def test_a_fresh_schema_is_refused_without_migration_then_migrated(schema: str) -> None:
    with pytest.raises(SchemaVersionError, match="triggerfish store migrate"):
        await open_store(url(schema), migrate=False)
    # Nodes starting together migrate once, under the advisory lock.
    stores = await asyncio.gather(*(open_store(url(schema)) for _ in range(3)))
    assert all(s.schema_version == SCHEMA_VERSION for s in stores)
    await stores[0].log.append("s", b"x")
    for s in stores:
        await s.close()
    again = await open_store(url(schema), migrate=False)
    assert await again.log.last_offset("s") == 1
    await again.close()


async def test_a_node_never_runs_against_a_newer_schema(schema: str) -> None:
    store = await open_store(url(schema))
    await store.close()
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(f"UPDATE {schema}.meta SET value = 99 WHERE name = 'schema_version'")
    for migrate in (True, False):
        with pytest.raises(SchemaVersionError) as caught:
            await open_store(url(schema), migrate=migrate)
        assert "99" in str(caught.value)
        assert f"the {SCHEMA_VERSION} this Triggerfish knows" in str(caught.value)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("schema=Bad-Name", "schema 'Bad-Name' must be"),
        ("schema=x;drop", "must be 1 to 63"),
        ("pool_size=1", "pool_size must be at least 2"),
        ("pool_size=many", "pool_size must be a whole number"),
        ("poll_interval=0", "poll_interval must be from"),
        ("notify=maybe", "notify must be on or off"),
        ("colour=blue", "unknown option(s) colour"),
    ],
)
async def test_bad_options_are_refused_naming_the_fix(query: str, words: str) -> None:
    with pytest.raises(UnknownStoreURLError) as caught:
        await open_store(f"{POSTGRES_URL}?{query}")
    assert words in str(caught.value)


async def test_the_postgres_scheme_and_libpq_options_work(schema: str) -> None:
    store = await open_store(
        url(schema, application_name="tf-test", sslmode="disable").replace("postgresql", "postgres")
    )
    assert (await store.log.append("s", b"x")).offset == 1
    assert "tf-test" not in repr(store)
    await store.close()


async def nodes(schema: str, count: int, **options: object) -> list[Store]:
    first = await open_store(url(schema, **options))
    return [first, *[await open_store(url(schema, **options)) for _ in range(count - 1)]]


async def test_a_send_on_one_node_wakes_a_receive_waiting_on_another(schema: str) -> None:
    # A poll interval of a minute: only the NOTIFY can wake the waiters in time.
    a, b = await nodes(schema, 2, poll_interval=60)
    try:
        receiver = asyncio.ensure_future(a.queues.receive("jobs", wait=30))
        reader = asyncio.ensure_future(a.log.read("bus", wait=30))
        claimer = asyncio.ensure_future(a.log.claim("bus", "g", wait=30))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await b.queues.send("jobs", b"from b")
        await b.log.append("bus", b"event")
        assert [m.body for m in await asyncio.wait_for(receiver, 20)] == [b"from b"]
        assert [r.data for r in await asyncio.wait_for(reader, 20)] == [b"event"]
        claim = await asyncio.wait_for(claimer, 20)
        assert claim is not None
        assert time.monotonic() - started < 10
    finally:
        await a.close()
        await b.close()


async def test_consumers_of_a_group_on_several_nodes_share_a_stream(schema: str) -> None:
    stores = await nodes(schema, 3)
    try:
        await stores[0].log.append_many("bus", [b"%d" % i for i in range(300)])
        seen: list[int] = []

        async def consumer(store: Store) -> None:
            while (claim := await store.log.claim("bus", "rules", limit=9, lease=30)) is not None:
                seen.extend(r.offset for r in claim.records)
                assert await store.log.commit(claim)

        await asyncio.gather(*(consumer(s) for s in stores for _ in range(2)))
        assert sorted(seen) == list(range(1, 301))
        assert await stores[1].log.position("bus", "rules") == 300
    finally:
        for s in stores:
            await s.close()


async def test_receivers_on_several_nodes_never_share_a_message(schema: str) -> None:
    stores = await nodes(schema, 3)
    try:
        await stores[0].queues.send_many("jobs", [OutgoingMessage(b"%d" % i) for i in range(200)])
        got: list[bytes] = []

        async def worker(store: Store) -> None:
            while batch := await store.queues.receive("jobs", max_messages=7, visibility_timeout=30):
                got.extend(m.body for m in batch)
                assert all(await store.queues.ack_many("jobs", [m.receipt for m in batch]))

        await asyncio.gather(*(worker(s) for s in stores for _ in range(2)))
        assert sorted(got) == sorted(b"%d" % i for i in range(200))
    finally:
        for s in stores:
            await s.close()


async def test_a_node_with_a_wrong_clock_keeps_the_database_time() -> None:
    clock = DatabaseClock(local=lambda: time.time() + 3600)  # an hour ahead
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await clock.measure(conn)
    assert abs(clock() - time.time()) < 5
    assert clock.offset == pytest.approx(-3600, abs=5)


async def test_lost_connections_fail_as_unavailable_never_as_success_and_the_pool_recovers(schema: str) -> None:
    store = await open_store(url(schema, application_name=schema, pool_size=4))
    acknowledged: list[bytes] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()
    progress = asyncio.Event()

    async def until_acknowledged(count: int) -> None:
        while len(acknowledged) < count:
            progress.clear()
            await progress.wait()

    async def producer(n: int) -> None:
        i = 0
        while not stop.is_set():
            body = b"%d-%d" % (n, i)
            i += 1
            try:
                await store.log.append("bus", body)
                await store.queues.send("jobs", body)
            except StoreUnavailableError as exc:
                failures.append(exc)
                await asyncio.sleep(0.01)
                continue
            acknowledged.append(body)
            progress.set()

    async def terminate() -> int:
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
            cursor = await admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (schema,)
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

    producers = [asyncio.ensure_future(producer(n)) for n in range(4)]
    try:
        for _ in range(3):
            await until_acknowledged(20)
            assert await terminate() >= 1
            acknowledged_before = len(acknowledged)
            # The pool reconnects by itself: writes are acknowledged again soon after.
            async with asyncio.timeout(20):
                await until_acknowledged(acknowledged_before + 20)
    finally:
        stop.set()
        await asyncio.gather(*producers)
    # Whatever failed failed as unavailable (caught above); whatever was acknowledged is stored.
    logged = {r.data for r in await store.log.read("bus", limit=100_000)}
    assert set(acknowledged) <= logged
    queued = (await store.queues.stats("jobs")).depth
    assert queued >= len(acknowledged)
    await store.close()
