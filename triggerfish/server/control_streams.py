"""The control API's built-in streams: `POST /partitioned-streams/{name}/records` puts records (`@app.on_stream`).

What `triggerfish stream put` calls. The body is `{"records": [{"data": <JSON>, "key": "..."}, ...]}` (1 to 500,
all or none); a record without `key` is placed by the stream's `partition_key` field. A stream no function reads
is 404 naming the streams that are read; a record that cannot be placed is 400 saying which and why.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.errors import InvalidInputError
from triggerfish.server.control_io import ApiError, json_response, platform_of
from triggerfish.server.operations import Answer, Body, Operation, inputs, path
from triggerfish.server.schema import AnyValue, Array, Named, Object, Text
from triggerfish.streams.partitioned import MAX_KEY_CHARS, MAX_PUT_RECORDS

PUT_INPUT = Named(
    "StreamPutInput",
    Object(
        {
            "records": Array(
                Object(
                    {
                        "data": AnyValue("the record, any JSON value"),
                        "key": Text("The partition key (default: the record's partition_key field)", min_length=1,
                                    max_length=MAX_KEY_CHARS),
                    },
                    required=("data",),
                ),
                min_items=1,
                max_items=MAX_PUT_RECORDS,
            )
        },
        required=("records",),
    ),
)  # fmt: skip


async def put_records(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = given.path["name"]
    streams = platform.sources.partitioned
    if name not in streams.declared():
        known = ", ".join(sorted(streams.declared())) or "none"
        raise ApiError(404, "StreamNotFound", f"no function reads stream {name!r} (streams read now: {known})")
    records = [(record["data"], record.get("key")) for record in given.body["records"]]
    try:
        placed = await streams.put(name, records)
    except InvalidInputError as exc:
        raise ApiError(400, "InvalidInput", str(exc)) from None
    return json_response({"stream": name, "records": placed})


OPERATIONS = (
    Operation(
        "POST",
        "/partitioned-streams/{name}/records",
        put_records,
        "Put records into a built-in stream (@app.on_stream), in order per partition key; where each went",
        {200: Answer("", "StreamPut")},
        "invoke",
        params=(path("name", "The stream", Text(min_length=1, pattern="[A-Za-z0-9_.-]+", hint="a stream name")),),
        body=Body(PUT_INPUT),
        errors=(404,),
    ),
)
