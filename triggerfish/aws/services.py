"""The services the AWS endpoint serves, in one tuple: a new service joins here."""

from __future__ import annotations

from triggerfish.aws import dynamodb, eventbridge, lambda_api, sns, sqs, sqs_moves, sqs_query, sqs_send, sqs_tags
from triggerfish.aws.endpoint import Service

SQS = Service(
    name="sqs",
    target_prefix="AmazonSQS",
    protocol="json1.0",
    query_compatible=True,
    xml_namespace=sqs_query.NAMESPACE,
    from_query=sqs_query.from_query,
    to_xml=sqs_query.to_xml,
    operations={**sqs.OPERATIONS, **sqs_send.OPERATIONS, **sqs_moves.OPERATIONS, **sqs_tags.OPERATIONS},
)
SERVICES: tuple[Service, ...] = (SQS, eventbridge.SERVICE, sns.SERVICE, lambda_api.SERVICE, dynamodb.SERVICE)
