"""Buckets declared in triggerfish.toml and by `@app.on_object`: checked by S3's rules when they are declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from triggerfish import App
from triggerfish.config import load_config
from triggerfish.errors import DeclarationError


def test_buckets_tables_are_read(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_text("[buckets.photos]\n[buckets.thumbnails]\n")
    assert sorted(load_config(tmp_path).buckets) == ["photos", "thumbnails"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[buckets.Photos]\n", "invalid bucket name 'Photos'"),
        ("[buckets.ab]\n", "invalid bucket name 'ab'"),
        ("[buckets.photos]\nversioning = true\n", "unknown key 'versioning'"),
    ],
)
def test_a_bad_bucket_table_is_refused_naming_it(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "triggerfish.toml").write_text(toml)
    with pytest.raises(DeclarationError, match=message):
        load_config(tmp_path)


def test_on_object_takes_s3_event_names_and_refuses_bad_bucket_names() -> None:
    app = App("files")

    @app.on_object("photos", events=["s3:ObjectCreated:*", "s3:ObjectRemoved:Delete"])
    def seen(event: dict[str, Any], context: Any) -> None: ...

    with pytest.raises(DeclarationError, match="invalid bucket name 'My_Photos'"):

        @app.on_object("My_Photos")
        def bad(event: dict[str, Any], context: Any) -> None: ...

    with pytest.raises(DeclarationError, match="events"):

        @app.on_object("photos", events=["s3:ObjectRestore:*"])
        def restore(event: dict[str, Any], context: Any) -> None: ...


async def test_a_reload_makes_the_buckets_the_new_version_declares(tmp_path: Path) -> None:
    from tests.objects.conftest import OBJECT_APP
    from tests.server.conftest import serve_app

    async for served in serve_app(tmp_path, OBJECT_APP):
        assert [b.name for b in await served.platform.objects.index.buckets()] == ["uploads"]
        (tmp_path / "app.py").write_text(
            OBJECT_APP + '\n\n@app.on_object("fresh-bucket")\ndef fresh(event, context):\n    pass\n'
        )
        result = await served.platform.reload()
        assert result.ok, result.error
        assert [b.name for b in await served.platform.objects.index.buckets()] == ["fresh-bucket", "uploads"]


NOTIFYING = """
[queues.resize]

[buckets.photos]
notifications = [
    { queue = "resize", events = ["s3:ObjectCreated:*"], prefix = "images/", suffix = ".jpg", id = "to-resize" },
]
"""


async def test_declared_notifications_send_matching_changes_to_the_queue(tmp_path: Path) -> None:
    from tests.aws.conftest import blocking
    from tests.objects.conftest import OBJECT_APP, received, s3
    from tests.server.conftest import serve_app

    (tmp_path / "triggerfish.toml").write_text(NOTIFYING)
    async for served in serve_app(tmp_path, OBJECT_APP):
        client = s3(served.url)
        config = await blocking(client.get_bucket_notification_configuration, Bucket="photos")
        assert [(q["Id"], q["QueueArn"], q["Events"]) for q in config["QueueConfigurations"]] == [
            ("to-resize", "arn:aws:sqs:local:000000000000:resize", ["s3:ObjectCreated:*"])
        ]
        for key in ("images/cat.jpg", "images/cat.png", "docs/cat.jpg"):
            await blocking(client.put_object, Bucket="photos", Key=key, Body=b"x")
        await blocking(client.delete_object, Bucket="photos", Key="images/cat.jpg")
        await blocking(client.put_object, Bucket="photos", Key="images/dog.jpg", Body=b"x")
        records = [r for m in await received(served.platform, "resize", 2) for r in m["Records"]]
        assert [(r["eventName"], r["s3"]["object"]["key"]) for r in records] == [
            ("ObjectCreated:Put", "images/cat.jpg"),
            ("ObjectCreated:Put", "images/dog.jpg"),
        ]
        assert records[0]["s3"]["configurationId"] == "to-resize"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('"resize"', "notifications must be a list of tables"),
        ('[{ queue = "resize", topic = "t" }]', "entry 1: name exactly one destination"),
        ("[{ events = ['s3:ObjectCreated:*'] }]", "entry 1: name exactly one destination"),
        ('[{ queue = "resize.fifo" }]', "queue 'resize.fifo' is not a queue name"),
        ('[{ queue = "a" }, { topic = "t", events = ["s3:ObjectCreated"] }]', "entry 2: 's3:ObjectCreated' is not an"),
        ('[{ queue = "a", events = [] }]', "events must be a non-empty list"),
        ('[{ queue = "a", prefix = 3 }]', "prefix must be a string"),
        ('[{ queue = "a", filter = "x" }]', "unknown key 'filter'; the keys are queue, topic, events"),
        ('[{ queue = "a", id = "x" }, { queue = "b", id = "x" }]', "ids must be unique"),
    ],
)
def test_bad_notifications_are_refused_naming_the_entry(tmp_path: Path, entries: str, message: str) -> None:
    (tmp_path / "triggerfish.toml").write_text(f"[buckets.photos]\nnotifications = {entries}\n")
    with pytest.raises(DeclarationError, match=r"\[buckets\.photos\]: .*" + message.replace("[", r"\[")) as caught:
        load_config(tmp_path)
    assert "triggerfish.toml" in str(caught.value)
