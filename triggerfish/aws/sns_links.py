"""The links SNS messages carry, served without credentials as SNS serves them: `/-/aws/sns/<app>/...`.

- `GET .../SimpleNotificationService-<digest>.pem`: the certificate a receiver verifies signatures with;
- `GET .../unsubscribe?SubscriptionArn=...&Token=...`: the `UnsubscribeURL`; the token (an HMAC of the
  subscription's ARN under the app's signing key) is what makes it work for that subscription only.

Answers are the query protocol's (XML), as SNS answers its own links.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

from triggerfish.aws.protocol import Answer, AwsError, xml_answer
from triggerfish.aws.sns_signature import LINKS_PATH, UNSUBSCRIBE

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"


def is_link(path_below_endpoint: str) -> bool:
    return path_below_endpoint.startswith(LINKS_PATH + "/")


async def answer_link(
    platform_for: Callable[[str | None], Platform | None], method: str, path: str, query: str, rid: str
) -> Answer:
    """Serve one link (`path` below the endpoint's); AwsError for anything else."""
    app, _, leaf = path[len(LINKS_PATH) + 1 :].partition("/")
    platform = platform_for(unquote(app)) if app else None
    if method != "GET" or platform is None or platform.topics.deliverer.signing is None or not leaf:
        raise AwsError("NotFound", f"no SNS link {path!r} here: links are GET {LINKS_PATH}/<app>/...", status=404)
    signing = platform.topics.deliverer.signing
    await signing.ready()
    key = signing.key
    if leaf == key.certificate_file:
        return Answer(200, key.certificate_pem, {"content-type": "application/x-pem-file", "x-amzn-requestid": rid})
    if leaf != UNSUBSCRIBE:
        raise AwsError("NotFound", f"no SNS link {leaf!r} for app {app!r}", status=404)
    params = dict(parse_qsl(query))
    arn, token = params.get("SubscriptionArn", ""), params.get("Token", "")
    if not arn or token != key.link_token(arn):
        raise AwsError(
            "AuthorizationError",
            "the UnsubscribeURL's SubscriptionArn and Token do not match: use the link as a message carried it",
            status=403,
        )
    try:
        removed = await platform.topics.unsubscribe(arn)
    except ValueError as exc:  # a subscription the app's code declares: it changes with the code
        raise AwsError("InvalidParameter", f"Invalid parameter: {exc}") from None
    if removed:
        await platform.changed("subscriptions")
    # As SNS: unsubscribing twice succeeds (the link may be followed again).
    return xml_answer("Unsubscribe", {}, rid, NAMESPACE)
