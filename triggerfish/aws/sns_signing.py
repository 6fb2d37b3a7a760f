"""The app's SNS signer: its key pair kept in the store, and the signature fields filled in on delivery.

    signing = SnsSigning(store.kv, links=lambda: Links(endpoint_url, "shop"))
    await signing.ready()                                 # loads the key, or makes it on first use
    signing.sign_record(record["Sns"], topic, subscription_arn)   # a Lambda record: ...Url names
    signing.sign_notification(document, topic, subscription_arn) # queues, HTTP: ...URL names

The key is made on the first delivery that needs it (one maker wins across a cluster's servers, as
ServerCredentials' root), not at start: most apps have no topics and key generation takes a while.
A message is signed once however many subscriptions it reaches (the signature covers no
subscription), and a topic's `SignatureVersion` attribute (CreateTopic / SetTopicAttributes) says 1
or 2, re-read every few seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from triggerfish._json import dumps, loads
from triggerfish.aws.sns_signature import SIGNATURE_VERSIONS, Links, SigningKey, string_to_sign
from triggerfish.names import SNS_TOPICS_NAMESPACE
from triggerfish.store import ABSENT, KeyValue

#: Where the key pair is kept (the app's key-value namespace of SNS topics, under a key no topic takes).
KEY_NAME = "signing-key"
_TOPIC_RECORD = "topic/"
_VERSION_TTL = 5.0
_CACHE = 1024


class SnsSigning:
    def __init__(
        self, kv: KeyValue, *, links: Callable[[], Links], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kv = kv
        self._links = links
        self._clock = clock
        self._key: SigningKey | None = None
        self._versions: dict[str, tuple[float, str]] = {}
        self._signatures: OrderedDict[tuple[bytes, str], str] = OrderedDict()

    @property
    def key(self) -> SigningKey:
        if self._key is None:
            raise RuntimeError("SnsSigning.ready() first")
        return self._key

    async def ready(self, topics: set[str] | frozenset[str] = frozenset()) -> None:
        """Have the key (and the signature versions of `topics`) at hand for the synchronous signing calls."""
        while self._key is None:
            found = await self._kv.get(SNS_TOPICS_NAMESPACE, KEY_NAME)
            if found is not None:
                stored = loads(found.value, where="the SNS signing key")
                self._key = SigningKey.from_pem(stored["key"].encode("ascii"), stored["cert"].encode("ascii"))
                break
            private, cert = SigningKey.generate().to_pem()
            made = dumps({"key": private.decode("ascii"), "cert": cert.decode("ascii")})
            await self._kv.put(SNS_TOPICS_NAMESPACE, KEY_NAME, made, if_version=ABSENT)
        now = self._clock()
        for topic in topics:
            cached = self._versions.get(topic)
            if cached is None or now - cached[0] > _VERSION_TTL:
                self._versions[topic] = (now, await self._version_of(topic))

    async def _version_of(self, topic: str) -> str:
        found = await self._kv.get(SNS_TOPICS_NAMESPACE, _TOPIC_RECORD + topic)
        if found is None:
            return "1"
        version = str(loads(found.value, where="SNS topic record").get("attributes", {}).get("SignatureVersion", "1"))
        return version if version in SIGNATURE_VERSIONS else "1"

    def sign_notification(self, document: dict[str, Any], topic: str, subscription_arn: str) -> None:
        """Fill `SignatureVersion`, `Signature`, `SigningCertURL`, `UnsubscribeURL` of an SNS notification."""
        version, signature, cert_url, unsubscribe = self._fields(document, topic, subscription_arn)
        document.update(
            SignatureVersion=version, Signature=signature, SigningCertURL=cert_url, UnsubscribeURL=unsubscribe
        )

    def sign_confirmation(self, document: dict[str, Any], topic: str, subscription_arn: str) -> None:
        """Fill `Token`, `SubscribeURL` and the signature fields of a SubscriptionConfirmation (`ready` first)."""
        key, links = self.key, self._links()
        token = key.confirmation_token(subscription_arn)
        document.update(Token=token, SubscribeURL=links.confirm(str(document["TopicArn"]), token))
        version = self._versions.get(topic, (0.0, "1"))[1]
        document.update(
            SignatureVersion=version, Signature=key.sign(document, version), SigningCertURL=links.certificate(key)
        )

    def sign_record(self, sns: dict[str, Any], topic: str, subscription_arn: str) -> None:
        """The same for the `Sns` part of a Lambda record, whose link names end `Url`, as Lambda spells them."""
        version, signature, cert_url, unsubscribe = self._fields(sns, topic, subscription_arn)
        sns.update(SignatureVersion=version, Signature=signature, SigningCertUrl=cert_url, UnsubscribeUrl=unsubscribe)

    def _fields(self, document: dict[str, Any], topic: str, subscription_arn: str) -> tuple[str, str, str, str]:
        key = self.key
        version = self._versions.get(topic, (0.0, "1"))[1]
        signed = {**document, "Type": document.get("Type", "Notification")}
        cache_key = (string_to_sign(signed), version)
        signature = self._signatures.get(cache_key)
        if signature is None:
            signature = key.sign(signed, version)
            self._signatures[cache_key] = signature
            if len(self._signatures) > _CACHE:
                self._signatures.popitem(last=False)
        links = self._links()
        return version, signature, links.certificate(key), links.unsubscribe(key, subscription_arn)
