"""SigV4 verification held to AWS's published Signature Version 4 test suite.

Each case is the suite's request (method, path and query as sent, headers, body) with the
signature AWS published for it under the suite's credentials (`AKIDEXAMPLE`, the example
secret, us-east-1, service `service`, 2015-08-30T12:36:00Z). Where the suite publishes the
string to sign, it is checked too: a mismatch there says which step went wrong.
"""

from __future__ import annotations

import datetime
import hashlib

import pytest

from triggerfish.aws import sigv4
from triggerfish.aws.sigv4 import SignatureError

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC)
BASE = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]
SCOPE = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"


def _auth(signed: str, signature: str) -> str:
    return f"AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders={signed}, Signature={signature}"


# name, method, raw path, raw query, extra headers, signed headers, signature, string-to-sign hash (or None)
SUITE = [
    ("get-vanilla", "GET", "/", "", [], "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"),
    ("get-vanilla-empty-query-key", "GET", "/", "Param1=value1", [], "host;x-amz-date",
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
     "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab"),
    ("get-vanilla-query-order-key", "GET", "/", "Param1=value2&Param1=Value1", [], "host;x-amz-date",
     "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
     "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89"),
    ("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", [], "host;x-amz-date",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
     "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0"),
    ("get-vanilla-query-order-value", "GET", "/", "Param1=value2&Param1=value1", [], "host;x-amz-date",
     "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
     "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606"),
    ("get-vanilla-query-unreserved", "GET", "/",
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
     "=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", [], "host;x-amz-date",
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
     "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177"),
    ("get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", [],
     "host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
     "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9"),
    ("get-header-key-duplicate", "GET", "/", "",
     [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")], "host;my-header1;x-amz-date",
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
     "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c"),
    ("get-header-value-order", "GET", "/", "",
     [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
     "host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
     "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86"),
    ("get-header-value-trim", "GET", "/", "", [("My-Header1", " value1"), ("My-Header2", ' "a   b   c"')],
     "host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
     "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7"),
    ("normalize-path/get-relative", "GET", "/example/..", "", [], "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", None),
    ("normalize-path/get-relative-relative", "GET", "/example1/example2/../..", "", [], "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", None),
    ("normalize-path/get-slash", "GET", "//", "", [], "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", None),
    ("normalize-path/get-slash-dot-slash", "GET", "/./", "", [], "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", None),
    ("normalize-path/get-slash-pointless-dot", "GET", "/./example", "", [], "host;x-amz-date",
     "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
     "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702"),
    ("post-vanilla", "POST", "/", "", [], "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87"),
    ("post-vanilla-query", "POST", "/", "Param1=value1", [], "host;x-amz-date",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
     "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd"),
    ("post-header-key-sort", "POST", "/", "", [("My-Header1", "value1")], "host;my-header1;x-amz-date",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
     "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65"),
    ("post-header-value-case", "POST", "/", "", [("My-Header1", "VALUE1")], "host;my-header1;x-amz-date",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
     "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93"),
    ("post-sts-token/post-sts-header-before", "POST", "/", "",
     [("X-Amz-Security-Token", "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==")],  # noqa: E501
     "host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
     "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "method", "path", "query", "extra", "signed", "expected", "sts_hash"), SUITE)
def test_the_published_suite_verifies(
    name: str,
    method: str,
    path: str,
    query: str,
    extra: list[tuple[str, str]],
    signed: str,
    expected: str,
    sts_hash: str | None,
) -> None:
    headers = BASE + extra
    header = sigv4.parse_authorization(_auth(signed, expected))
    request = sigv4.canonical_request(method, path, query, headers, header.signed_headers, sigv4.EMPTY_SHA256)
    to_sign = sigv4.string_to_sign("20150830T123600Z", header.scope, request)
    if sts_hash is not None:
        assert to_sign.splitlines()[-1] == sts_hash
    assert hashlib.sha256(request.encode()).hexdigest() == to_sign.splitlines()[-1]
    assert sigv4.signature(sigv4.signing_secret(SECRET), header.scope, to_sign) == expected
    sigv4.verify(
        header,
        sigv4.signing_secret(SECRET),
        method=method,
        raw_path=path,
        raw_query=query,
        headers=headers,
        payload_sha256=sigv4.EMPTY_SHA256,
        now=WHEN,
    )


def test_the_suite_canonical_request_is_rebuilt_exactly() -> None:
    headers = [*BASE, ("My-Header1", " value1"), ("My-Header2", ' "a   b   c"')]
    signed = ("host", "my-header1", "my-header2", "x-amz-date")
    assert sigv4.canonical_request("GET", "/", "", headers, signed, sigv4.EMPTY_SHA256) == (
        'GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:"a b c"\nx-amz-date:20150830T123600Z\n'
        "\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_a_path_is_encoded_twice_as_every_service_but_s3_does() -> None:
    # The suite's get-space: a space sent as %20 is canonical as %2520.
    assert sigv4.canonical_uri("/%20/foo") == "/%2520/foo"


def test_a_long_secret_signs_through_its_digest() -> None:
    # What lets the server keep SHA-256("AWS4" + secret) instead of the secret (RFC 2104: long keys are hashed).
    secret = "f" * 64
    header = sigv4.parse_authorization(_auth("host;x-amz-date", "0" * 64))
    to_sign = sigv4.string_to_sign("20150830T123600Z", header.scope, "anything")
    by_digest = sigv4.signature(sigv4.signing_secret(secret), header.scope, to_sign)
    assert len(sigv4.signing_secret(secret)) == 32
    assert by_digest == sigv4.signature(b"AWS4" + secret.encode(), header.scope, to_sign)


def _verify(header_text: str, *, now: datetime.datetime = WHEN, headers: list[tuple[str, str]] = BASE) -> None:
    sigv4.verify(
        sigv4.parse_authorization(header_text),
        sigv4.signing_secret(SECRET),
        method="GET",
        raw_path="/",
        raw_query="",
        headers=headers,
        payload_sha256=sigv4.EMPTY_SHA256,
        now=now,
    )


GOOD = _auth("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


def test_a_changed_request_or_wrong_secret_is_a_mismatch() -> None:
    with pytest.raises(SignatureError, match="does not match") as caught:
        _verify(GOOD, headers=[("Host", "other.example.com"), ("X-Amz-Date", "20150830T123600Z")])
    assert caught.value.kind == "mismatch"
    with pytest.raises(SignatureError) as caught:
        _verify(_auth("host;x-amz-date", "1" * 64))
    assert caught.value.kind == "mismatch"


def test_a_request_older_than_fifteen_minutes_is_expired() -> None:
    _verify(GOOD, now=WHEN + datetime.timedelta(minutes=14))
    with pytest.raises(SignatureError, match="Signature expired") as caught:
        _verify(GOOD, now=WHEN + datetime.timedelta(minutes=16))
    assert caught.value.kind == "expired"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (None, "missing", "no Authorization header"),
        ("", "missing", "no Authorization header"),
        ("Bearer tfk_x", "incomplete", "takes AWS4-HMAC-SHA256 only"),
        ("AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/sqs/aws4_request", "incomplete", "SignedHeaders, Signature"),
        (_auth("host;x-amz-date", "xyz"), "incomplete", "64 lowercase hex"),
        (_auth("x-amz-date", "0" * 64), "incomplete", "must include host"),
        ("AWS4-HMAC-SHA256 Credential=A/2015/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
         "incomplete", "YYYYMMDD"),
        ("AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
         "incomplete", "ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE"),
    ],
)  # fmt: skip
def test_malformed_headers_say_what_is_wrong(text: str | None, kind: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message) as caught:
        sigv4.parse_authorization(text)
    assert caught.value.kind == kind


def test_a_signed_header_the_request_lacks_is_incomplete() -> None:
    with pytest.raises(SignatureError, match="'my-header1', which the request does not carry"):
        _verify(_auth("host;my-header1;x-amz-date", "0" * 64))


def test_a_scope_date_other_than_the_request_date_is_refused() -> None:
    text = GOOD.replace("20150830/", "20150829/")
    with pytest.raises(SignatureError, match="not the request's date"):
        _verify(text)
