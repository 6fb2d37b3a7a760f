"""The services the AWS endpoint serves, in one tuple: a new service joins here."""

from __future__ import annotations

from triggerfish.aws import eventbridge, lambda_api, sns, sqs
from triggerfish.aws.endpoint import Service

SERVICES: tuple[Service, ...] = (sqs.SERVICE, eventbridge.SERVICE, sns.SERVICE, lambda_api.SERVICE)
