"""boto3's DynamoDB client and resource, unchanged but for the endpoint URL, against the app's tables."""

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.function
def hello(event, context):
    return "hello"
"""


def use_tables(url: str) -> None:
    options = {
        "endpoint_url": f"{url}/-/aws",
        "region_name": "local",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    dynamodb = boto3.resource("dynamodb", **options)
    table = dynamodb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "customer", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    with table.batch_writer() as batch:
        for n in range(1, 6):
            batch.put_item(Item={"customer": "ada", "n": n, "total": Decimal("9.5") * n, "status": "NEW"})
    found = table.query(
        KeyConditionExpression=Key("customer").eq("ada") & Key("n").between(2, 4),
        FilterExpression=Attr("total").gte(25),
    )
    assert [item["n"] for item in found["Items"]] == [3, 4]

    client = boto3.client("dynamodb", **options)
    refused = None
    try:
        client.update_item(
            TableName="orders",
            Key={"customer": {"S": "ada"}, "n": {"N": "1"}},
            UpdateExpression="SET #s = :paid",
            ConditionExpression="#s = :shipped",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":paid": {"S": "PAID"}, ":shipped": {"S": "SHIPPED"}},
        )
    except ClientError as error:
        refused = error.response["Error"]["Code"]
    assert refused == "ConditionalCheckFailedException"  # the order is NEW, not SHIPPED: nothing changed


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with (
            Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
        ):
            # boto3 blocks; the server answering it runs on this event loop, so the client runs in a thread.
            await asyncio.to_thread(use_tables, server.url)


asyncio.run(main())
