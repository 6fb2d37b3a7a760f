"""S3 under `triggerfish serve`: app keys sign S3 requests (checked), an app reaches its own buckets only,
presigned URLs work with plain curl, signed streaming bodies are checked chunk by chunk, and a function
uses boto3 unchanged with the credentials the platform gives it."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import subprocess
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
import pytest_asyncio
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking
from tests.objects.conftest import eventually
from triggerfish.aws.credentials import secret_access_key
from triggerfish.aws.s3_auth import canonical_uri
from triggerfish.aws.sigv4 import EMPTY_SHA256, CredentialScope, signature, signing_secret, string_to_sign
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

#: Copies what lands in `inbox` to `outbox` with boto3, as code written for AWS does.
APP = """
import boto3
import triggerfish
from urllib.parse import unquote_plus

app = triggerfish.App("{name}")


@app.on_object("inbox")
def copy(event, context):
    s3 = boto3.client("s3")
    for record in event["Records"]:
        key = unquote_plus(record["s3"]["object"]["key"])
        body = s3.get_object(Bucket="inbox", Key=key)["Body"].read()
        s3.put_object(Bucket="outbox", Key=key, Body=body.upper())
"""
TOML = "[buckets.outbox]\n"


@dataclass
class Server:
    host: Host
    url: str
    keys: dict[str, str]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    tmp_path = tmp_path_factory.mktemp("s3-serve")
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        async with GatewayServer(HostASGI(host), port=0) as served:
            await host.advertise(served.url)
            for name in ("shop", "blog"):
                directory = tmp_path / name
                directory.mkdir()
                (directory / "app.py").write_text(textwrap.dedent(APP).format(name=name))
                (directory / "triggerfish.toml").write_text(TOML)
                bundle = pack(directory)
                host.bundles.put(name, bundle.sha256, bundle.data)
                await host.deploy(name, bundle.sha256)
            keys: dict[str, str] = {}
            for role in ("deployer", "viewer"):
                keys[role], _ = await host.keys.create(f"shop {role}", role, "shop")
            keys["blog"], _ = await host.keys.create("blog deployer", "deployer", "blog")
            yield Server(host, served.url, keys)
    finally:
        await host.stop()


pytestmark = pytest.mark.asyncio(loop_scope="module")


def key_id(key: str) -> str:
    return "_".join(key.split("_")[:2])


def s3(server: Server, who: str, **options: Any) -> Any:
    key = server.keys[who]
    return boto3.client(
        "s3",
        endpoint_url=f"{server.url}/-/aws",
        region_name="local",
        aws_access_key_id=key_id(key),
        aws_secret_access_key=options.pop("secret", secret_access_key(key)),
        config=Config(retries={"max_attempts": 1}, **options),
    )


def code_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return str(caught.value.response["Error"]["Code"])


async def test_an_app_reaches_its_own_buckets_only(server: Server) -> None:
    shop, blog = s3(server, "deployer"), s3(server, "blog")

    def work() -> None:
        shop.put_object(Bucket="inbox", Key="secret.txt", Body=b"shop's")
        # the same bucket name in another app is that app's own bucket: shop's objects are not there
        assert code_of(blog.get_object, Bucket="inbox", Key="secret.txt") == "NoSuchKey"
        assert blog.list_objects_v2(Bucket="inbox")["KeyCount"] == 0
        shop.create_bucket(Bucket="shop-only")
        assert "shop-only" not in [b["Name"] for b in blog.list_buckets()["Buckets"]]
        assert code_of(blog.put_object, Bucket="shop-only", Key="x", Body=b"x") == "NoSuchBucket"
        assert code_of(blog.delete_bucket, Bucket="shop-only") == "NoSuchBucket"

    await blocking(work)


async def test_the_role_and_the_secret_are_checked(server: Server) -> None:
    viewer = s3(server, "viewer")
    wrong = s3(server, "deployer", secret="0" * 64)
    stranger = boto3.client(
        "s3", endpoint_url=f"{server.url}/-/aws", region_name="local", aws_access_key_id="AKIANOBODY",
        aws_secret_access_key="x" * 40, config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip

    def work() -> None:
        assert viewer.list_objects_v2(Bucket="inbox")["Name"] == "inbox"  # a viewer reads
        assert code_of(viewer.put_object, Bucket="inbox", Key="v", Body=b"x") == "AccessDenied"
        assert code_of(wrong.list_buckets) == "SignatureDoesNotMatch"
        assert code_of(wrong.put_object, Bucket="inbox", Key="w", Body=b"x") == "SignatureDoesNotMatch"
        assert code_of(stranger.list_buckets) == "InvalidAccessKeyId"

    await blocking(work)


def curl(*args: str) -> tuple[int, bytes]:
    done = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, check=True)
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


async def test_presigned_urls_work_with_plain_curl(server: Server) -> None:
    shop = s3(server, "deployer")
    put_url = shop.generate_presigned_url(
        "put_object", Params={"Bucket": "outbox", "Key": "by curl.txt"}, ExpiresIn=300
    )
    status, _ = await asyncio.to_thread(curl, "-X", "PUT", "--data-binary", "sent by curl", put_url)
    assert status == 200
    get_url = shop.generate_presigned_url(
        "get_object", Params={"Bucket": "outbox", "Key": "by curl.txt"}, ExpiresIn=300
    )
    assert await asyncio.to_thread(curl, get_url) == (200, b"sent by curl")
    tampered = get_url.replace("by%20curl.txt", "other.txt")
    status, body = await asyncio.to_thread(curl, tampered)
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body


async def test_a_signed_streaming_body_is_checked_chunk_by_chunk(server: Server) -> None:
    key = server.keys["deployer"]
    secret = signing_secret(secret_access_key(key))
    now = datetime.datetime.now(datetime.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = CredentialScope(key_id(key), amz_date[:8], "local", "s3")
    chunks = [b"a" * 70_000, b"b" * 1000]
    host = server.url.split("//", 1)[1]
    path = "/-/aws/outbox/streamed.bin"

    def request(tamper: bool) -> httpx.Response:
        headers = {
            "host": host,
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "x-amz-date": amz_date,
            "x-amz-decoded-content-length": str(sum(map(len, chunks))),
            "content-encoding": "aws-chunked",
        }
        signed = sorted(headers)
        canonical = "\n".join(
            ["PUT", canonical_uri(path), "", "".join(f"{h}:{headers[h]}\n" for h in signed), ";".join(signed),
             headers["x-amz-content-sha256"]]
        )  # fmt: skip
        seed = signature(secret, scope, string_to_sign(amz_date, scope, canonical))
        body, previous = b"", seed
        for chunk in [*chunks, b""]:
            to_sign = "\n".join(
                ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, str(scope), previous, EMPTY_SHA256,
                 hashlib.sha256(chunk).hexdigest()]
            )  # fmt: skip
            previous = signature(secret, scope, to_sign)
            sent = chunk.replace(b"b", b"c") if tamper else chunk
            body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
        authorization = (
            f"AWS4-HMAC-SHA256 Credential={scope.access_key_id}/{scope}, SignedHeaders={';'.join(signed)},"
            f" Signature={seed}"
        )
        return httpx.put(f"{server.url}{path}", content=body, headers={**headers, "authorization": authorization})

    refused = await asyncio.to_thread(request, True)
    assert refused.status_code == 403
    assert b"SignatureDoesNotMatch" in refused.content
    accepted = await asyncio.to_thread(request, False)
    assert accepted.status_code == 200, accepted.text
    got = await blocking(s3(server, "viewer").get_object, Bucket="outbox", Key="streamed.bin")
    assert got["Body"].read() == b"".join(chunks)


async def test_a_function_uses_boto3_unchanged(server: Server) -> None:
    shop = s3(server, "deployer")
    await blocking(shop.put_object, Bucket="inbox", Key="note one.txt", Body=b"hello")

    found: list[bytes] = []

    async def copied() -> bool:
        try:
            found.append(await blocking(read_all, shop, "outbox", "note one.txt"))
        except ClientError:
            return False
        return True

    assert await eventually(copied, 60)
    assert found == [b"HELLO"]


def read_all(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
