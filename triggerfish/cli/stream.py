"""`triggerfish stream put`: records into an app's built-in stream (`@app.on_stream`), over the control API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from triggerfish.cli.client import Client, input_error, segment, server_options
from triggerfish.cli.inputs import read_payload
from triggerfish.cli.output import Output, json_option


@click.group()
def stream() -> None:
    """Put records into an app's built-in partitioned streams."""


@stream.command()
@click.argument("name")
@click.option("-d", "--data", "data", default=None, help="The record as JSON (else --path, else standard input).")
@click.option("--path", "path", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Read it.")
@click.option(
    "--partition-key",
    "partition_key",
    default=None,
    help="The partition key (default: the record's partition_key field).",
)
@click.option("--lines", is_flag=True, help="The input is JSON lines: one record per line, put in order.")
@server_options()
@json_option
def put(
    name: str,
    data: str | None,
    path: Path | None,
    partition_key: str | None,
    lines: bool,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Put a record (or, with --lines, one per line) into the stream NAME; prints where each went."""
    text, _ = read_payload(data, path)
    chunks = [line for line in text.splitlines() if line.strip()] if lines else [text]
    if not chunks or not chunks[0].strip():
        raise input_error('the record is empty: give it as JSON with -d \'{"device": "d1"}\', --path FILE or stdin')
    records: list[dict[str, Any]] = []
    for number, chunk in enumerate(chunks, start=1):
        try:
            value = orjson.loads(chunk)
        except orjson.JSONDecodeError as exc:
            where = f"line {number}" if lines else "the record"
            raise input_error(f"{where} is not JSON ({exc})") from None
        records.append({"data": value} if partition_key is None else {"data": value, "key": partition_key})
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        placed = client.request(
            "POST", client.app_api(f"/partitioned-streams/{segment(name)}/records"), json={"records": records}
        )
    if not out.json(placed):
        for record in placed.get("records", []):
            out.write(f"{record.get('partition')} {record.get('sequenceNumber')}")
