"""`context.objects`: a handler keeps small objects without boto3, and its put fires `@app.on_object`."""

import asyncio
from typing import Any

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("reports")


@app.http("POST", "/reports/{name}")
def save(event: dict[str, Any], context: Any) -> dict[str, str]:
    name = event["pathParameters"]["name"]
    etag = context.objects.put("reports", f"daily/{name}.csv", event["body"], content_type="text/csv")
    return {"etag": etag}


@app.on_object("reports", prefix="daily/", suffix=".csv")
def summarize(event: dict[str, Any], context: Any) -> None:
    for record in event["Records"]:
        key = record["s3"]["object"]["key"]
        rows = context.objects.get("reports", key).decode().splitlines()
        context.objects.put("reports", key.replace("daily/", "summaries/"), f"{len(rows)} rows")


async def main() -> None:
    async with TestPlatform(app) as platform:
        csv = {"content-type": "text/csv"}
        answer = await platform.request("POST", "/reports/monday", content="a,1\nb,2\nc,3\n", headers=csv)
        assert answer.status_code == 200
        await platform.drain()  # the put's notification runs `summarize`
        _, summary = await platform.platform.objects.open("reports", "summaries/monday.csv")
        assert await summary.read_all() == b"3 rows"


asyncio.run(main())
