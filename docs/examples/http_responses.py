"""How a handler's return value becomes the HTTP response, as API Gateway does for payload format 2.0."""

from triggerfish.gateway import MalformedResponseError, http_response

# Anything without "statusCode" is a 200 application/json response ...
assert http_response({"ok": True}).body == b'{"ok":true}'
assert http_response([1, 2]).body == b"[1,2]"
# ... and a string is the body itself, still labelled application/json, as API Gateway labels it.
plain = http_response("Hello from Lambda!")
assert (plain.status, plain.body) == (200, b"Hello from Lambda!")
assert plain.headers == [(b"content-type", b"application/json")]

# With "statusCode" it is the Lambda proxy form.
proxy = http_response(
    {
        "statusCode": 302,
        "headers": {"Location": "/login"},
        "cookies": ["a=1; HttpOnly", "b=2"],  # each becomes its own Set-Cookie header
        "body": "",
    }
)
assert proxy.status == 302
assert proxy.headers == [(b"location", b"/login"), (b"set-cookie", b"a=1; HttpOnly"), (b"set-cookie", b"b=2")]

# A proxy response the gateway cannot send is refused with the reason; the client gets 502.
reason = ""
try:
    http_response({"statusCode": 200, "body": {"not": "a string"}})
except MalformedResponseError as exc:
    reason = str(exc)
assert "body must be a string" in reason
