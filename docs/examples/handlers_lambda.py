"""A handler written for AWS Lambda runs unchanged: same event, same context attributes."""

import json
import time

from triggerfish.runtime.context import Context
from triggerfish.runtime.handler import run_handler


def lambda_handler(event, context):
    body = json.loads(event["body"])
    print("Lambda function ARN:", context.invoked_function_arn)
    print("Lambda Request ID:", context.aws_request_id)
    print("Lambda time remaining in MS:", context.get_remaining_time_in_millis())
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": f"Hello {body['name']}"}),
    }


# The runtime builds the context for every invocation; here we build one by hand, as it does.
context = Context(
    request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    function_name="shop-hello",  # the Lambda name: <app>-<function>
    function="hello",
    function_version="3",
    memory_limit_in_mb=256,
    deadline=time.time() + 3.0,
    app_name="shop",
)
assert context.invoked_function_arn == "arn:aws:lambda:local:000000000000:function:shop-hello:3"
assert context.log_group_name == "/aws/lambda/shop-hello"
assert context.memory_limit_in_mb == "256"
assert context.identity.cognito_identity_id is None
assert context.client_context is None

result = run_handler(lambda_handler, {"body": '{"name": "Ada"}'}, context)
assert result.ok
response = json.loads(result.result_json)
assert response["statusCode"] == 200
assert json.loads(response["body"]) == {"message": "Hello Ada"}
