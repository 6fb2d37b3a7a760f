"""The account and region Triggerfish names wherever AWS would name its own.

ARNs (`invoked_function_arn`, queue and topic ARNs in event shapes), the
EventBridge envelope's `account` and `region`, and a worker's `AWS_REGION`
all use these, so Lambda code that parses them sees one consistent,
obviously local identity.
"""

from __future__ import annotations

ACCOUNT_ID = "000000000000"
REGION = "local"
