"""`/-/aws` under `triggerfish serve`: app keys are AWS credentials, checked by SigV4, with their role and app."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking, client
from triggerfish.aws.credentials import secret_access_key
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

APP = """
import json
import os

import boto3
import triggerfish

app = triggerfish.App("{name}")
CREDENTIALS = os.environ.get("AWS_ACCESS_KEY_ID")


@app.on_queue("orders")
def take(event, context):
    for record in event["Records"]:
        context.send("taken", record["body"])


@app.http("POST", "/forward")
def forward(event, context):
    # A producer written for AWS: nothing but the environment says where SQS is and who is asking.
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="orders")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=event["body"])
    return {{"credentials": CREDENTIALS}}
"""


@dataclass
class Server:
    host: Host
    url: str
    keys: dict[str, str]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    tmp_path = tmp_path_factory.mktemp("aws-serve")
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        async with GatewayServer(HostASGI(host), port=0) as served:
            await host.advertise(served.url)  # as `serve` does once its port is known
            for name in ("shop", "blog"):
                directory = tmp_path / name
                directory.mkdir()
                (directory / "app.py").write_text(textwrap.dedent(APP).format(name=name))
                bundle = pack(directory)
                host.bundles.put(name, bundle.sha256, bundle.data)
                await host.deploy(name, bundle.sha256)
            keys = {"admin": host.first_admin_key or ""}
            for role in ("publisher", "viewer", "deployer"):
                keys[role], _ = await host.keys.create(f"shop {role}", role, "shop")
            keys["blog"], _ = await host.keys.create("blog deployer", "deployer", "blog")
            yield Server(host, served.url, keys)
    finally:
        await host.stop()


pytestmark = pytest.mark.asyncio(loop_scope="module")


def aws(server: Server, who: str, service: str = "sqs", **options: Any) -> Any:
    key = server.keys[who]
    return client(
        server.url, service, aws_access_key_id=key.split("_")[0] + "_" + key.split("_")[1],
        aws_secret_access_key=options.pop("secret", secret_access_key(key)), **options,
    )  # fmt: skip


async def _taken(server: Server, app: str, count: int) -> list[str]:
    queues = server.host.apps[app].store.queues
    found: list[str] = []
    async with asyncio.timeout(20):
        while len(found) < count:
            for message in await queues.receive("taken", max_messages=10, wait=0.5):
                found.append(message.body.decode())
                await queues.ack("taken", message.receipt)
    return found


async def test_a_new_app_key_comes_with_aws_credentials(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        headers = {"authorization": f"Bearer {server.keys['admin']}"}
        made = (
            await http.post("/-/api/v1/keys", json={"name": "ci", "role": "publisher", "app": "shop"}, headers=headers)
        ).json()
        admin = (await http.post("/-/api/v1/keys", json={"name": "root", "role": "admin"}, headers=headers)).json()
    assert made["aws_access_key_id"] == made["prefix"]
    assert made["aws_secret_access_key"] == secret_access_key(made["key"])
    assert "aws_access_key_id" not in admin  # an admin key acts on every app; an AWS request names none
    sqs = client(
        server.url,
        "sqs",
        aws_access_key_id=made["aws_access_key_id"],
        aws_secret_access_key=made["aws_secret_access_key"],
    )
    url = (await blocking(sqs.get_queue_url, QueueName="orders"))["QueueUrl"]
    await blocking(sqs.send_message, QueueUrl=url, MessageBody="lamp")
    assert await _taken(server, "shop", 1) == ["lamp"]


async def test_a_key_reaches_its_own_app_only(server: Server) -> None:
    await blocking(aws(server, "blog").create_queue, QueueName="blog-only")
    shop = aws(server, "deployer")
    urls = (await blocking(shop.list_queues)).get("QueueUrls", [])
    assert "blog-only" not in {u.rsplit("/", 1)[1] for u in urls}
    with pytest.raises(ClientError) as caught:
        await blocking(shop.get_queue_url, QueueName="blog-only")
    assert caught.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"


async def test_the_role_of_the_key_applies(server: Server) -> None:
    viewer = aws(server, "viewer")
    url = (await blocking(viewer.get_queue_url, QueueName="orders"))["QueueUrl"]
    with pytest.raises(ClientError) as caught:
        await blocking(viewer.send_message, QueueUrl=url, MessageBody="x")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert "'publish' action" in caught.value.response["Error"]["Message"]
    # Nothing was sent.
    assert (await server.host.apps["shop"].store.queues.stats("orders")).depth == 0


@pytest.mark.parametrize(
    ("who", "options", "code", "status"),
    [
        ("publisher", {"secret": "wrong"}, "SignatureDoesNotMatch", 403),
        ("admin", {}, "InvalidClientTokenId", 403),
    ],
)
async def test_bad_credentials_are_refused(
    server: Server, who: str, options: dict[str, Any], code: str, status: int
) -> None:
    with pytest.raises(ClientError) as caught:
        await blocking(aws(server, who, **options).list_queues)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


async def test_a_revoked_key_stops_signing_at_once(server: Server) -> None:
    server.keys["doomed"], _ = await server.host.keys.create("doomed", "viewer", "shop")
    sqs = aws(server, "doomed")
    await blocking(sqs.list_queues)
    await server.host.keys.revoke(server.keys["doomed"])
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.list_queues)
    assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"


async def test_functions_get_credentials_of_their_own_app(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.post("/shop/forward", content="from a function", headers={"content-type": "text/plain"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"credentials": "tffn_shop"}
    assert await _taken(server, "shop", 1) == ["from a function"]
    # The function's credentials are the shop's: signed for another app's functions with them fails.
    access, secret = server.host.aws_credentials.for_functions("shop")
    forged = client(server.url, "sqs", aws_access_key_id="tffn_blog", aws_secret_access_key=secret)
    with pytest.raises(ClientError) as caught:
        await blocking(forged.list_queues)
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert access == "tffn_shop"
    json.dumps(answer.json())


async def test_lambda_qualifiers_follow_the_apps_versions_and_aliases(server: Server, tmp_path_factory: Any) -> None:
    from triggerfish.server.registry import Alias

    directory = tmp_path_factory.mktemp("blog-v2")
    (directory / "app.py").write_text(textwrap.dedent(APP).format(name="blog") + "\n# version 2\n")
    bundle = pack(directory)
    server.host.bundles.put("blog", bundle.sha256, bundle.data)
    await server.host.deploy("blog", bundle.sha256)
    # Version 2 is live with version 1 as its canary; `stable` names version 1.
    await server.host.set_alias("blog", Alias("live", 2, {1: 0.01}))
    await server.host.set_alias("blog", Alias("stable", 1))
    lam = aws(server, "blog", "lambda")
    versions = (await blocking(lam.list_versions_by_function, FunctionName="blog-take"))["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    aliases = {a["Name"]: a for a in (await blocking(lam.list_aliases, FunctionName="blog-take"))["Aliases"]}
    assert sorted(aliases) == ["live", "stable"]
    assert aliases["live"]["FunctionVersion"] == "2"
    assert aliases["live"]["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.01}}
    assert (await blocking(lam.get_alias, FunctionName="blog-take", Name="stable"))["FunctionVersion"] == "1"
    event = json.dumps({"Records": [{"body": "qualified"}]})
    for qualifier, executed in (("1", "1"), ("2", "2"), ("stable", "1")):
        answer = await blocking(lam.invoke, FunctionName="blog-take", Qualifier=qualifier, Payload=event)
        assert (answer["StatusCode"], answer["ExecutedVersion"]) == (200, executed)
    with pytest.raises(ClientError) as caught:
        await blocking(lam.invoke, FunctionName="blog-take", Qualifier="gone", Payload=event)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    await server.host.set_alias("blog", Alias("live", 2))
    with pytest.raises(ClientError) as caught:
        await blocking(lam.invoke, FunctionName="blog-take", Qualifier="stable", Payload=event)
    assert "not serving here" in caught.value.response["Error"]["Message"]
