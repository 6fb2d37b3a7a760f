"""One producer process of the async benchmarks: enqueues COUNT no-op tasks, IN_FLIGHT calls at a time.

    python -m benchmarks.producers http URL --count 1000 --first 0 [--key KEY] [--in-flight 16]
    python -m benchmarks.producers dramatiq MODULE --count 1000 --first 0
    python -m benchmarks.producers celery MODULE --count 1000 --first 0
    python -m benchmarks.producers http URL --count 1000 --first 0 --batch 50

Every system gets the same producers: this process, started PRODUCERS times,
each sending its share one task per call and waiting for the call to return
before the next (no batching), with the payload `{"n": N}`; with
`--in-flight K`, K threads do so side by side, each with its own client,
as K request handlers of a web application would. Triggerfish's
client is its HTTP API (Lambda's Invoke with `X-Amz-Invocation-Type: Event`,
answered 202 once the invocation is durably queued), over one keep-alive
connection; Dramatiq's is `actor.send(payload)` and Celery's
`task.delay(payload)`, each on its own client and connection to Redis.

With `--batch B`, each call sends B tasks with the system's own batched
send: Triggerfish's `POST .../invoke-batch` (B invocations in one request and
one durable commit, answered 202 once all are queued), Dramatiq's
`group(messages).run()` and Celery's `group(signatures).apply_async()`
(each of those two enqueues its messages one by one on one connection: they
have no batched enqueue on Redis).

The process connects, prints `ready`, waits for a line on stdin (so that
starting Python is not timed), sends, and prints one line of JSON: when it
began and ended (epoch seconds), how many it sent and how many failed.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit


def http_sender(url: str, key: str | None, batch: int = 1) -> Callable[[list[dict[str, Any]]], bool]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    connection.connect()
    headers = {"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    batch_path = parts.path.removesuffix("/invoke") + "/invoke-batch"

    def send(payloads: list[dict[str, Any]]) -> bool:
        if batch == 1:
            connection.request("POST", parts.path, json.dumps(payloads[0]), headers)
        else:
            connection.request("POST", batch_path, json.dumps({"events": payloads}), headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status == 202

    return send


def module_sender(kind: str, module_name: str, batch: int = 1) -> Callable[[list[dict[str, Any]]], bool]:
    task = importlib.import_module(module_name).noop
    if batch == 1:
        enqueue = task.send if kind == "dramatiq" else task.delay

        def send_one(payloads: list[dict[str, Any]]) -> bool:
            enqueue(payloads[0])
            return True

        return send_one
    if kind == "dramatiq":
        import dramatiq

        def send_group(payloads: list[dict[str, Any]]) -> bool:
            dramatiq.group(task.message(p) for p in payloads).run()  # type: ignore[no-untyped-call,unused-ignore]
            return True

        return send_group
    import celery

    def send_celery_group(payloads: list[dict[str, Any]]) -> bool:
        celery.group(task.s(p) for p in payloads).apply_async()
        return True

    return send_celery_group


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.producers", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("http", "dramatiq", "celery"))
    parser.add_argument("target", help="the invoke URL (http) or the tasks module (dramatiq, celery)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--key", default=None, help="an API key for the http kind")
    parser.add_argument("--in-flight", type=int, default=1, help="threads sending side by side, each one at a time")
    parser.add_argument("--batch", type=int, default=1, help="tasks per call, with the system's batched send")
    args = parser.parse_args(argv)
    threads = max(1, min(args.in_flight, args.count))
    batch = max(1, args.batch)
    senders = [
        http_sender(args.target, args.key, batch)
        if args.kind == "http"
        else module_sender(args.kind, args.target, batch)
        for _ in range(threads)
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.time()
    with ThreadPoolExecutor(threads) as pool:
        failures = pool.map(
            lambda i: send_share(senders[i], _share(args.first, args.count, threads, i), batch), range(threads)
        )
        failed = sum(failures)
    ended = time.time()
    print(json.dumps({"began": began, "ended": ended, "sent": args.count - failed, "failed": failed}), flush=True)


def _share(first: int, count: int, threads: int, i: int) -> list[int]:
    """Thread i's task numbers of first .. first + count - 1 (every threads-th)."""
    return list(range(first + i, first + count, threads))


def send_share(send: Callable[[list[dict[str, Any]]], bool], numbers: list[int], batch: int = 1) -> int:
    """Send each of `numbers` in turn, `batch` per call; how many failed."""
    failed = 0
    for start in range(0, len(numbers), batch):
        chunk = numbers[start : start + batch]
        try:
            ok = send([{"n": n} for n in chunk])
        except Exception as exc:
            print(f"send {chunk[0]}..{chunk[-1]} failed: {exc}", file=sys.stderr)
            ok = False
        failed += 0 if ok else len(chunk)
    return failed


if __name__ == "__main__":
    main()
