"""AWS Signature Version 4, as a server checks it: parse the `Authorization` header, rebuild the signature.

    header = parse_authorization(request_headers["authorization"])
    expected = signature(signing_secret("wJalr..."), header.scope, string_to_sign(...))

Pure: no I/O, no clock (the caller passes the time to check the request's
date against). Written from AWS's specification of the signing process and
held to its published test suite (tests/aws/test_sigv4.py):

- canonical request: method, the URI path with dot segments and repeated
  slashes removed and each byte percent-encoded again (every service but S3
  encodes twice; our endpoint is not S3), the query parameters decoded,
  re-encoded and sorted, the signed headers in lowercase with their values'
  whitespace trimmed and runs of spaces made one (repeated headers joined
  with commas in the order sent), the signed header names, and the payload's
  SHA-256 in hex;
- string to sign: `AWS4-HMAC-SHA256`, the request's time, the credential
  scope (`date/region/service/aws4_request`) and the canonical request's hash;
- signing key: HMAC-SHA256 chained from `"AWS4" + secret` over date, region,
  service and `aws4_request`.

A secret is taken as its *HMAC key*, `signing_secret(secret)`: HMAC (RFC 2104)
hashes a key longer than its 64-byte block before use, so for a secret of 61
characters or more `SHA-256("AWS4" + secret)` signs exactly as the secret
does. The server keeps only that digest (see triggerfish.aws.credentials).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
#: How far a request's time may be from the server's, as AWS allows (15 minutes).
MAX_SKEW = datetime.timedelta(minutes=15)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_UNRESERVED = "-_.~"
_SPACES = re.compile(r" +")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_FIELD = re.compile(r"\s*([A-Za-z]+)=([^,]*)\s*(?:,|$)")


class SignatureError(Exception):
    """A request's signature is missing, malformed or wrong. `kind` says which, for the protocol's error code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        #: `missing`, `incomplete` (malformed header), `expired` (time skew) or `mismatch`.
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class CredentialScope:
    access_key_id: str
    date: str
    region: str
    service: str

    def __str__(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


@dataclass(frozen=True, slots=True)
class AuthorizationHeader:
    """The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`."""

    scope: CredentialScope
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> AuthorizationHeader:
    """Read a SigV4 `Authorization` header; raises SignatureError (`missing` or `incomplete`) saying what is wrong."""
    if value is None or not value.strip():
        raise SignatureError(
            "missing", "the request carries no Authorization header: sign it with AWS Signature Version 4"
        )
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(
            "incomplete", f"Authorization names the algorithm {algorithm!r}; this endpoint takes {ALGORITHM} only"
        )
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(rest):
        fields[match.group(1)] = match.group(2).strip()
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise SignatureError(
            "incomplete", f"Authorization lacks {', '.join(missing)}: it must name Credential, SignedHeaders, Signature"
        )
    parts = fields["Credential"].split("/")
    if len(parts) != 5 or parts[4] != TERMINATOR or not all(parts):
        raise SignatureError(
            "incomplete",
            f"Credential {fields['Credential']!r} must read ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/{TERMINATOR}",
        )
    if not re.fullmatch(r"\d{8}", parts[1]):
        raise SignatureError("incomplete", f"the credential's date {parts[1]!r} must be YYYYMMDD")
    signed = tuple(fields["SignedHeaders"].split(";"))
    if "host" not in signed:
        raise SignatureError("incomplete", "SignedHeaders must include host")
    if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
        raise SignatureError("incomplete", "Signature must be 64 lowercase hex digits")
    return AuthorizationHeader(CredentialScope(*parts[:4]), signed, fields["Signature"])


def canonical_uri(raw_path: str) -> str:
    """The canonical URI of a path as it was sent (still percent-encoded): normalized, then encoded again."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/" + _UNRESERVED)


def canonical_query(raw_query: str) -> str:
    """The canonical query string: each name and value decoded, encoded as SigV4 does, sorted by name then value."""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((_encode(unquote(name)), _encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_headers(headers: Iterable[tuple[str, str]], signed: Sequence[str]) -> str:
    """The signed headers' lines, `name:value\\n` in the order of `signed` (sorted lowercase names)."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(_SPACES.sub(" ", value.strip()))
    lines = []
    for name in signed:
        if name not in values:
            raise SignatureError("incomplete", f"SignedHeaders names {name!r}, which the request does not carry")
        lines.append(f"{name}:{','.join(values[name])}\n")
    return "".join(lines)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    signed: Sequence[str],
    payload_sha256: str,
) -> str:
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_sha256,
        ]
    )


def string_to_sign(amz_date: str, scope: CredentialScope, request: str) -> str:
    return "\n".join([ALGORITHM, amz_date, str(scope), hashlib.sha256(request.encode("utf-8")).hexdigest()])


def signing_secret(secret_access_key: str) -> bytes:
    """The HMAC key of the signing process's first step; a digest when the secret is long enough (see above)."""
    key = b"AWS4" + secret_access_key.encode("utf-8")
    return hashlib.sha256(key).digest() if len(key) > hashlib.sha256().block_size else key


def signature(secret: bytes, scope: CredentialScope, to_sign: str) -> str:
    """The hex signature of `to_sign` under `secret` (from `signing_secret`) and `scope`."""
    key = secret
    for part in (scope.date, scope.region, scope.service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def request_time(headers: Iterable[tuple[str, str]]) -> tuple[str, datetime.datetime]:
    """The request's `X-Amz-Date` (or `Date`) as sent and as a time; raises SignatureError when there is none."""
    found = {name.lower(): value.strip() for name, value in headers}
    text = found.get("x-amz-date")
    if text is not None:
        try:
            moment = datetime.datetime.strptime(text, _AMZ_DATE).replace(tzinfo=datetime.UTC)
        except ValueError:
            raise SignatureError("incomplete", f"X-Amz-Date {text!r} must read YYYYMMDD'T'HHMMSS'Z'") from None
        return text, moment
    text = found.get("date")
    if text is None:
        raise SignatureError("incomplete", "the request carries neither X-Amz-Date nor Date")
    try:
        moment = datetime.datetime.strptime(text, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise SignatureError("incomplete", f"Date {text!r} is not an HTTP date") from None
    return moment.strftime(_AMZ_DATE), moment


def verify(
    header: AuthorizationHeader,
    secret: bytes,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    payload_sha256: str,
    now: datetime.datetime,
) -> None:
    """Check a request's signature; raises SignatureError (`expired`, `incomplete` or `mismatch`) when it fails."""
    amz_date, moment = request_time(headers)
    if abs(now - moment) > MAX_SKEW:
        raise SignatureError(
            "expired",
            f"Signature expired: {amz_date} is more than 15 minutes from the server's time"
            f" {now.strftime(_AMZ_DATE)}; check the client's clock",
        )
    if amz_date[:8] != header.scope.date:
        raise SignatureError(
            "incomplete", f"the credential's date {header.scope.date} is not the request's date {amz_date[:8]}"
        )
    request = canonical_request(method, raw_path, raw_query, headers, header.signed_headers, payload_sha256)
    expected = signature(secret, header.scope, string_to_sign(amz_date, header.scope, request))
    if not hmac.compare_digest(expected, header.signature):
        raise SignatureError(
            "mismatch",
            "The request signature we calculated does not match the signature you provided."
            " Check your AWS Secret Access Key and signing method.",
        )


def _encode(text: str) -> str:
    return quote(text, safe=_UNRESERVED)
