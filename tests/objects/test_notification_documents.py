"""A bucket's notification configuration document: parsing, S3's errors, and matching. Pure."""

from __future__ import annotations

import pytest

from triggerfish.objects.bucket_notifications import configuration_document, parse_configuration
from triggerfish.objects.events import Change
from triggerfish.objects.model import ObjectError


def _document(inner: str) -> bytes:
    return f'<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</NotificationConfiguration>'.encode()


def _change(event: str, key: str) -> Change:
    return Change(event, "b", key, 1, "e", "01", 0.0, "r", "ip", "p")


def test_matching_by_event_wildcards_prefix_and_suffix() -> None:
    config = parse_configuration(
        _document(
            "<QueueConfiguration><Queue>arn:aws:sqs:local:000000000000:q</Queue>"
            "<Event>s3:ObjectCreated:Put</Event><Event>s3:ObjectRemoved:*</Event>"
            "<Filter><S3Key><FilterRule><Name>Prefix</Name><Value>a/</Value></FilterRule></S3Key></Filter>"
            "</QueueConfiguration>"
        )
    )
    [destination] = config.destinations
    assert destination.kind == "queue"
    assert destination.name == "q"
    assert destination.id
    assert config.matching(_change("ObjectCreated:Put", "a/x"))
    assert config.matching(_change("ObjectRemoved:Delete", "a/x"))
    assert not config.matching(_change("ObjectCreated:Copy", "a/x"))
    assert not config.matching(_change("ObjectCreated:Put", "b/x"))


@pytest.mark.parametrize(
    ("inner", "wanted"),
    [
        (
            "<QueueConfiguration><Queue>arn:aws:sqs:us-east-1:123456789012:q</Queue><Event>s3:ObjectCreated:*</Event>"
            "</QueueConfiguration>",
            "names region 'us-east-1'",
        ),
        (
            "<TopicConfiguration><Topic>arn:aws:sqs:local:000000000000:q</Topic><Event>s3:ObjectCreated:*</Event>"
            "</TopicConfiguration>",
            "not an SNS ARN",
        ),
        ("<QueueConfiguration><Queue>arn:aws:sqs:local:000000000000:q</Queue></QueueConfiguration>", "names no Event"),
        (
            "<QueueConfiguration><Queue>arn:aws:sqs:local:000000000000:q</Queue><Event>s3:ObjectCreated:*</Event>"
            "<Filter><S3Key><FilterRule><Name>prefix</Name><Value>a</Value></FilterRule>"
            "<FilterRule><Name>Prefix</Name><Value>b</Value></FilterRule></S3Key></Filter></QueueConfiguration>",
            "more than one prefix",
        ),
        (
            "<QueueConfiguration><Queue>arn:aws:sqs:local:000000000000:q</Queue><Event>s3:ObjectCreated:*</Event>"
            "<Filter><S3Key><FilterRule><Name>middle</Name><Value>a</Value></FilterRule></S3Key></Filter>"
            "</QueueConfiguration>",
            "prefix or suffix",
        ),
        (
            "<QueueConfiguration><Id>x</Id><Queue>arn:aws:sqs:local:000000000000:q</Queue><Event>s3:ObjectCreated:*</Event>"
            "</QueueConfiguration><QueueConfiguration><Id>x</Id><Queue>arn:aws:sqs:local:000000000000:r</Queue>"
            "<Event>s3:ObjectCreated:*</Event></QueueConfiguration>",
            "Ids must be unique",
        ),
        (
            "<CloudFunctionConfiguration><CloudFunction>arn</CloudFunction><Event>s3:ObjectCreated:*</Event>"
            "</CloudFunctionConfiguration>",
            "@app.on_object",
        ),
    ],
)
def test_bad_documents_say_what_is_wrong(inner: str, wanted: str) -> None:
    with pytest.raises(ObjectError) as caught:
        parse_configuration(_document(inner))
    assert caught.value.code == "InvalidArgument"
    assert wanted in caught.value.message


def test_the_document_round_trips() -> None:
    body = _document(
        "<TopicConfiguration><Id>t</Id><Topic>arn:aws:sns:local:000000000000:t</Topic>"
        "<Event>s3:ObjectCreated:*</Event>"
        "<Filter><S3Key><FilterRule><Name>Suffix</Name><Value>.jpg</Value></FilterRule></S3Key></Filter>"
        "</TopicConfiguration>"
    )
    config = parse_configuration(body)
    assert parse_configuration(configuration_document(config)) == config
