"""The services the AWS endpoint serves, in one tuple: a new service joins here."""

from __future__ import annotations

import dataclasses

from triggerfish.aws import eventbridge, lambda_api, sns, sqs, sqs_moves
from triggerfish.aws.endpoint import Service

_SQS = dataclasses.replace(sqs.SERVICE, operations={**sqs.SERVICE.operations, **sqs_moves.OPERATIONS})
SERVICES: tuple[Service, ...] = (_SQS, eventbridge.SERVICE, sns.SERVICE, lambda_api.SERVICE)
