from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.aws.conftest import blocking, client
from tests.durable.apps import STEPS_APP
from tests.server.conftest import Served
from tests.durable.conftest import serve_durable
from triggerfish.aws.credentials import function_environment


@pytest.fixture
async def durable(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_durable(tmp_path, STEPS_APP):
        yield served


async def test_two_steps(durable: Served) -> None:
    lam = client(durable.url, "lambda")
    answer = await blocking(lam.invoke, FunctionName="durable-two_steps", Payload=json.dumps({"n": 1}))
    body = json.loads(answer["Payload"].read())
    print(body)
    import asyncio
    for _ in range(100):
        recs = await durable.platform.workflows.records()
        if recs and recs[0]["status"] != "RUNNING":
            break
        await asyncio.sleep(0.1)
    print(json.dumps(recs, indent=1))
    assert recs[0]["status"] == "SUCCEEDED"
