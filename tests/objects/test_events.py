"""The S3 notification record, the bus event and trigger matching: pure, against tables of cases."""

from __future__ import annotations

from urllib.parse import unquote_plus

import pytest

from triggerfish.model import ObjectTrigger
from triggerfish.objects.events import Change, bus_event_fields, encode_key, s3_record, trigger_matches


def change(event: str = "ObjectCreated:Put", key: str = "images/red flower.jpg") -> Change:
    return Change(
        event, "uploads", key, 5, "5d41402abc4b2a76b9719d911017c592", "0000018C2B3F0001", 0.0, "rid", "10.0.0.1", "AKIA"
    )


def test_the_record_has_every_field_s3_sends() -> None:
    record = s3_record(change(), "on_image-0")
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["eventTime"] == "1970-01-01T00:00:00.000Z"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["userIdentity"] == {"principalId": "AKIA"}
    assert record["requestParameters"] == {"sourceIPAddress": "10.0.0.1"}
    assert record["responseElements"]["x-amz-request-id"] == "rid"
    s3 = record["s3"]
    assert s3["configurationId"] == "on_image-0"
    assert s3["bucket"] == {
        "name": "uploads",
        "ownerIdentity": {"principalId": "triggerfish"},
        "arn": "arn:aws:s3:::uploads",
    }
    assert s3["object"] == {
        "key": "images/red+flower.jpg",
        "size": 5,
        "eTag": "5d41402abc4b2a76b9719d911017c592",
        "sequencer": "0000018C2B3F0001",
        "versionId": "",
    }
    removed = s3_record(change("ObjectRemoved:Delete"), "c")["s3"]["object"]
    assert "size" not in removed
    assert removed["sequencer"] == "0000018C2B3F0001"


@pytest.mark.parametrize("key", ["a b.jpg", "ü/ñ+x=y&z.png", "100%.txt", "plain/key.jpg", "tab\there"])
def test_keys_are_url_encoded_as_lambda_code_decodes_them(key: str) -> None:
    assert unquote_plus(encode_key(key)) == key
    assert " " not in encode_key(key)


CASES = [
    # (events, prefix, suffix, event name, key, fires)
    (("created",), "", "", "ObjectCreated:Put", "a.jpg", True),
    (("created",), "", "", "ObjectRemoved:Delete", "a.jpg", False),
    (("deleted",), "", "", "ObjectRemoved:Delete", "a.jpg", True),
    (("s3:ObjectCreated:*",), "", "", "ObjectCreated:CompleteMultipartUpload", "a", True),
    (("s3:ObjectCreated:Put",), "", "", "ObjectCreated:Copy", "a", False),
    (("s3:ObjectCreated:Copy",), "", "", "ObjectCreated:Copy", "a", True),
    (("s3:ObjectRemoved:*",), "", "", "ObjectRemoved:Delete", "a", True),
    (("created",), "images/", ".jpg", "ObjectCreated:Put", "images/a.jpg", True),
    (("created",), "images/", ".jpg", "ObjectCreated:Put", "images/a.png", False),
    (("created",), "images/", ".jpg", "ObjectCreated:Put", "docs/a.jpg", False),
]


@pytest.mark.parametrize(("events", "prefix", "suffix", "name", "key", "fires"), CASES)
def test_trigger_matching(events: tuple[str, ...], prefix: str, suffix: str, name: str, key: str, fires: bool) -> None:
    trigger = ObjectTrigger("uploads", events, prefix, suffix)
    assert trigger_matches(trigger, change(name, key)) is fires
    assert not trigger_matches(ObjectTrigger("other", events, prefix, suffix), change(name, key))


def test_the_bus_event_is_eventbridges_s3_event() -> None:
    source, detail_type, detail = bus_event_fields(change())
    assert (source, detail_type) == ("aws.s3", "Object Created")
    assert detail["bucket"] == {"name": "uploads"}
    assert detail["object"]["key"] == "images/red flower.jpg"  # EventBridge's keys are not URL-encoded
    assert detail["reason"] == "PutObject"
    assert bus_event_fields(change("ObjectRemoved:Delete"))[1] == "Object Deleted"
