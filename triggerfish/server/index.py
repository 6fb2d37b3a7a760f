"""`GET /-/`: the platform's endpoints, listed from the same tables that route them.

    {"triggerfish": "0.1.0", "server": "dev", "openapi": "/-/api/v1/openapi.json",
     "endpoints": [{"method": "GET", "path": "/-/health", "summary": "..."}, ...]}

A person (or a script) who finds a server learns what it offers from here;
the OpenAPI document says how to call each endpoint. Like `/-/health`, the
list names no app, key or record, so `triggerfish serve` asks no key for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from starlette.responses import JSONResponse, Response

from triggerfish import __version__
from triggerfish.server.openapi import template
from triggerfish.server.operations import Operation

PATH = "/-/"
SUMMARY = "This list of the platform's endpoints"
OPENAPI = "/-/api/v1/openapi.json"
#: The AWS endpoint is one path for many protocols (docs/aws.md), not an operation of the control API.
AWS = {
    "method": "POST",
    "path": "/-/aws",
    "summary": "AWS's wire protocols (SQS, EventBridge, SNS, Lambda) for boto3 and the AWS CLI: AWS_ENDPOINT_URL",
}


def listed(operations: Iterable[Operation], prefix: str = "") -> list[dict[str, str]]:
    """One entry per operation: its method, its path from the server's root (`{name}` for a parameter)."""
    return [{"method": op.method, "path": prefix + template(op.path), "summary": op.summary} for op in operations]


def index_response(server: Literal["dev", "serve"], endpoints: list[dict[str, str]]) -> Response:
    """The answer of `GET /-/`: this list first, then the endpoints in the order they are routed."""
    own = {"method": "GET", "path": PATH, "summary": SUMMARY}
    listing = [own, *endpoints, AWS]
    document = {"triggerfish": __version__, "server": server, "openapi": OPENAPI, "endpoints": listing}
    return JSONResponse(document)
