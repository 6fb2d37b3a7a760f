"""`triggerfish stream put` and `POST /-/api/v1/partitioned-streams/{name}/records` against a real `triggerfish dev`."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Dev, run
from tests.server.devserver import DevServer

APP = """
import base64, json, triggerfish

app = triggerfish.App("meters")
SEEN = {seen!r}


@app.on_stream("readings", partition_key="meter", parallelization=2)
def record(event, context):
    with open(SEEN, "a") as f:
        for r in event["Records"]:
            body = r["kinesis"]
            f.write(json.dumps([body["partitionKey"], json.loads(base64.b64decode(body["data"]))]) + "\\n")
"""


@pytest.fixture(scope="module")
def meters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    directory = tmp_path_factory.mktemp("meters")
    source = textwrap.dedent(APP).replace("{seen!r}", repr(str(directory / "seen.jsonl")))
    (directory / "app.py").write_text(source, encoding="utf-8")
    server = DevServer("app.py", "--port", "0", "--data-dir", str(directory / "data"), "--no-reload", cwd=directory)
    server.start()
    try:
        yield Dev(server.url, directory)
    finally:
        server.stop()


def seen(directory: Path, count: int) -> list[list[object]]:
    path = directory / "seen.jsonl"
    deadline = time.monotonic() + 30
    while True:
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"timed out waiting for {count} records, saw {rows}"
        time.sleep(0.05)


def test_put_records_from_the_cli_and_the_api_reach_the_reader_in_order_per_key(meters: Dev) -> None:
    env = {"TRIGGERFISH_SERVER": meters.url}
    done = run("stream", "put", "readings", "-d", '{"meter": "m1", "kwh": 1}', env=env)
    assert done.exit_code == 0, done.stderr
    partition, sequence = done.stdout.split()
    assert partition.startswith("partition-00")
    assert sequence.isdigit()
    lines = "\n".join(json.dumps({"meter": f"m{n % 2}", "kwh": n}) for n in range(2, 8))
    assert run("stream", "put", "readings", "--lines", env=env, input=lines).exit_code == 0
    keyed = run("stream", "put", "readings", "-d", '{"kwh": 99}', "--partition-key", "m1", "--json", env=env)
    assert json.loads(keyed.stdout)["records"][0]["sequenceNumber"]
    answer = httpx.post(
        f"{meters.url}/-/api/v1/partitioned-streams/readings/records",
        json={"records": [{"data": {"meter": "m0", "kwh": 100}}]},
    )
    assert answer.status_code == 200
    rows = seen(meters.files, 9)
    by_key: dict[str, list[object]] = {}
    for key, data in rows:
        assert isinstance(data, dict)
        by_key.setdefault(str(key), []).append(data["kwh"])
    assert by_key == {"m1": [1, 3, 5, 7, 99], "m0": [2, 4, 6, 100]}


def test_puts_that_cannot_be_placed_are_refused_with_the_reason(meters: Dev) -> None:
    env = {"TRIGGERFISH_SERVER": meters.url}
    unknown = run("stream", "put", "other", "-d", '{"meter": "m1"}', env=env)
    assert unknown.exit_code == 1
    assert "404 StreamNotFound" in unknown.stderr
    assert "streams read now: readings" in unknown.stderr
    keyless = run("stream", "put", "readings", "-d", '{"kwh": 1}', env=env)
    assert keyless.exit_code == 1
    assert "no partition key: it has no string or number field 'meter'" in keyless.stderr
    bad = run("stream", "put", "readings", "-d", "{not json", env=env)
    assert bad.exit_code != 0
    assert "the record is not JSON" in bad.stderr
