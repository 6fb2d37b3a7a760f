"""One producer process of the async benchmarks: enqueues COUNT no-op tasks, one call at a time.

    python -m benchmarks.producers http URL --count 1000 --first 0 [--key KEY]
    python -m benchmarks.producers dramatiq MODULE --count 1000 --first 0
    python -m benchmarks.producers celery MODULE --count 1000 --first 0

Every system gets the same producers: this process, started PRODUCERS times,
each sending its share one task per call and waiting for the call to return
before the next (no batching), with the payload `{"n": N}`. Triggerfish's
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
    args = parser.parse_args(argv)
    send = http_sender(args.target, args.key) if args.kind == "http" else module_sender(args.kind, args.target)
    print("ready", flush=True)
    sys.stdin.readline()
    failed = 0
    began = time.time()
    for n in range(args.first, args.first + args.count):
        try:
            ok = send({"n": n})
        except Exception as exc:
            print(f"send {n} failed: {exc}", file=sys.stderr)
            ok = False
        failed += not ok
    ended = time.time()
    print(json.dumps({"began": began, "ended": ended, "sent": args.count - failed, "failed": failed}), flush=True)


if __name__ == "__main__":
    main()
