"""An HTTP app exercising every response form and failure the gateway maps; served in-process and in workers."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from triggerfish import App

app = App("web")


@app.http("ANY", "/echo/{proxy+}")
def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return event


@app.http("GET", "/items/{id}")
def get_item(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"id": event["pathParameters"]["id"]}


@app.http("POST", "/items")
def create_item(event: dict[str, Any], context: Any) -> dict[str, Any]:
    item = json.loads(event["body"])
    return {
        "statusCode": 201,
        "headers": {"Location": f"/items/{item['id']}", "Content-Type": "application/json"},
        "cookies": ["session=abc; HttpOnly", "theme=dark"],
        "body": json.dumps(item),
    }


@app.http("GET", "/hello")
def hello(event: dict[str, Any], context: Any) -> str:
    return "hello, world"


@app.http("GET", "/pixel")
def pixel(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"content-type": "image/gif"},
        "body": base64.b64encode(b"GIF89a\x01\x00\x01\x00\x00\xff").decode(),
        "isBase64Encoded": True,
    }


@app.http("GET", "/fail")
def fail(event: dict[str, Any], context: Any) -> None:
    raise RuntimeError("secret detail that must not reach the client")


@app.http("GET", "/malformed")
def malformed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": "200", "body": "not an int status"}


@app.http("GET", "/slow", timeout=0.3)
def slow(event: dict[str, Any], context: Any) -> str:
    time.sleep(2)
    return "too late"


@app.http("GET", "/busy", concurrency=1)
def busy(event: dict[str, Any], context: Any) -> str:
    time.sleep(0.5)
    return "done"
