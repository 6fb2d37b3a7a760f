"""The account and region Triggerfish names wherever AWS would name its own, and the ARNs built from them.

ARNs (`invoked_function_arn`, queue and topic ARNs in event shapes, rule ARNs
in dead letters), the EventBridge envelope's `account` and `region`, and a
worker's `AWS_REGION` all use these, so Lambda code that parses them sees one
consistent, obviously local identity. Every ARN is built here and nowhere else.

    >>> function_arn("shop", "ship", "3")
    'arn:aws:lambda:local:000000000000:function:shop-ship:3'

This module is imported by every worker: it stays free of imports.
"""

from __future__ import annotations

ACCOUNT_ID = "000000000000"
REGION = "local"


def function_name(app: str, function: str) -> str:
    """The Lambda function name of an app's function: `<app>-<function>`."""
    return f"{app}-{function}"


def function_arn(app: str, function: str, version: str | None = None) -> str:
    """A function's ARN, qualified with `version` (a number or `$LATEST`) when given."""
    return named_function_arn(function_name(app, function), version)


def named_function_arn(name: str, version: str | None = None) -> str:
    """The ARN of the Lambda function called `name` (see `function_name`), qualified with `version` when given."""
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
    return arn if version is None else f"{arn}:{version}"


def durable_execution_arn(name: str, execution_id: str) -> str:
    """The ARN of a durable execution of the Lambda function `name` (`<app>-<function>`), as Lambda names one:
    `<function ARN>:$LATEST/durable-execution/<name>/<id>`; the name and the id are both the workflow's id."""
    return f"{named_function_arn(name, '$LATEST')}/durable-execution/{execution_id}/{execution_id}"


def durable_execution_id(arn: str) -> str:
    """The workflow id a durable execution's ARN names (its last segment); ValueError when it is not one."""
    head, marker, tail = arn.partition("/durable-execution/")
    parts = tail.split("/")
    if not marker or ":function:" not in head or len(parts) != 2 or not parts[1]:
        raise ValueError(f"{arn[:200]!r} is not a durable execution's ARN (<function ARN>/durable-execution/NAME/ID)")
    return parts[1]


def log_group_name(app: str, function: str) -> str:
    """`/aws/lambda/<app>-<function>`, as Lambda names a function's log group."""
    return f"/aws/lambda/{function_name(app, function)}"


def sqs_queue_arn(queue: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:sqs:{region}:{account}:{queue}"


def sns_topic_arn(topic: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:sns:{region}:{account}:{topic}"


def events_rule_arn(rule: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:events:{region}:{account}:rule/{rule}"


def event_bus_arn(bus: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:events:{region}:{account}:event-bus/{bus}"


def bus_rule_arn(bus: str, rule_id: str) -> str:
    """The EventBridge-style ARN of a rule on a bus (the default bus's rules carry no bus in their path)."""
    return events_rule_arn(rule_id if bus == "default" else f"{bus}/{rule_id}")


def dynamodb_stream_arn(
    table: str, *, label: str = "1970-01-01T00:00:00.000", region: str = REGION, account: str = ACCOUNT_ID
) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}/stream/{label}"


def mqtt_topic_filter_arn(topic_filter: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """An MQTT subscription's ARN, as AWS IoT names topic filters in its policies."""
    return f"arn:aws:iot:{region}:{account}:topicfilter/{topic_filter}"


def amqp_queue_arn(queue: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """An AMQP queue's ARN in records (Amazon MQ names brokers, not queues: the queue is what a trigger reads)."""
    return f"arn:aws:mq:{region}:{account}:queue/{queue}"


def nats_subject_arn(subject: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """A JetStream subject's ARN in records (AWS has no NATS service: named as the others are)."""
    return f"arn:aws:nats:{region}:{account}:subject/{subject}"


def redis_stream_arn(stream: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """A Redis stream's ARN in records."""
    return f"arn:aws:redis:{region}:{account}:stream/{stream}"


def kinesis_stream_arn(stream: str, *, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """A built-in stream's ARN: Kinesis's, as records of the stream it stands in for carry."""
    return f"arn:aws:kinesis:{region}:{account}:stream/{stream}"


def s3_bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"
