"""A slot reader against the real PostgreSQL: records in commit order, the slot moved only after success."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.changes.conftest import PgPlace
from triggerfish.changes.pg_capture import Capture, SlotReader
from triggerfish.changes.pg_records import parse_lsn
from triggerfish.changes.pg_setup import SetupError, TableName, prepare
from triggerfish.errors import InvocationError
from triggerfish.retry import RetryPolicy
from triggerfish.streams.batches import BatchOptions

FAST = RetryPolicy(base=0.01, multiplier=1.0, ceiling=0.01)


class Invoker:
    """Records each batch; `answers` are what the next invocations return or raise, then None."""

    def __init__(self, answers: Sequence[Any] = ()) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.answers = list(answers)
        self.gate: asyncio.Event | None = None
        #: Set once a batch came in.
        self.called = asyncio.Event()

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        self.batches.append(event["Records"])
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        return "unused"


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def reader(pg: PgPlace, invoker: Invoker, **fields: Any) -> SlotReader:
    capture = Capture("ship", "env:ORDERS_DB", pg.url, TableName(pg.name, "orders"), f"tf_{pg.name}_ship", **fields)
    return SlotReader(capture, invoker, None, None, app="shop", retry_policy=FAST)  # type: ignore[arg-type]


async def orders(pg: PgPlace, identity: str = "DEFAULT") -> None:
    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY, status text, total numeric(10,2), tags text[])")
    await pg.sql(f"ALTER TABLE {pg.name}.orders REPLICA IDENTITY {identity}")


def summary(batches: list[list[dict[str, Any]]]) -> list[tuple[str, str, str | None]]:
    return [
        (r["eventName"], r["dynamodb"]["Keys"]["id"]["N"], r["dynamodb"].get("NewImage", {}).get("status", {}).get("S"))
        for batch in batches
        for r in batch
    ]


async def test_changes_arrive_in_commit_order_as_stream_records_in_batches(pg: PgPlace) -> None:
    await orders(pg)
    invoker = Invoker()
    slot = reader(pg, invoker, batch_size=3)
    conn = await slot.connect()
    try:
        async with pg.conn.transaction():
            for n in range(4):
                await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (%s, 'NEW', 9.50, '{{a,b}}')", (n,))
        await pg.sql(f"UPDATE {pg.name}.orders SET status = 'PAID' WHERE id = 1")
        await pg.sql(f"CREATE TABLE {pg.name}.other (id int PRIMARY KEY)")
        await pg.sql(f"INSERT INTO {pg.name}.other VALUES (1)")  # another table's change: not a record
        await pg.sql(f"DELETE FROM {pg.name}.orders WHERE id = 0")
        assert await slot.step(conn) == 6
        assert await slot.step(conn) == 0  # handled, and the slot moved past it: nothing comes twice
    finally:
        await conn.close()
    assert [len(batch) for batch in invoker.batches] == [3, 3]
    assert summary(invoker.batches) == [
        ("INSERT", "0", "NEW"), ("INSERT", "1", "NEW"), ("INSERT", "2", "NEW"), ("INSERT", "3", "NEW"),
        ("MODIFY", "1", "PAID"), ("REMOVE", "0", None),
    ]  # fmt: skip
    first = invoker.batches[0][0]
    assert first["dynamodb"]["NewImage"] == {
        "id": {"N": "0"}, "status": {"S": "NEW"}, "total": {"N": "9.50"}, "tags": {"L": [{"S": "a"}, {"S": "b"}]},
    }  # fmt: skip
    assert first["eventSourceARN"].endswith(f"table/postgres/{pg.name}.orders/stream/tf_{pg.name}_ship")
    sequences = [r["dynamodb"]["SequenceNumber"] for batch in invoker.batches for r in batch]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 6
    assert slot.state.records == 6


async def test_the_slot_moves_only_after_the_batch_succeeded_and_a_failed_batch_runs_again(pg: PgPlace) -> None:
    await orders(pg)
    invoker = Invoker([InvocationError("the handler raised")])
    invoker.gate = asyncio.Event()
    slot = reader(pg, invoker)
    conn = await slot.connect()
    try:
        before = (await pg.slots())[f"tf_{pg.name}_ship"]
        await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (1, 'NEW', 1, NULL), (2, 'NEW', 2, NULL)")
        step = asyncio.create_task(slot.step(conn))
        await invoker.called.wait()
        assert (await pg.slots())[f"tf_{pg.name}_ship"] == before, "the slot moved while the batch ran"
        invoker.gate.set()
        assert await step == 2
        after = (await pg.slots())[f"tf_{pg.name}_ship"]
    finally:
        await conn.close()
    assert after != before
    assert [summary([batch]) for batch in invoker.batches] == [[("INSERT", "1", "NEW"), ("INSERT", "2", "NEW")]] * 2


async def test_a_killed_reader_leaves_the_slot_so_a_new_one_gets_the_batch_again(pg: PgPlace) -> None:
    await orders(pg)
    first = Invoker()
    first.gate = asyncio.Event()  # never set: the reader dies inside the batch
    slot = reader(pg, first)
    conn = await slot.connect()
    await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (1, 'NEW', 1, NULL)")
    step = asyncio.create_task(slot.step(conn))
    await first.called.wait()
    step.cancel()
    await conn.close()
    second = Invoker()
    again = reader(pg, second)
    conn = await again.connect()
    try:
        assert await again.step(conn) == 1
    finally:
        await conn.close()
    assert summary(second.batches) == summary(first.batches) == [("INSERT", "1", "NEW")]


async def test_batch_item_failures_retry_from_the_first_failed_record(pg: PgPlace) -> None:
    await orders(pg)
    invoker = Invoker()
    slot = reader(pg, invoker, options=BatchOptions(report_batch_item_failures=True))
    conn = await slot.connect()
    try:
        values = "(1, 'NEW', 1, NULL), (2, 'NEW', 2, NULL), (3, 'NEW', 3, NULL)"
        await pg.sql(f"INSERT INTO {pg.name}.orders VALUES {values}")
        original = invoker.invoke

        async def invoke(function: str, event: Any = None, **options: Any) -> Any:
            await original(function, event, **options)
            records = event["Records"]
            if len(invoker.batches) == 1:
                return {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
            return None

        invoker.invoke = invoke  # type: ignore[method-assign]
        assert await slot.step(conn) == 3
    finally:
        await conn.close()
    keys = [[r["dynamodb"]["Keys"]["id"]["N"] for r in batch] for batch in invoker.batches]
    assert keys == [["1", "2", "3"], ["2", "3"]]


async def test_old_images_need_replica_identity_full_and_then_come(pg: PgPlace) -> None:
    await orders(pg)
    invoker = Invoker()
    with pytest.raises(SetupError, match=rf"ALTER TABLE {pg.name}.orders REPLICA IDENTITY FULL;"):
        await reader(pg, invoker, view="NEW_AND_OLD_IMAGES").connect()
    await pg.sql(f"ALTER TABLE {pg.name}.orders REPLICA IDENTITY FULL")
    slot = reader(pg, invoker, view="NEW_AND_OLD_IMAGES")
    conn = await slot.connect()
    try:
        await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (1, 'NEW', 1, NULL)")
        await pg.sql(f"UPDATE {pg.name}.orders SET status = 'PAID' WHERE id = 1")
        await pg.sql(f"DELETE FROM {pg.name}.orders WHERE id = 1")
        await slot.step(conn)
    finally:
        await conn.close()
    modify, remove = invoker.batches[0][1:]
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "NEW"}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": "PAID"}
    assert remove["dynamodb"]["OldImage"]["status"] == {"S": "PAID"}
    assert "NewImage" not in remove["dynamodb"]


async def test_setup_errors_name_the_fix(pg: PgPlace) -> None:
    invoker = Invoker()
    with pytest.raises(SetupError, match=rf"the table {pg.name}.orders does not exist"):
        await reader(pg, invoker).connect()
    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int, note text)")
    with pytest.raises(SetupError, match=rf"no primary key.*ALTER TABLE {pg.name}.orders ADD PRIMARY KEY"):
        await reader(pg, invoker).connect()
    await pg.sql(f"ALTER TABLE {pg.name}.orders ADD PRIMARY KEY (id), REPLICA IDENTITY NOTHING")
    with pytest.raises(SetupError, match=r"REPLICA IDENTITY NOTHING.*REPLICA IDENTITY DEFAULT"):
        await reader(pg, invoker).connect()
    role = f"{pg.name}_role"
    await pg.sql(f"CREATE ROLE {role} LOGIN NOREPLICATION")
    try:
        url = pg.url.replace("postgres@", f"{role}@")
        capture = Capture("ship", "env:X", url, TableName(pg.name, "orders"), f"tf_{pg.name}_ship")
        with pytest.raises(SetupError, match=rf"ALTER ROLE {role} REPLICATION;"):
            await SlotReader(capture, invoker, None, None, app="shop", retry_policy=FAST).connect()  # type: ignore[arg-type]
    finally:
        await pg.sql(f"DROP ROLE {role}")
    assert await pg.slots() == {}, "a refused setup made a slot"


class Canned:
    """A connection answering each query with the next row: what a server set up otherwise would say."""

    def __init__(self, *rows: Any) -> None:
        self.rows = list(rows)

    async def execute(self, query: str, params: Any = ()) -> Canned:
        return self

    async def fetchone(self) -> Any:
        return self.rows.pop(0)

    async def fetchall(self) -> Any:
        return self.rows.pop(0)


async def test_wal_level_and_exhausted_slots_are_explained() -> None:
    server = ("replica", "app", "db", True, 10, "-1")
    with pytest.raises(SetupError, match=r"ALTER SYSTEM SET wal_level = logical.*restart PostgreSQL"):
        await prepare(Canned(server), TableName("public", "t"), slot="s", view="NEW_IMAGE")
    logical = ("logical", "app", "db", True, 2, "10GB")
    table = (1, "r", "d", "table public.t:")
    full = Canned(logical, table, [("id",)], None, (2, "tf_a, tf_b"))
    with pytest.raises(SetupError, match=r"max_replication_slots = 2: tf_a, tf_b.*pg_drop_replication_slot"):
        await prepare(full, TableName("public", "t"), slot="s", view="NEW_IMAGE")


async def test_a_poison_change_is_bisected_out_to_the_failure_queue_and_the_stream_goes_on(pg: PgPlace) -> None:
    import json

    from triggerfish.bus.publisher import Publisher
    from triggerfish.model import parse_destination
    from triggerfish.store import open_store

    await orders(pg)

    class Poisoned(Invoker):
        async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
            self.batches.append(event["Records"])
            if any(r["dynamodb"]["NewImage"]["status"]["S"] == "poison" for r in event["Records"]):
                raise InvocationError("the handler raised ValueError: a poison order")
            return None

    store = await open_store("memory://")
    invoker = Poisoned()
    options = BatchOptions(max_retries=2, bisect_on_error=True)
    capture = Capture(
        "ship", "env:ORDERS_DB", pg.url, TableName(pg.name, "orders"), f"tf_{pg.name}_ship",
        options=options, on_failure=parse_destination("queue:bad-orders"),
    )  # fmt: skip
    slot = SlotReader(capture, invoker, store, Publisher(store), app="shop", retry_policy=FAST)
    conn = await slot.connect()
    try:
        for n in range(6):
            await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (%s, %s, 1, NULL)", (n, "poison" if n == 3 else "NEW"))
        assert await slot.step(conn) == 6
        assert await slot.step(conn) == 0  # given up on, the slot moved past it: the stream goes on
    finally:
        await conn.close()
    (failed,) = await store.queues.receive("bad-orders", wait=1)
    record = json.loads(failed.body)
    await store.close()
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["DDBStreamBatchInfo"]["batchSize"] == 1
    assert record["DDBStreamBatchInfo"]["streamArn"] == slot.source_arn
    assert [r["dynamodb"]["Keys"]["id"]["N"] for r in record["records"]] == ["3"]
    succeeded = [
        r["dynamodb"]["Keys"]["id"]["N"]
        for batch in invoker.batches
        if all(r["dynamodb"]["NewImage"]["status"]["S"] != "poison" for r in batch)
        for r in batch
    ]
    assert succeeded == ["0", "1", "2", "4", "5"]  # each once, in order, around the poison


async def test_a_batch_failing_for_ever_holds_the_slot_and_its_lag_shows(
    pg: PgPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triggerfish.changes import pg_capture

    monkeypatch.setattr(pg_capture, "LAG_PERIOD", 0.05)
    await orders(pg)

    class Failing(Invoker):
        async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
            self.batches.append(event["Records"])
            self.called.set()
            raise InvocationError("the handler raised")

    invoker = Failing()
    slot = reader(pg, invoker)
    slot.start()
    try:
        await until(lambda: slot.state.reading)
        await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (1, 'NEW', 1, NULL)")
        await until(lambda: len(invoker.batches) >= 3 and bool(slot.state.lag_bytes))
    finally:
        await slot.stop()
    assert slot.state.lag_bytes is not None
    assert slot.state.lag_bytes > 0
    # The slot may have moved past other sessions' transactions (the server is shared), never to this commit.
    commit = int(invoker.batches[0][0]["dynamodb"]["SequenceNumber"][:20])
    confirmed = parse_lsn((await pg.slots())[f"tf_{pg.name}_ship"])
    assert confirmed < commit, "the slot moved past a batch that never succeeded"
    assert {r["dynamodb"]["Keys"]["id"]["N"] for batch in invoker.batches for r in batch} == {"1"}


async def test_awkward_values_come_through_exactly(pg: PgPlace) -> None:
    await orders(pg, identity="FULL")
    awkward = 'it\'s "quoted"\nnew-tuple: ]: [x] null unchanged-toast-datum é'
    invoker = Invoker()
    slot = reader(pg, invoker, view="NEW_AND_OLD_IMAGES")
    conn = await slot.connect()
    try:
        await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (1, %s, -0.5, %s)", (awkward, [awkward, None]))
        await pg.sql(f"UPDATE {pg.name}.orders SET total = 2 WHERE id = 1")
        big = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 2000))"
        await pg.sql(f"UPDATE {pg.name}.orders SET status = {big} WHERE id = 1")  # stored out of line (TOAST)
        await pg.sql(f"UPDATE {pg.name}.orders SET total = 3 WHERE id = 1")  # leaves it: PostgreSQL does not log it
        assert await slot.step(conn) == 4
    finally:
        await conn.close()
    insert, modify, toasted, untouched = invoker.batches[0]
    assert insert["dynamodb"]["NewImage"]["status"] == {"S": awkward}
    assert insert["dynamodb"]["NewImage"]["total"] == {"N": "-0.50"}
    assert insert["dynamodb"]["NewImage"]["tags"] == {"L": [{"S": awkward}, {"NULL": True}]}
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": awkward}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": awkward}
    big_value = toasted["dynamodb"]["NewImage"]["status"]["S"]
    assert len(big_value) == 64_000
    # Under REPLICA IDENTITY FULL the old row has it, so the new image is whole.
    assert untouched["dynamodb"]["NewImage"]["status"] == {"S": big_value}
    assert untouched["dynamodb"]["NewImage"]["total"] == {"N": "3.00"}
