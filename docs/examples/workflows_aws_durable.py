import asyncio
import json
import socket
import tempfile
import time
from pathlib import Path

import boto3

from triggerfish.aws.credentials import function_environment
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

# A handler written for AWS Lambda durable functions, unchanged: only `durable=True` is Triggerfish's.
APP = """
import json

import triggerfish
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration

app = triggerfish.App("shop")


@app.function(durable=True)
@durable_execution
def order(event, context: DurableContext):
    stock = context.step(lambda _: {"reserved": event["items"]}, name="reserve")
    context.wait(Duration.from_seconds(1), name="cool-off")  # no worker held while it waits
    approval = context.create_callback(name="approve", config=CallbackConfig(timeout=Duration.from_hours(1)))
    approved = json.loads(approval.result())  # the run ends here; an answer resumes it (its text, as on AWS)
    return {**stock, "by": approved["by"]}
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        url = f"http://127.0.0.1:{port}"
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        platform = Platform(str(app_file), data_dir=Path(directory) / ".triggerfish")
        # What `triggerfish dev` and `serve` give every function: the SDK's boto3 reaches /-/aws with these.
        platform.environment = function_environment(url, "test", "test")
        async with platform, GatewayServer(platform_asgi(platform), port=port):
            # boto3 as an operator uses it, pointed at the platform's AWS endpoint.
            lam = boto3.client(
                "lambda", endpoint_url=f"{url}/-/aws", region_name="local",
                aws_access_key_id="test", aws_secret_access_key="test",
            )  # fmt: skip

            def call(method: str, **kwargs: object) -> dict:
                return getattr(lam, method)(**kwargs)

            async def aws(method: str, **kwargs: object) -> dict:
                return await asyncio.to_thread(call, method, **kwargs)

            await aws("invoke", FunctionName="shop-order", InvocationType="Event", Payload=json.dumps({"items": 2}))
            deadline = time.monotonic() + 30
            while not (listed := await aws("list_durable_executions_by_function", FunctionName="shop-order"))[
                "DurableExecutions"
            ]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            arn = listed["DurableExecutions"][0]["DurableExecutionArn"]

            # The callback's id is in the execution's history; the answer is the SDK's serialized result.
            def callback_ids(history: dict) -> list[str]:
                started = [e for e in history["Events"] if e["EventType"] == "CallbackStarted"]
                return [e["CallbackStartedDetails"]["CallbackId"] for e in started]

            while not (ids := callback_ids(await aws("get_durable_execution_history", DurableExecutionArn=arn))):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await aws("send_durable_execution_callback_success", CallbackId=ids[0], Result=json.dumps({"by": "ann"}))

            while (execution := await aws("get_durable_execution", DurableExecutionArn=arn))["Status"] == "RUNNING":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert execution["Status"] == "SUCCEEDED", execution
            assert json.loads(execution["Result"]) == {"reserved": 2, "by": "ann"}

            # The same execution is a workflow of the one engine: the control API and the CLI list it too.
            record = await platform.workflows.describe(execution["DurableExecutionName"])
            assert [(op["kind"], op["name"], op["status"]) for op in record["ops"]] == [
                ("step", "reserve", "SUCCEEDED"),
                ("sleep", "cool-off", "SUCCEEDED"),
                ("callback", "approve", "SUCCEEDED"),
            ]


asyncio.run(main())
