"""Receiving a Triggerfish webhook: check its signature and age before trusting the body."""

from triggerfish.bus.webhook import SignatureError, sign, verify

SECRET = "whsec-shared-with-the-rule"


def handle(headers: dict[str, str], body: bytes) -> int:
    """What a receiver's endpoint does: 401 unless the request is signed and recent."""
    try:
        verify(SECRET, headers, body, tolerance=300)
    except SignatureError:
        return 401
    return 200


body = b'{"id": "e-1", "type": "OrderPlaced"}'
signed = sign(SECRET, body)  # what Triggerfish sends along with the body
assert handle(signed, body) == 200
assert handle(signed, body.replace(b"e-1", b"e-2")) == 401  # tampered
assert handle(sign(SECRET, body, timestamp=1_000_000_000), body) == 401  # replayed long after
assert handle({}, body) == 401  # unsigned
