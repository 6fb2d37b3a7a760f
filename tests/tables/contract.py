"""The table contract, run on every store backend (memory, SQLite, PostgreSQL) by subclassing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from triggerfish.changes.records import decode_change
from triggerfish.events.cloudevent import Event
from triggerfish.names import bus_stream, table_stream
from triggerfish.store import Store
from triggerfish.tables.errors import (
    ConditionFailedError,
    TableExistsError,
    TableNotFoundError,
    TransactionCanceledError,
    ValidationError,
)
from triggerfish.tables.expressions import Inputs, parse_condition, parse_key_condition, parse_update
from triggerfish.tables.schema import KeyAttribute, TableSchema
from triggerfish.tables.table import Tables, TransactItem


def s(text: str) -> dict[str, str]:
    return {"S": text}


def n(value: Any) -> dict[str, str]:
    return {"N": str(value)}


def cond(text: str, **values: Any) -> Any:
    return parse_condition(text, Inputs(values={f":{k}": v for k, v in values.items()}))


class TableContract:
    async def open(self) -> Store:
        raise NotImplementedError

    @pytest.fixture
    async def tables(self) -> AsyncIterator[Tables]:
        store = await self.open()
        tables = Tables(store)
        await tables.create(TableSchema("orders", KeyAttribute("customer"), KeyAttribute("n", "N")))
        await tables.create(TableSchema("users", KeyAttribute("id")))
        yield tables
        await store.close()

    async def changes(self, tables: Tables, table: str = "orders") -> list[Any]:
        return [decode_change(r.data) for r in await tables.store.log.read(table_stream(table))]

    async def test_tables_are_made_described_listed_and_dropped(self, tables: Tables) -> None:
        assert await tables.names() == ["orders", "users"]
        assert (await tables.describe("orders")).sort_key == KeyAttribute("n", "N")
        with pytest.raises(TableExistsError):
            await tables.create(TableSchema("users", KeyAttribute("id")))
        await tables.put("users", {"id": s("a")})
        await tables.delete_table("users")
        with pytest.raises(TableNotFoundError):
            await tables.get("users", {"id": s("a")})

    async def test_put_get_delete_return_what_was_there(self, tables: Tables) -> None:
        item: dict[str, dict[str, Any]] = {"id": s("u1"), "name": s("Ada"), "tags": {"SS": ["a", "b"]}, "age": n(36)}
        assert await tables.put("users", item) is None
        assert await tables.get("users", {"id": s("u1")}) == item
        replaced = await tables.put("users", {"id": s("u1"), "name": s("Ada L.")})
        assert replaced == item
        assert await tables.delete("users", {"id": s("u1")}) == {"id": s("u1"), "name": s("Ada L.")}
        assert await tables.get("users", {"id": s("u1")}) is None
        assert await tables.delete("users", {"id": s("u1")}) is None

    async def test_keys_are_checked_against_the_schema(self, tables: Tables) -> None:
        with pytest.raises(ValidationError, match="Missing the key id"):
            await tables.put("users", {"name": s("x")})
        with pytest.raises(ValidationError, match="Type mismatch for key id expected: S actual: N"):
            await tables.put("users", {"id": n(1)})
        with pytest.raises(ValidationError, match="does not match the schema"):
            await tables.get("users", {"id": s("a"), "extra": s("b")})

    async def test_conditional_writes(self, tables: Tables) -> None:
        new = cond("attribute_not_exists(id)")
        await tables.put("users", {"id": s("u"), "v": n(1)}, condition=new)
        with pytest.raises(ConditionFailedError) as failed:
            await tables.put("users", {"id": s("u"), "v": n(2)}, condition=new, return_old_on_failure=True)
        assert failed.value.item == {"id": s("u"), "v": n(1)}
        assert (await tables.get("users", {"id": s("u")}) or {})["v"] == n(1)
        with pytest.raises(ConditionFailedError):
            await tables.delete("users", {"id": s("u")}, condition=cond("v = :v", v=n(5)))
        assert await tables.delete("users", {"id": s("u")}, condition=cond("v = :v", v=n(1))) is not None

    async def test_concurrent_increments_are_all_counted(self, tables: Tables) -> None:
        add = parse_update("ADD hits :one", Inputs(values={":one": n(1)}))
        await asyncio.gather(*(tables.update("users", {"id": s("c")}, add) for _ in range(20)))
        assert await tables.get("users", {"id": s("c")}) == {"id": s("c"), "hits": n(20)}

    async def test_query_orders_numbers_numerically_and_pages(self, tables: Tables) -> None:
        for value in [10, -5, 2, 1.5, 100, -0.25, 0]:
            await tables.put("orders", {"customer": s("ada"), "n": n(value)})
        await tables.put("orders", {"customer": s("bob"), "n": n(1)})
        everything = parse_key_condition("customer = :c", Inputs(values={":c": s("ada")}), "customer", "n")
        page = await tables.query("orders", everything)
        assert [i["n"]["N"] for i in page.items] == ["-5", "-0.25", "0", "1.5", "2", "10", "100"]
        first = await tables.query("orders", everything, limit=3, forward=False)
        assert [i["n"]["N"] for i in first.items] == ["100", "10", "2"]
        rest = await tables.query("orders", everything, forward=False, start_key=first.last_key)
        assert [i["n"]["N"] for i in rest.items] == ["1.5", "0", "-0.25", "-5"]
        assert rest.last_key is None
        ranged = parse_key_condition(
            "customer = :c AND n BETWEEN :lo AND :hi", Inputs(values={":c": s("ada"), ":lo": n(0), ":hi": n(10)}),
            "customer", "n",
        )  # fmt: skip
        assert [i["n"]["N"] for i in (await tables.query("orders", ranged)).items] == ["0", "1.5", "2", "10"]
        filtered = await tables.query("orders", everything, limit=4, filter=cond("n > :z", z=n(0)))
        assert [i["n"]["N"] for i in filtered.items] == ["1.5"]
        assert filtered.scanned == 4

    async def test_strings_sort_by_bytes_and_begins_with(self, tables: Tables) -> None:
        await tables.create(TableSchema("files", KeyAttribute("dir"), KeyAttribute("name")))
        for name in ["b", "a/2", "a/10", "Z", "é", "a"]:
            await tables.put("files", {"dir": s("d"), "name": s(name)})
        everything = parse_key_condition("dir = :d", Inputs(values={":d": s("d")}), "dir", "name")
        assert [i["name"]["S"] for i in (await tables.query("files", everything)).items] == [
            "Z", "a", "a/10", "a/2", "b", "é",
        ]  # fmt: skip
        prefix = parse_key_condition(
            "dir = :d AND begins_with(name, :p)", Inputs(values={":d": s("d"), ":p": s("a/")}), "dir", "name"
        )
        assert [i["name"]["S"] for i in (await tables.query("files", prefix)).items] == ["a/10", "a/2"]

    async def test_scan_pages_through_every_item(self, tables: Tables) -> None:
        for i in range(7):
            await tables.put("users", {"id": s(f"u{i}")})
        seen, start = [], None
        while True:
            page = await tables.scan("users", limit=3, start_key=start)
            seen += [item["id"]["S"] for item in page.items]
            if page.last_key is None:
                break
            start = page.last_key
        assert sorted(seen) == [f"u{i}" for i in range(7)]

    async def test_transactions_are_all_or_nothing(self, tables: Tables) -> None:
        await tables.put("users", {"id": s("a"), "balance": n(10)})
        take = parse_update("SET balance = balance - :x", Inputs(values={":x": n(15)}))
        enough = cond("balance >= :x", x=n(15))
        with pytest.raises(TransactionCanceledError) as cancelled:
            await tables.transact_write(
                [
                    TransactItem("put", "users", item={"id": s("b"), "balance": n(15)}),
                    TransactItem("update", "users", key={"id": s("a")}, update=take, condition=enough),
                ]
            )
        assert [r.code for r in cancelled.value.reasons] == ["None", "ConditionalCheckFailed"]
        assert await tables.get("users", {"id": s("b")}) is None
        await tables.transact_write(
            [
                TransactItem("put", "users", item={"id": s("b"), "balance": n(5)}),
                TransactItem("check", "users", key={"id": s("a")}, condition=cond("balance = :t", t=n(10))),
            ]
        )
        assert await tables.get("users", {"id": s("b")}) == {"id": s("b"), "balance": n(5)}

    async def test_batches(self, tables: Tables) -> None:
        await tables.batch_write([("users", "put", {"id": s("x")}), ("users", "put", {"id": s("y")})])
        found = await tables.batch_get({"users": [{"id": s("x")}, {"id": s("y")}, {"id": s("nope")}]})
        assert sorted(i["id"]["S"] for i in found["users"]) == ["x", "y"]
        await tables.batch_write([("users", "delete", {"id": s("x")})])
        assert await tables.get("users", {"id": s("x")}) is None

    async def test_every_change_appends_its_record_in_order(self, tables: Tables) -> None:
        key = {"id": s("u")}
        await tables.put("users", {"id": s("u"), "v": n(1)})
        await tables.update("users", key, parse_update("SET v = :v", Inputs(values={":v": n(2)})))
        await tables.put("users", {"id": s("u"), "v": n(2)})  # changes nothing: no record, as DynamoDB
        await tables.delete("users", key)
        changes = await self.changes(tables, "users")
        assert [c.event for c in changes] == ["INSERT", "MODIFY", "REMOVE"]
        assert changes[1].old == {"id": s("u"), "v": n(1)}
        assert changes[1].new == {"id": s("u"), "v": n(2)}
        assert all(c.keys == key for c in changes)

    async def test_a_failed_condition_writes_no_change_record(self, tables: Tables) -> None:
        await tables.put("users", {"id": s("u")})
        with pytest.raises(ConditionFailedError):
            await tables.put("users", {"id": s("u"), "x": n(1)}, condition=cond("attribute_not_exists(id)"))
        assert [c.event for c in await self.changes(tables, "users")] == ["INSERT"]

    async def test_the_outbox_publishes_with_the_write_and_not_without(self, tables: Tables) -> None:
        event = Event.create(source="shop", type="OrderPlaced", data={"id": "u"})
        await tables.put("users", {"id": s("u")}, outbox=[("default", event)])
        new = cond("attribute_not_exists(id)")
        with pytest.raises(ConditionFailedError):
            await tables.put("users", {"id": s("u")}, condition=new, outbox=[("default", event)])
        published = await tables.store.log.read(bus_stream("default"))
        assert [orjson.loads(r.data)["type"] for r in published] == ["OrderPlaced"]
