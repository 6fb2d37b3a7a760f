"""The event benchmark's load generator: publishes CloudEvents over HTTP from its own process.

    python -m benchmarks.loadgen_events rate URL --rate 1000 --seconds 5 --prefix r1 --out sent.json
    python -m benchmarks.loadgen_events burst URL --events 3000 --publishers 8 --batch 10 --prefix f1 --out sent.json

`rate`: one event per request in structured mode (`application/cloudevents+json`)
on an open-loop schedule: request n is written at start + n / rate whether or
not earlier ones were answered, on a keep-alive connection that is free then
(a new one is opened when none is, up to MAX_CONNECTIONS). The time each
request was written is the event's publish time.

`burst`: PUBLISHERS connections each post batches of BATCH events in batch
mode (`application/cloudevents-batch+json`), the next as soon as the last
was answered, until EVENTS are published.

Either writes a JSON document to --out: each event's publish time by id (epoch
seconds, `time.time()`, the clock the handlers read), the ids the platform
did not accept with why, the answers' latencies and how late the schedule ran.
Events are `OrderPlaced` from `shop` with `order_event_data(n)` as data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from benchmarks.apps.events_latency_app import order_event_data

#: Requests waiting for an answer at once; an event due beyond that is not sent (and counted as not accepted).
MAX_CONNECTIONS = 512
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def order_event(event_id: str, number: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "shop",
        "type": "OrderPlaced",
        "datacontenttype": "application/json",
        "data": order_event_data(number),
    }


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    def send(self, path: str, content_type: str, body: bytes) -> None:
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {content_type}\r\n"
        self.writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)

    async def answer(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return int(head.split(b" ", 2)[1]), body

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class Published:
    sent: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    answer_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    connections: int = 0
    began: float = 0.0
    ended: float = 0.0

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "sent": self.sent,
                "refused": self.refused,
                "answer_ms": self.answer_ms,
                "lag_ms": self.lag_ms,
                "connections": self.connections,
                "began": self.began,
                "ended": self.ended,
            }
        )


async def at_rate(url: str, rate: float, seconds: float, prefix: str, first: int) -> Published:
    path = urlsplit(url).path or "/"
    published = Published()
    idle: list[Connection] = []
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def publish(number: int, due: float) -> None:
        event_id = f"{prefix}-{number}"
        body = orjson.dumps(order_event(event_id, number))
        if idle:
            connection = idle.pop()
        else:
            if published.connections >= MAX_CONNECTIONS:
                published.refused[event_id] = f"more than {MAX_CONNECTIONS} requests unanswered"
                return
            published.connections += 1
            connection = await Connection.open(url)
        published.lag_ms.append((loop.time() - due) * 1000)
        started = published.sent[event_id] = time.time()
        connection.send(path, STRUCTURED, body)
        try:
            status, answer = await connection.answer()
        except (OSError, asyncio.IncompleteReadError) as exc:
            published.refused[event_id] = f"connection failed: {exc}"
            connection.close()
            return
        published.answer_ms.append((time.time() - started) * 1000)
        if status != 202:
            published.refused[event_id] = f"status {status}: {answer[:200].decode(errors='replace')}"
        idle.append(connection)

    count = round(rate * seconds)
    published.began = time.time()
    start = loop.time()
    for n in range(count):
        due = start + n / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(publish(first + n, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    published.ended = time.time()
    for connection in idle:
        connection.close()
    return published


async def in_bursts(url: str, events: int, publishers: int, batch: int, prefix: str, first: int) -> Published:
    path = urlsplit(url).path or "/"
    published = Published(connections=publishers)
    numbers: Iterator[int] = iter(range(first, first + events))

    async def publisher() -> None:
        connection = await Connection.open(url)
        try:
            while True:
                chunk = [n for _, n in zip(range(batch), numbers, strict=False)]
                if not chunk:
                    return
                ids = [f"{prefix}-{n}" for n in chunk]
                body = orjson.dumps([order_event(i, n) for i, n in zip(ids, chunk, strict=True)])
                started = time.time()
                for event_id in ids:
                    published.sent[event_id] = started
                connection.send(path, BATCH, body)
                status, answer = await connection.answer()
                published.answer_ms.append((time.time() - started) * 1000)
                if status != 202:
                    for event_id in ids:
                        published.refused[event_id] = f"status {status}: {answer[:200].decode(errors='replace')}"
        finally:
            connection.close()

    published.began = time.time()
    await asyncio.gather(*(publisher() for _ in range(publishers)))
    published.ended = time.time()
    return published


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen_events", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("rate", "burst"))
    parser.add_argument("url", help="the platform's POST /-/events URL")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--publishers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--prefix", required=True, help="event ids are PREFIX-N")
    parser.add_argument("--first", type=int, default=0, help="the first N")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.mode == "rate":
        published = asyncio.run(at_rate(args.url, args.rate, args.seconds, args.prefix, args.first))
    else:
        published = asyncio.run(in_bursts(args.url, args.events, args.publishers, args.batch, args.prefix, args.first))
    args.out.write_bytes(published.to_json())


def load(path: Path) -> dict[str, Any]:
    """What a run wrote to --out."""
    document: dict[str, Any] = json.loads(path.read_bytes())
    return document


if __name__ == "__main__":
    main()
