"""S3's signatures, checked as under `serve`: presigned URLs from boto3 hold until they expire, and not a
second after; a changed path or query breaks them."""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

import boto3
import pytest

from triggerfish.aws.credentials import Caller
from triggerfish.aws.s3_auth import Signed, authenticate
from triggerfish.aws.sigv4 import signing_secret
from triggerfish.objects.model import ObjectError

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


async def identify(access_key_id: str) -> tuple[Caller, bytes | None] | None:
    if access_key_id != "AKIDEXAMPLE":
        return None
    return Caller(access_key_id, "shop", frozenset({"read"})), signing_secret(SECRET)


def presigned(expires: int) -> str:
    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:8080/-/aws",
        region_name="local",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
    )
    url: str = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "a b.jpg"}, ExpiresIn=expires)
    return url


async def check(url: str, now: datetime.datetime) -> Signed:
    parts = urlsplit(url)
    return await authenticate(
        identify,
        method="GET",
        raw_path=parts.path,
        raw_query=parts.query,
        headers=[("host", parts.netloc)],
        found={"host": parts.netloc},
        now=now,
    )


async def test_a_presigned_url_holds_until_it_expires() -> None:
    now = datetime.datetime.now(datetime.UTC)
    url = presigned(3600)
    signed = await check(url, now)
    assert signed.checked
    assert signed.caller.app == "shop"
    assert (await check(url, now + datetime.timedelta(seconds=3500))).checked
    with pytest.raises(ObjectError) as expired:
        await check(url, now + datetime.timedelta(seconds=3700))
    assert (expired.value.code, expired.value.message) == ("AccessDenied", "Request has expired")


@pytest.mark.parametrize(("old", "new"), [("a%20b.jpg", "a%20c.jpg"), ("X-Amz-Expires=3600", "X-Amz-Expires=7200")])
async def test_a_changed_presigned_url_does_not_match(old: str, new: str) -> None:
    url = presigned(3600)
    with pytest.raises(ObjectError) as refused:
        await check(url.replace(old, new), datetime.datetime.now(datetime.UTC))
    assert refused.value.code == "SignatureDoesNotMatch"


async def test_an_unsigned_request_is_refused() -> None:
    with pytest.raises(ObjectError) as refused:
        await check("http://127.0.0.1:8080/-/aws/photos/a.jpg", datetime.datetime.now(datetime.UTC))
    assert refused.value.code == "AccessDenied"
