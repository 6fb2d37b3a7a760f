"""The same SDK handlers with the platform's store on PostgreSQL (a schema of the test's own, dropped after):
durable executions are workflow records there too, checkpointed with the same compare-and-set."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.aws.conftest import blocking, client
from tests.durable.conftest import serve_durable
from tests.durable.test_sdk import FLOWS, finished, runs, start
from tests.server.conftest import Served
from tests.services import POSTGRES_URL, drop_schema, require_postgres


@pytest.fixture
async def on_postgres(tmp_path: Path) -> AsyncIterator[Served]:
    require_postgres()
    schema = f"durable_{uuid.uuid4().hex[:12]}"
    try:
        async for served in serve_durable(tmp_path, FLOWS, store_url=f"{POSTGRES_URL}?schema={schema}&pool_size=4"):
            yield served
    finally:
        await drop_schema(schema)


async def test_steps_a_wait_and_a_callback_on_postgres(on_postgres: Served, tmp_path: Path) -> None:
    arn = await start(on_postgres, "steps", {"n": 1, "dir": str(tmp_path)})
    done = await finished(on_postgres, arn)
    assert done["Status"] == "SUCCEEDED", done.get("Error")
    assert json.loads(done["Result"]) == {"first": 2, "second": 20}
    assert runs(tmp_path) == ["add", "times"]

    lam = client(on_postgres.url, "lambda")
    approval = await start(on_postgres, "approval", {"dir": str(tmp_path)})
    stopped = await blocking(lam.stop_durable_execution, DurableExecutionArn=approval)
    assert "StopTimestamp" in stopped
    assert (await finished(on_postgres, approval))["Status"] == "STOPPED"
