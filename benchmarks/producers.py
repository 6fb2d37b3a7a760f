"""One producer process of the async benchmarks: enqueues COUNT no-op tasks, IN_FLIGHT calls at a time.

    python -m benchmarks.producers http URL --count 1000 --first 0 [--key KEY] [--in-flight 16]
    python -m benchmarks.producers dramatiq MODULE --count 1000 --first 0
    python -m benchmarks.producers celery MODULE --count 1000 --first 0

Every system gets the same producers: this process, started PRODUCERS times,
each sending its share one task per call and waiting for the call to return
before the next (no batching), with the payload `{"n": N}`; with
`--in-flight K`, K threads do so side by side, each with its own client,
as K request handlers of a web application would. Triggerfish's
client is its HTTP API (Lambda's Invoke with `X-Amz-Invocation-Type: Event`,
answered 202 once the invocation is durably queued), over one keep-alive
connection; Dramatiq's is `actor.send(payload)` and Celery's
`task.delay(payload)`, each on its own client and connection to Redis.

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


def http_sender(url: str, key: str | None) -> Callable[[dict[str, Any]], bool]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    connection.connect()
    headers = {"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"}
    if key:
        headers["Authorization"] = f"Bearer {key}"

    def send(payload: dict[str, Any]) -> bool:
        connection.request("POST", parts.path, json.dumps(payload), headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status == 202

    return send


def module_sender(kind: str, module_name: str) -> Callable[[dict[str, Any]], bool]:
    task = importlib.import_module(module_name).noop
    enqueue = task.send if kind == "dramatiq" else task.delay

    def send(payload: dict[str, Any]) -> bool:
        enqueue(payload)
        return True

    return send


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.producers", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("http", "dramatiq", "celery"))
    parser.add_argument("target", help="the invoke URL (http) or the tasks module (dramatiq, celery)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--key", default=None, help="an API key for the http kind")
    parser.add_argument("--in-flight", type=int, default=1, help="threads sending side by side, each one at a time")
    args = parser.parse_args(argv)
    threads = max(1, min(args.in_flight, args.count))
    senders = [
        http_sender(args.target, args.key) if args.kind == "http" else module_sender(args.kind, args.target)
        for _ in range(threads)
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.time()
    with ThreadPoolExecutor(threads) as pool:
        failures = pool.map(
            lambda i: send_share(senders[i], range(args.first + i, args.first + args.count, threads)), range(threads)
        )
        failed = sum(failures)
    ended = time.time()
    print(json.dumps({"began": began, "ended": ended, "sent": args.count - failed, "failed": failed}), flush=True)


def send_share(send: Callable[[dict[str, Any]], bool], numbers: range) -> int:
    """Send each of `numbers` in turn; how many failed."""
    failed = 0
    for n in numbers:
        try:
            ok = send({"n": n})
        except Exception as exc:
            print(f"send {n} failed: {exc}", file=sys.stderr)
            ok = False
        failed += not ok
    return failed


if __name__ == "__main__":
    main()
