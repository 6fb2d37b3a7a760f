"""The event a handler receives: API Gateway's HTTP API payload format 2.0, built from the request."""

import base64

from triggerfish.gateway import HttpRequest, http_event

request = HttpRequest(
    method="POST",
    raw_path="/files/report%202024.pdf",
    path="/files/report 2024.pdf",
    query_string=b"tag=a&tag=b",
    headers=[
        (b"host", b"api.example.com"),
        (b"content-type", b"application/pdf"),
        (b"cookie", b"session=abc; theme=dark"),
        (b"x-tag", b"one"),
        (b"x-tag", b"two"),
    ],
    body=b"%PDF-1.7 \x00\x01",
)
event = http_event(request, "POST /files/{name}", {"name": "report 2024.pdf"}, request_id="r-1", now=1583348638.0)

assert event["routeKey"] == "POST /files/{name}"
assert event["rawPath"] == "/files/report%202024.pdf"
assert event["pathParameters"] == {"name": "report 2024.pdf"}
assert event["queryStringParameters"] == {"tag": "a,b"}  # repeated keys joined by commas
assert event["headers"]["x-tag"] == "one,two"  # so are repeated headers
assert event["cookies"] == ["session=abc", "theme=dark"]  # cookies leave the headers for their own list
assert event["isBase64Encoded"] is True  # a binary body arrives base64-encoded
assert base64.b64decode(event["body"]) == b"%PDF-1.7 \x00\x01"
assert event["requestContext"]["time"] == "04/Mar/2020:19:03:58 +0000"
assert event["requestContext"]["http"]["method"] == "POST"
