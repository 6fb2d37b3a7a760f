"""The links SNS messages carry, served without credentials as SNS serves them: `/-/aws/sns/<app>/...`.

- `GET .../SimpleNotificationService-<digest>.pem`: the certificate a receiver verifies signatures with;
- `GET .../unsubscribe?SubscriptionArn=...&Token=...`: the `UnsubscribeURL`; the token (an HMAC of the
  subscription's ARN under the app's signing key) is what makes it work for that subscription only;
- `GET .../confirm?TopicArn=...&Token=...`: the `SubscribeURL` of a SubscriptionConfirmation, which confirms
  an http(s) subscription as ConfirmSubscription does (its token is another HMAC of the subscription's ARN).

Answers are the query protocol's (XML), as SNS answers its own links.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

from triggerfish.aws.protocol import Answer, AwsError, xml_answer
from triggerfish.aws.sns_signature import CONFIRM, LINKS_PATH, UNSUBSCRIBE

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform
    from triggerfish.triggers.subscriptions import Subscription

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
    params = dict(parse_qsl(query))
    if leaf == CONFIRM:
        return await _confirm(platform, params, rid)
    if leaf != UNSUBSCRIBE:
        raise AwsError("NotFound", f"no SNS link {leaf!r} for app {app!r}", status=404)
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


async def _confirm(platform: Platform, params: dict[str, str], rid: str) -> Answer:
    topic = params.get("TopicArn", "").rsplit(":", 1)[-1]
    token = params.get("Token", "")
    if not topic or not token:
        raise AwsError("InvalidParameter", "Invalid parameter: the SubscribeURL needs its TopicArn and Token")
    subscription = await confirm(platform, topic, token)
    return xml_answer("ConfirmSubscription", {"SubscriptionArn": subscription.arn}, rid, NAMESPACE)


async def confirm(platform: Platform, topic: str, token: str) -> Subscription:
    """Confirm the pending http(s) subscription of `topic` whose confirmation carried `token` (again: no change).

    The SubscribeURL and SNS's ConfirmSubscription both come here.
    """
    signing = platform.topics.deliverer.signing
    if signing is not None:
        await signing.ready()
        for subscription in await platform.topics.subscriptions(topic):
            if subscription.kind == "webhook" and hmac.compare_digest(
                signing.key.confirmation_token(subscription.arn), token
            ):
                if subscription.pending:
                    confirmed = dataclasses.replace(subscription, pending=False, confirmed_at=platform.topics.clock())
                    subscription = await platform.topics.change(confirmed)
                    await platform.changed("subscriptions")
                return subscription
    raise AwsError("InvalidParameter", "Invalid parameter: Invalid token")
