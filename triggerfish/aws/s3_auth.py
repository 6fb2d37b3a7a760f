"""Who signed an S3 request, in its header or its query string (a presigned URL), and how its body is signed.

S3 signs as every SigV4 service does (sigv4.py) with two differences: the canonical URI is the path
as sent, encoded once (other services encode it twice), and the payload's hash may be a promise about
the body instead of its hash: `UNSIGNED-PAYLOAD`, or a streaming form whose chunks carry their own
signatures (s3_chunked.py). A presigned URL carries the signature in `X-Amz-*` query parameters, with
an expiry of up to seven days, and signs `UNSIGNED-PAYLOAD`.
"""

from __future__ import annotations

import datetime
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

from triggerfish.aws import sigv4
from triggerfish.aws.credentials import Caller, Identify
from triggerfish.aws.s3_chunked import ChunkSigner
from triggerfish.aws.sigv4 import AuthorizationHeader, CredentialScope, SignatureError
from triggerfish.objects.model import ObjectError

UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
#: Longest a presigned URL may live (S3's seven days).
MAX_EXPIRES = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Signed:
    """An authenticated request: its caller, what its payload hash says, and the signer of its chunks."""

    caller: Caller
    #: `x-amz-content-sha256` (a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* form).
    payload: str
    #: Whether signatures were checked (not under `triggerfish dev`): then a hex payload hash is checked too.
    checked: bool
    signer: ChunkSigner | None


def is_s3(headers: dict[str, str], query: str) -> bool:
    """Whether a request to /-/aws is signed for S3 (by header or presigned)."""
    try:
        return sigv4.parse_authorization(headers.get("authorization")).scope.service == "s3"
    except SignatureError:
        pass
    if "X-Amz-Credential=" not in query:
        return False
    credential = dict(parse_qsl(query)).get("X-Amz-Credential", "")
    return credential.split("/")[3:4] == ["s3"]


def canonical_uri(raw_path: str) -> str:
    """S3's canonical URI: each segment of the path as sent, encoded once (no normalization)."""
    return "/".join(quote(unquote(segment), safe="-_.~") for segment in raw_path.split("/")) or "/"


async def authenticate(
    identify: Identify,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    found: dict[str, str],
    now: datetime.datetime,
) -> Signed:
    """Check the request's signature; raises ObjectError with S3's code when it does not hold."""
    try:
        if "authorization" in found:
            return await _by_header(identify, method, raw_path, raw_query, headers, found, now)
        if "X-Amz-Signature=" in raw_query:
            return await _presigned(identify, method, raw_path, raw_query, headers, now)
    except SignatureError as exc:
        code = {"expired": "RequestTimeTooSkewed", "mismatch": "SignatureDoesNotMatch"}.get(exc.kind, "AccessDenied")
        raise ObjectError(code, exc.message, status=403) from None
    raise ObjectError(
        "AccessDenied", "Anonymous access is not allowed: sign the request with AWS Signature Version 4", status=403
    )


async def _caller(identify: Identify, access_key_id: str) -> tuple[Caller, bytes | None]:
    identified = await identify(access_key_id)
    if identified is None:
        raise ObjectError(
            "InvalidAccessKeyId",
            f"The AWS Access Key Id you provided does not exist in our records: {access_key_id!r} (under serve, the"
            " access key id of an API key of one app: `triggerfish keys create --app APP` shows it)",
            status=403,
        )
    return identified


async def _by_header(
    identify: Identify,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    found: dict[str, str],
    now: datetime.datetime,
) -> Signed:
    header = sigv4.parse_authorization(found["authorization"])
    caller, secret = await _caller(identify, header.scope.access_key_id)
    payload = found.get("x-amz-content-sha256")
    if payload is None:
        raise ObjectError(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256 (SigV4 for S3 signs it)"
        )
    amz_date, moment = sigv4.request_time(headers)
    if secret is None:
        return Signed(caller, payload, False, None)
    if abs(now - moment) > sigv4.MAX_SKEW:
        raise SignatureError("expired", "The difference between the request time and the current time is too large.")
    _check(header, secret, method, raw_path, raw_query, headers, payload, amz_date)
    signer = None
    if payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        signer = ChunkSigner(secret, header.scope, amz_date, header.signature)
    return Signed(caller, payload, True, signer)


def _check(
    header: AuthorizationHeader,
    secret: bytes,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    payload: str,
    amz_date: str,
) -> None:
    if amz_date[:8] != header.scope.date:
        raise SignatureError(
            "incomplete", f"the credential's date {header.scope.date} is not the request's {amz_date[:8]}"
        )
    request = "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            sigv4.canonical_query(raw_query),
            sigv4.canonical_headers(headers, header.signed_headers),
            ";".join(header.signed_headers),
            payload,
        ]
    )
    expected = sigv4.signature(secret, header.scope, sigv4.string_to_sign(amz_date, header.scope, request))
    if not hmac.compare_digest(expected, header.signature):
        raise SignatureError(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. Check your key and"
            " signing method.",
        )


async def _presigned(
    identify: Identify,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    now: datetime.datetime,
) -> Signed:
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    if params.get("X-Amz-Algorithm") != sigv4.ALGORITHM:
        raise ObjectError("AuthorizationQueryParametersError", f"X-Amz-Algorithm must be {sigv4.ALGORITHM}")
    parts = params.get("X-Amz-Credential", "").split("/")
    if len(parts) != 5 or parts[4] != sigv4.TERMINATOR:
        raise ObjectError(
            "AuthorizationQueryParametersError",
            "X-Amz-Credential must read ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        )
    scope = CredentialScope(*parts[:4])
    amz_date = params.get("X-Amz-Date", "")
    try:
        moment = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        raise ObjectError(
            "AuthorizationQueryParametersError",
            "X-Amz-Date must read YYYYMMDD'T'HHMMSS'Z' and X-Amz-Expires be seconds",
        ) from None
    if not 1 <= expires <= MAX_EXPIRES:
        raise ObjectError(
            "AuthorizationQueryParametersError",
            f"X-Amz-Expires must be between 1 and {MAX_EXPIRES} seconds (seven days), not {expires}",
        )
    caller, secret = await _caller(identify, scope.access_key_id)
    if now > moment + datetime.timedelta(seconds=expires):
        raise ObjectError("AccessDenied", "Request has expired", status=403)
    if moment - now > sigv4.MAX_SKEW:
        raise ObjectError("AccessDenied", "Request is not valid yet", status=403)
    if secret is None:
        return Signed(caller, UNSIGNED, False, None)
    signed = tuple(params.get("X-Amz-SignedHeaders", "host").split(";"))
    header = AuthorizationHeader(scope, signed, params.get("X-Amz-Signature", ""))
    unsigned_query = "&".join(p for p in raw_query.split("&") if not p.startswith("X-Amz-Signature="))
    _check(header, secret, method, raw_path, unsigned_query, headers, UNSIGNED, amz_date)
    return Signed(caller, UNSIGNED, True, None)
