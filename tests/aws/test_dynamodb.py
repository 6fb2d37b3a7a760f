"""DynamoDB through `/-/aws` with boto3's client and resource, on a real platform over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking, client
from tests.backends import platform_store
from tests.server.conftest import Served, serve_app

APP = """
import json
import triggerfish

app = triggerfish.App("shop")


@app.on_change("orders", batch_size=10, starting_position="TRIM_HORIZON")
def on_order(event, context):
    for record in event["Records"]:
        context.send("changes-seen", json.dumps(record))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    async with platform_store(request.param) as store_url:
        async for served in serve_app(tmp_path, APP, store_url=store_url):
            yield served


def resource(url: str) -> Any:
    return boto3.resource(
        "dynamodb",
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


ORDERS = {
    "TableName": "orders",
    "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "customer", "AttributeType": "S"},
        {"AttributeName": "n", "AttributeType": "N"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


async def _changes(served: Served, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 30.0
    while len(found) < count and asyncio.get_running_loop().time() < deadline:
        for message in await served.platform.store.queues.receive("changes-seen", max_messages=10, wait=0.5):
            found.append(json.loads(message.body))
            await served.platform.store.queues.ack("changes-seen", message.receipt)
    return found


async def test_the_client_makes_tables_and_writes_and_reads_items(shop: Served) -> None:
    db = client(shop.url, "dynamodb")
    made = await blocking(db.create_table, **ORDERS)
    assert made["TableDescription"]["TableStatus"] == "ACTIVE"
    assert (await blocking(db.list_tables))["TableNames"] == ["orders"]
    with pytest.raises(ClientError) as exists:
        await blocking(db.create_table, **ORDERS)
    assert exists.value.response["Error"]["Code"] == "ResourceInUseException"
    item = {"customer": {"S": "ada"}, "n": {"N": "1"}, "total": {"N": "42.5"}, "status": {"S": "NEW"}}
    await blocking(db.put_item, TableName="orders", Item=item)
    got = await blocking(db.get_item, TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}})
    assert got["Item"] == item
    updated = await blocking(
        db.update_item,
        TableName="orders",
        Key={"customer": {"S": "ada"}, "n": {"N": "1"}},
        UpdateExpression="SET #s = :paid, total = total + :tip",
        ConditionExpression="#s = :new",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":paid": {"S": "PAID"}, ":new": {"S": "NEW"}, ":tip": {"N": "7.5"}},
        ReturnValues="UPDATED_NEW",
    )
    assert updated["Attributes"] == {"status": {"S": "PAID"}, "total": {"N": "50"}}
    with pytest.raises(ClientError) as failed:
        await blocking(
            db.put_item, TableName="orders", Item=item, ConditionExpression="attribute_not_exists(customer)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )  # fmt: skip
    assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert failed.value.response["Item"]["status"] == {"S": "PAID"}
    with pytest.raises(ClientError) as bad:
        await blocking(db.get_item, TableName="orders", Key={"customer": {"S": "ada"}})
    assert bad.value.response["Error"]["Code"] == "ValidationException"
    assert "does not match the schema" in bad.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        await blocking(db.get_item, TableName="nope", Key={"id": {"S": "x"}})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as unused:
        await blocking(
            db.get_item, TableName="orders", Key={"customer": {"S": "ada"}, "n": {"N": "1"}},
            ExpressionAttributeNames={"#x": "x"},
        )  # fmt: skip
    assert "unused in expressions: keys: {#x}" in unused.value.response["Error"]["Message"]


async def test_queries_scans_batches_and_transactions(shop: Served) -> None:
    db = client(shop.url, "dynamodb")
    await blocking(db.create_table, **ORDERS)
    await blocking(
        db.batch_write_item,
        RequestItems={"orders": [{"PutRequest": {"Item": {"customer": {"S": "ada"}, "n": {"N": str(n)}}}} for n in
                                 (3, 1, 20, 2, 10)]},
    )  # fmt: skip
    page = await blocking(
        db.query, TableName="orders", KeyConditionExpression="customer = :c AND n > :one",
        ExpressionAttributeValues={":c": {"S": "ada"}, ":one": {"N": "1"}}, Limit=2, ScanIndexForward=False,
    )  # fmt: skip
    assert [i["n"]["N"] for i in page["Items"]] == ["20", "10"]
    assert page["LastEvaluatedKey"] == {"customer": {"S": "ada"}, "n": {"N": "10"}}
    counted = await blocking(db.scan, TableName="orders", Select="COUNT")
    assert counted["Count"] == 5
    assert "Items" not in counted
    with pytest.raises(ClientError) as cancelled:
        await blocking(
            db.transact_write_items,
            TransactItems=[
                {"Put": {"TableName": "orders", "Item": {"customer": {"S": "bob"}, "n": {"N": "1"}}}},
                {"ConditionCheck": {"TableName": "orders", "Key": {"customer": {"S": "ada"}, "n": {"N": "1"}},
                                    "ConditionExpression": "attribute_not_exists(n)"}},
            ],
        )  # fmt: skip
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    found = await blocking(
        db.batch_get_item, RequestItems={"orders": {"Keys": [{"customer": {"S": "bob"}, "n": {"N": "1"}}]}}
    )
    assert found["Responses"]["orders"] == []


async def test_the_resource_with_key_and_attr_conditions(shop: Served) -> None:
    dynamodb = resource(shop.url)
    table = await blocking(dynamodb.create_table, **ORDERS)
    for n in range(5):
        await blocking(table.put_item, Item={"customer": "ada", "n": n, "price": Decimal("9.99"), "tags": {"x"}})
    got = await blocking(table.query, KeyConditionExpression=Key("customer").eq("ada") & Key("n").between(1, 3),
                         FilterExpression=Attr("price").gt(5) & Attr("tags").contains("x"))  # fmt: skip
    assert [item["n"] for item in got["Items"]] == [1, 2, 3]
    assert got["Items"][0]["price"] == Decimal("9.99")
    assert got["Items"][0]["tags"] == {"x"}

    def remove_two() -> None:
        with table.batch_writer() as batch:  # BatchWriteItem, flushed on exit
            for n in range(2):
                batch.delete_item(Key={"customer": "ada", "n": n})

    await blocking(remove_two)
    left = await blocking(table.scan)
    assert sorted(item["n"] for item in left["Items"]) == [2, 3, 4]


async def test_writes_reach_the_on_change_function_with_the_dynamodb_streams_record(shop: Served) -> None:
    db = client(shop.url, "dynamodb")
    await blocking(db.create_table, **ORDERS)
    key = {"customer": {"S": "ada"}, "n": {"N": "1"}}
    await blocking(db.put_item, TableName="orders", Item={**key, "status": {"S": "NEW"}})
    await blocking(
        db.update_item, TableName="orders", Key=key, UpdateExpression="SET #s = :p",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":p": {"S": "PAID"}},
    )  # fmt: skip
    await blocking(db.delete_item, TableName="orders", Key=key)
    records = await _changes(shop, 3)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    modify = records[1]
    assert modify["eventSource"] == "aws:dynamodb"
    assert modify["eventVersion"] == "1.1"
    assert modify["dynamodb"]["Keys"] == key
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "NEW"}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": "PAID"}
    assert modify["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert modify["eventSourceARN"].startswith("arn:aws:dynamodb:local:000000000000:table/orders/stream/")
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(sequence)
    assert "NewImage" not in records[2]["dynamodb"]


@pytest.mark.slow
@pytest.mark.timeout(240)  # every `aws` is an interpreter start of its own
def test_the_aws_cli_makes_a_table_and_writes_reads_and_queries(tmp_path: Path) -> None:
    import textwrap

    from tests.aws.test_aws_cli import aws
    from tests.server.devserver import DevServer

    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    dev = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path)
    try:
        dev.start()
        made = aws(
            dev, "dynamodb", "create-table", "--table-name", "orders",
            "--attribute-definitions", "AttributeName=customer,AttributeType=S", "AttributeName=n,AttributeType=N",
            "--key-schema", "AttributeName=customer,KeyType=HASH", "AttributeName=n,KeyType=RANGE",
            "--billing-mode", "PAY_PER_REQUEST",
        )  # fmt: skip
        assert made["TableDescription"]["TableStatus"] == "ACTIVE"
        aws(dev, "dynamodb", "wait", "table-exists", "--table-name", "orders")
        item = json.dumps({"customer": {"S": "ada"}, "n": {"N": "1"}, "total": {"N": "9.5"}})
        aws(dev, "dynamodb", "put-item", "--table-name", "orders", "--item", item)
        got = aws(dev, "dynamodb", "get-item", "--table-name", "orders",
                  "--key", json.dumps({"customer": {"S": "ada"}, "n": {"N": "1"}}))  # fmt: skip
        assert got["Item"]["total"] == {"N": "9.5"}
        found = aws(
            dev, "dynamodb", "query", "--table-name", "orders", "--key-condition-expression", "customer = :c",
            "--expression-attribute-values", json.dumps({":c": {"S": "ada"}}),
        )  # fmt: skip
        assert found["Count"] == 1
    finally:
        dev.stop()
