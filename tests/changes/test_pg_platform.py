"""`@app.on_change("env:...", table=...)` on the real platform: worker processes, the store, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.changes.conftest import PgPlace
from triggerfish import App
from triggerfish.errors import DeclarationError
from triggerfish.loader import describe_trigger
from triggerfish.model import PgChangeTrigger
from triggerfish.names import pg_change_slot
from triggerfish.observe.metrics import Metrics
from triggerfish.server.platform import Platform

APP = """
import json, triggerfish
app = triggerfish.App({app!r})

@app.on_change("env:{variable}", table={table!r}, batch_size=50, batch_window=0.1, {options})
def ship(event, context):
    with open({out!r}, "a") as f:
        for r in event["Records"]:
            image = r["dynamodb"].get("NewImage") or r["dynamodb"].get("OldImage") or {{}}
            f.write(json.dumps([r["eventName"], r["dynamodb"]["Keys"]["id"]["N"], image.get("status", {{}}).get("S"),
                                len(event["Records"])]) + "\\n")
"""

BARE = """
import triggerfish
app = triggerfish.App({app!r})

@app.function
def ship(event, context):
    return None
"""


def write_app(tmp_path: Path, pg: PgPlace, options: str = "") -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    path = tmp_path / "app" / "app.py"
    text = APP.format(
        app=pg.name, variable="PGC_DB", table=f"{pg.name}.orders", options=options, out=str(tmp_path / "out.jsonl")
    )
    path.write_text(text)
    return path


def handled(tmp_path: Path) -> list[list[Any]]:
    out = tmp_path / "out.jsonl"
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


async def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_row_changes_run_the_function_in_order_per_row_and_the_slot_goes_with_the_trigger(
    tmp_path: Path, pg: PgPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGC_DB", pg.url)
    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY, status text)")
    app = write_app(tmp_path, pg)
    running = Platform(str(app), data_dir=tmp_path / "data")
    await running.start()
    try:
        slot = pg_change_slot(pg.name, "ship")
        assert slot in await pg.slots()
        for n in range(20):
            await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (%s, 'NEW')", (n,))
        await pg.sql(f"UPDATE {pg.name}.orders SET status = 'PAID' WHERE id %% 2 = 0")
        await pg.sql(f"DELETE FROM {pg.name}.orders WHERE id = 3")
        # The handler writes before its invocation returns to the reader, which then counts the batch.
        await wait_for(lambda: len(handled(tmp_path)) >= 31 and running.pg_changes.status()["ship"]["records"] >= 31)
        status = running.pg_changes.status()["ship"]
        assert status["slot"] == slot
        assert status["table"] == f"{pg.name}.orders"
        assert status["records"] == 31
        assert status["reading"] is True
        assert isinstance(status["lag_bytes"], int)  # measured when reading starts, then every few seconds
        metrics = (await Metrics().render([running])).decode()
        assert f'triggerfish_pg_slot_lag_bytes{{app="{pg.name}",function="ship",slot="{slot}"}}' in metrics
        # A new version naming a table that does not exist is refused; the old one goes on reading.
        app.write_text(app.read_text().replace(f"{pg.name}.orders", f"{pg.name}.missing"))
        refused = await running.reload()
        assert not refused.ok
        assert f"the table {pg.name}.missing does not exist" in (refused.error or "")
        assert running.pg_changes.status()["ship"]["table"] == f"{pg.name}.orders"
        # The trigger removed from the code: on reload the slot is dropped, so it keeps no WAL.
        app.write_text(BARE.format(app=pg.name))
        result = await running.reload()
        assert result.ok, result
        assert slot not in await pg.slots()
        assert running.pg_changes.status() == {}
    finally:
        await running.stop()
    rows = handled(tmp_path)
    per_row: dict[str, list[str]] = {}
    for name, key, _, _ in rows:
        per_row.setdefault(key, []).append(name)
    assert per_row["0"] == ["INSERT", "MODIFY"]
    assert per_row["1"] == ["INSERT"]
    assert per_row["3"] == ["INSERT", "REMOVE"]
    assert max(row[3] for row in rows) > 1, "changes came one per invocation, not in batches"


async def test_a_setup_problem_stops_the_start_with_the_fix(
    tmp_path: Path, pg: PgPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGC_DB", pg.url)
    running = Platform(str(write_app(tmp_path, pg)), data_dir=tmp_path / "data")
    with pytest.raises(DeclarationError, match=rf"the table {pg.name}.orders does not exist"):
        await running.start()
    monkeypatch.delenv("PGC_DB")
    running = Platform(str(write_app(tmp_path, pg)), data_dir=tmp_path / "data2")
    with pytest.raises(DeclarationError, match="the environment variable PGC_DB is not set"):
        await running.start()


def test_the_decorator_takes_an_env_reference_and_refuses_a_url_in_code() -> None:
    app = App("shop")

    @app.on_change("env:ORDERS_DB", table="public.orders", stream_view_type="KEYS_ONLY", ops=("insert",))
    def ship(event: Any, context: Any) -> None:
        return None

    (trigger,) = app.functions["ship"].triggers
    assert isinstance(trigger, PgChangeTrigger)
    assert (trigger.source, trigger.table, trigger.ops, trigger.stream_view_type) == (
        "env:ORDERS_DB", "public.orders", ("insert",), "KEYS_ONLY",
    )  # fmt: skip
    assert describe_trigger(trigger) == "change public.orders in env:ORDERS_DB insert (KEYS_ONLY)"
    parallel = App("shop")
    parallel.on_change("env:ORDERS_DB", table="public.orders", parallelization=4)(ship)
    (spread,) = parallel.functions["ship"].triggers
    assert isinstance(spread, PgChangeTrigger)
    assert spread.stream_settings.parallelization == 4
    assert describe_trigger(spread).endswith("(NEW_IMAGE, 4 partitions)")

    def declare(source: str, **options: Any) -> str:
        with pytest.raises(DeclarationError) as caught:
            App("shop").on_change(source, **options)(ship)
        return str(caught.value)

    assert "never written in code" in declare("postgresql://u:secret@db/shop", table="public.orders")
    assert 'table="public.orders"' in declare("env:ORDERS_DB")
    assert "stream_view_type must be one of" in declare("env:ORDERS_DB", table="orders", stream_view_type="NEW")
    assert "table must be 'schema.table'" in declare("env:ORDERS_DB", table="a.b.c")
    assert "batch_size must be" in declare("env:ORDERS_DB", table="orders", batch_size=0)
    assert "parallelization must be a whole number from 1 to 10" in declare(
        "env:ORDERS_DB", table="orders", parallelization=11
    )
    assert "keeps no changes from before it" in declare("env:ORDERS_DB", table="orders", starting_position="X")
    assert "table= names a PostgreSQL table" in declare("orders", table="public.orders")


def test_status_shows_each_capture_with_its_slot_and_lag() -> None:
    import io

    from rich.console import Console

    from triggerfish.cli.apps import _show_changes
    from triggerfish.cli.output import Output

    text = io.StringIO()
    shown = {
        "ship": {
            "source": "env:ORDERS_DB", "table": "public.orders", "slot": "tf_shop_ship_2397d38f", "reading": True,
            "lag_bytes": 123456, "records": 42, "error": None,
        }
    }  # fmt: skip
    _show_changes(Output(console=Console(file=text, width=200)), shown)
    line = next(line for line in text.getvalue().splitlines() if "ship" in line)
    for part in ("public.orders (env:ORDERS_DB)", "tf_shop_ship_2397d38f", "yes", "123,456 B", "42"):
        assert part in line
    text = io.StringIO()
    _show_changes(Output(console=Console(file=text, width=200)), {"ship": {**shown["ship"], "partitions": 4}})
    assert "42 into 4 partitions" in text.getvalue()


async def test_a_restart_without_the_capture_drops_its_slot_and_stopping_keeps_it(
    pg: PgPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triggerfish.bus.publisher import Publisher
    from triggerfish.changes.pg_triggers import PgChanges
    from triggerfish.store import open_store

    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY)")
    app = App(pg.name)

    @app.on_change("env:PGC_DB", table=f"{pg.name}.orders")
    def ship(event: Any, context: Any) -> None:
        return None

    store = await open_store("memory://")
    environ = {"PGC_DB": pg.url}
    slot = pg_change_slot(pg.name, "ship")
    first = PgChanges(store, None, Publisher(store), app=pg.name, environ=environ)  # type: ignore[arg-type]
    await first.update(app.functions)
    await first.stop()
    assert slot in await pg.slots(), "stopping dropped the slot: changes made while down would be lost"
    second = PgChanges(store, None, Publisher(store), app=pg.name, environ=environ)  # type: ignore[arg-type]
    await second.update({})  # the next start's code no longer declares it
    assert slot not in await pg.slots()
    await store.close()


async def test_the_test_platform_runs_a_capture_on_drain_from_a_fresh_slot_it_drops_after(
    pg: PgPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triggerfish.testing import TestPlatform

    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY, status text)")
    app = App(pg.name)
    seen: list[tuple[str, str]] = []

    @app.on_change(
        "env:PGC_TEST_DB", table=f"{pg.name}.orders", on_failure="queue:bad-orders", max_retries=2, bisect_on_error=True
    )
    def ship(event: Any, context: Any) -> None:
        if any(record["dynamodb"]["NewImage"]["status"]["S"] == "poison" for record in event["Records"]):
            raise ValueError("a poison order")
        seen.extend((record["eventName"], record["dynamodb"]["Keys"]["id"]["N"]) for record in event["Records"])

    slot = pg_change_slot(pg.name, "ship")
    await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (0, 'before the test')")
    async with TestPlatform(app) as unset:  # no database for the capture here: it does not run
        await unset.drain()
    assert slot not in await pg.slots()
    monkeypatch.setenv("PGC_TEST_DB", pg.url)
    async with TestPlatform(app) as platform:
        assert slot in await pg.slots()
        await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (1, 'NEW'), (2, 'poison')")
        await pg.sql(f"UPDATE {pg.name}.orders SET status = 'PAID' WHERE id = 1")
        await platform.drain()
        failed = [json.loads(m.body) for m in await platform.queue_messages("bad-orders")]
    assert slot not in await pg.slots(), "the test's slot outlived it"
    assert seen == [("INSERT", "1"), ("MODIFY", "1")]  # the row written before the test is not seen
    # The batch failed and was bisected: the poison order alone ran out of retries, the rest went through.
    assert [r["dynamodb"]["Keys"]["id"]["N"] for r in failed[0]["records"]] == ["2"]
