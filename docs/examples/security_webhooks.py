"""Routes with auth=: a GitHub webhook checked by its signature, and a route that takes API keys."""

import asyncio
import hashlib
import hmac
import json

import triggerfish
from triggerfish.testing import TestPlatform

SECRET = "It's a Secret to Everybody"  # in a real app: the env value, set in triggerfish.toml or the stage

app = triggerfish.App("shop")


@app.http(
    "POST",
    "/github",
    auth=triggerfish.hmac_auth(secret_env="GITHUB_WEBHOOK_SECRET", header="X-Hub-Signature-256", scheme="github"),
    env={"GITHUB_WEBHOOK_SECRET": SECRET},
)
def on_push(event, context):
    push = json.loads(event["body"])
    return {"received": push["ref"]}


@app.http("POST", "/orders", auth="api_key")
def create_order(event, context):
    return {"statusCode": 201, "body": event["body"]}


def github_signature(body: bytes) -> str:
    """What GitHub sends: the hex HMAC-SHA256 of the body under the webhook's secret."""
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


async def main() -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    async with TestPlatform(app) as platform:
        signed = await platform.request(
            "POST",
            "/github",
            content=body,
            headers={"X-Hub-Signature-256": github_signature(body), "Content-Type": "application/json"},
        )
        assert signed.status_code == 200
        assert signed.json() == {"received": "refs/heads/main"}

        # Changed on the way: refused before any worker runs, with the reason.
        tampered = await platform.request(
            "POST", "/github", content=body + b" ", headers={"X-Hub-Signature-256": github_signature(body)}
        )
        assert tampered.status_code == 401
        print(tampered.json()["message"])
        assert tampered.json()["message"].startswith("the X-Hub-Signature-256 signature does not match the body")

        unsigned = await platform.request("POST", "/github", content=body)
        assert unsigned.status_code == 401
        assert unsigned.json()["message"].startswith("the X-Hub-Signature-256 header is missing")

        # Tests and `triggerfish dev` have no keys, so an api_key route is open there;
        # under `triggerfish serve` it takes a key of the app with the invoker, deployer or admin role.
        assert (await platform.request("POST", "/orders", json={"id": 1})).status_code == 201


asyncio.run(main())
