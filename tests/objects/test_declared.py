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
