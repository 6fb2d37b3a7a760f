"""Lambda's execution environment: variables at import, a private /tmp kept while warm, Max Memory Used, boto3."""

import asyncio
from pathlib import Path

from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeRequest

Path("thumbs.py").write_text("""
import os

import boto3
from triggerfish import App

app = App("media")
REGION = os.environ["AWS_REGION"]  # read at import, as ported modules do
s3 = boto3.client("s3")  # built at import and reused while warm; its region comes from the environment


@app.function(memory_mb=256, ephemeral_storage=1024)
def thumbnail(event, context):
    seen = os.path.exists("/tmp/cache.bin")  # this worker's own /tmp: kept between its warm invocations
    with open("/tmp/cache.bin", "wb") as f:
        f.write(b"x" * 1024)
    return {
        "region": REGION,
        "client_region": s3.meta.region_name,
        "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "cached": seen,
    }
""")


async def main() -> None:
    runner = await ProcessRunner.start("thumbs.py", work_dir=Path(".triggerfish"))
    try:
        cold = await runner.run(InvokeRequest(request_id="r-1", function="thumbnail", event={}))
        warm = await runner.run(InvokeRequest(request_id="r-2", function="thumbnail", event={}))
    finally:
        await runner.close()

    assert cold.result["region"] == cold.result["client_region"] == "local"
    assert cold.result["function"] == "media-thumbnail"  # the Lambda name: <app>-<function>
    assert cold.result["arn"] == "arn:aws:lambda:local:000000000000:function:media-thumbnail:1"
    assert cold.result["memory"] == "256"  # a string, as on Lambda
    assert (cold.result["cached"], warm.result["cached"]) == (False, True)
    print("Max Memory Used:", warm.max_memory_used_mb, "MB of", 256)


asyncio.run(main())
