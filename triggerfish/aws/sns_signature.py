"""SNS message signatures as AWS makes them, so receivers that verify SNS messages accept the platform's.

SNS signs each notification with RSA (SignatureVersion 1: SHA1withRSA; 2: SHA256withRSA) over
a "string to sign" of the message's fields, and names where its certificate is (`SigningCertURL`).
A receiver fetches the certificate, takes its public key and checks the signature. Here the key pair
and a self-signed certificate are the platform's (one per app, kept in its store by
triggerfish.aws.sns_signing); the certificate and the working `UnsubscribeURL` are served by the AWS
endpoint under `/-/aws/sns/<app>/`.

Pure: no I/O. Keys are made with `cryptography`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

# cryptography's x509 is imported in the functions that make a key or check a signature: every platform imports
# this module (for `Links`), and x509 alone costs a tenth of a second or more to import in each process that
# starts one, most of which never sign an SNS message.
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from triggerfish.errors import InvalidInputError

#: The fields signed, in the order SNS signs them (byte order of their names), per message type.
SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
SIGNATURE_VERSIONS = ("1", "2")
#: Where the links live below the AWS endpoint's path.
LINKS_PATH = "/sns"
UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
#: Where links point when the platform is not served (triggerfish.testing): well-formed, not reachable.
UNSERVED_ENDPOINT = "http://localhost/-/aws"
_KEY_BITS = 2048
_CERT_YEARS = 10


def string_to_sign(document: Mapping[str, Any]) -> bytes:
    """The bytes SNS signs for `document` (a notification as delivered, with `Type`): `name\\nvalue\\n` per field.

    A field that is absent or None (a notification without a `Subject`) is left out, as SNS does.
    """
    kind = document.get("Type")
    fields = SIGNED_FIELDS.get(str(kind))
    if fields is None:
        raise InvalidInputError(f"SNS signs messages of Type {', '.join(SIGNED_FIELDS)}, not {kind!r}")
    parts = [f"{name}\n{document[name]}\n" for name in fields if document.get(name) is not None]
    return "".join(parts).encode("utf-8")


def _hash(version: str) -> hashes.HashAlgorithm:
    if version == "1":
        return hashes.SHA1()  # SignatureVersion 1 is SHA1withRSA by SNS's definition
    if version == "2":
        return hashes.SHA256()
    raise InvalidInputError(f"SignatureVersion must be '1' (SHA1withRSA) or '2' (SHA256withRSA), not {version!r}")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An RSA key pair with its self-signed certificate (PEM), as SNS's signing certificate is served."""

    private_key: rsa.RSAPrivateKey
    certificate_pem: bytes
    #: Worked out once (every delivery names them): the certificate's file name, the unsubscribe tokens' key.
    certificate_file: str = field(init=False)
    _token_secret: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from cryptography import x509  # not at the top: see the imports

        der = x509.load_pem_x509_certificate(self.certificate_pem).public_bytes(serialization.Encoding.DER)
        # As SNS names its own certificates: SimpleNotificationService-<digest>.pem.
        object.__setattr__(
            self, "certificate_file", f"SimpleNotificationService-{hashlib.sha256(der).hexdigest()[:32]}.pem"
        )
        secret = hashlib.sha256(b"triggerfish/sns-unsubscribe/v1" + self.to_pem()[0]).digest()
        object.__setattr__(self, "_token_secret", secret)

    @classmethod
    def generate(cls, *, common_name: str = "sns.triggerfish.local") -> SigningKey:
        from cryptography import x509  # not at the top: see the imports

        key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365 * _CERT_YEARS))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate.public_bytes(serialization.Encoding.PEM))

    def to_pem(self) -> tuple[bytes, bytes]:
        """The private key (PKCS#8, unencrypted: the store keeps it as it keeps the app's other secrets) and cert."""
        private = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return private, self.certificate_pem

    @classmethod
    def from_pem(cls, private_pem: bytes, certificate_pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidInputError("the stored SNS signing key is not an RSA key")
        return cls(key, certificate_pem)

    def sign(self, document: Mapping[str, Any], version: str) -> str:
        signature = self.private_key.sign(string_to_sign(document), padding.PKCS1v15(), _hash(version))
        return base64.b64encode(signature).decode("ascii")

    def link_token(self, subscription_arn: str) -> str:
        """What makes an UnsubscribeURL work without credentials, for this subscription only."""
        return hmac.new(self._token_secret, subscription_arn.encode("utf-8"), hashlib.sha256).hexdigest()

    def confirmation_token(self, subscription_arn: str) -> str:
        """The `Token` of a SubscriptionConfirmation: what ConfirmSubscription and the SubscribeURL check."""
        return hmac.new(self._token_secret, b"confirm\n" + subscription_arn.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(document: Mapping[str, Any], certificate_pem: bytes) -> bool:
    """Check a notification's signature against a certificate, as a receiver does (for tests and tools)."""
    from cryptography import x509  # not at the top: see the imports

    public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        public_key.verify(
            base64.b64decode(str(document["Signature"])),
            string_to_sign(document),
            padding.PKCS1v15(),
            _hash(str(document["SignatureVersion"])),
        )
    except Exception:  # any failure to verify is "not signed by this key"
        return False
    return True


@dataclass(frozen=True, slots=True)
class Links:
    """Where an app's SNS links point: `<endpoint>/sns/<app>/...` (endpoint: the AWS endpoint's URL)."""

    endpoint: str
    app: str

    def base(self) -> str:
        return f"{self.endpoint.rstrip('/')}{LINKS_PATH}/{quote(self.app, safe='')}"

    def certificate(self, key: SigningKey) -> str:
        return f"{self.base()}/{key.certificate_file}"

    def unsubscribe(self, key: SigningKey, subscription_arn: str) -> str:
        return (
            f"{self.base()}/{UNSUBSCRIBE}?SubscriptionArn={quote(subscription_arn, safe='')}"
            f"&Token={key.link_token(subscription_arn)}"
        )

    def confirm(self, topic_arn: str, token: str) -> str:
        """The `SubscribeURL`: a GET confirms the subscription, as SNS's `?Action=ConfirmSubscription` link does."""
        return f"{self.base()}/{CONFIRM}?TopicArn={quote(topic_arn, safe='')}&Token={token}"
