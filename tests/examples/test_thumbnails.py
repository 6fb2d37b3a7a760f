"""examples/thumbnails for real: `triggerfish dev` in a subprocess; photos uploaded with boto3 and with the AWS
CLI over HTTP get their thumbnails, made by a function that uses boto3 unchanged."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from tests.server.devserver import DevServer, poll

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    data_dir = tmp_path_factory.mktemp("thumbnails-data")
    dev = DevServer("examples/thumbnails/app.py", "--port", "0", "--data-dir", str(data_dir), cwd=REPO)
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()


def s3(server: DevServer) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"{server.url}/-/aws",
        region_name="local",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def photo(width: int, height: int, kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, kind)
    return out.getvalue()


def thumbnail(client: Any, key: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        try:
            got = client.get_object(Bucket="thumbnails", Key=key)
        except ClientError:
            return None
        return {"body": got["Body"].read(), "metadata": got["Metadata"], "type": got["ContentType"]}

    made: dict[str, Any] = poll(found, timeout=60)
    return made


def test_a_photo_uploaded_with_boto3_gets_its_thumbnail(server: DevServer) -> None:
    client = s3(server)
    client.put_object(Bucket="photos", Key="cats/tom and jerry.jpg", Body=photo(640, 480, "JPEG"))
    made = thumbnail(client, "cats/tom and jerry.jpg")
    image = Image.open(io.BytesIO(made["body"]))
    assert (image.format, image.size) == ("JPEG", (128, 96))
    assert made["type"] == "image/jpeg"
    assert made["metadata"] == {"source": "photos/cats/tom and jerry.jpg", "size": "128x96"}


def test_a_photo_uploaded_with_the_aws_cli_gets_its_thumbnail(server: DevServer, tmp_path: Path) -> None:
    (tmp_path / "dog.png").write_bytes(photo(300, 600, "PNG"))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"{server.url}/-/aws",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "local",
    }
    aws = [sys.executable, "-m", "awscli"]
    subprocess.run([*aws, "s3", "cp", str(tmp_path / "dog.png"), "s3://photos/dogs/dog.png"], env=env, check=True)
    made = thumbnail(s3(server), "dogs/dog.jpg")
    assert Image.open(io.BytesIO(made["body"])).size == (64, 128)
    listed = subprocess.run([*aws, "s3", "ls", "s3://thumbnails/dogs/"], env=env, check=True, capture_output=True)
    assert b"dog.jpg" in listed.stdout


def test_other_files_are_left_alone(server: DevServer) -> None:
    client = s3(server)
    client.put_object(Bucket="photos", Key="notes.txt", Body=b"not a photo")
    client.put_object(Bucket="photos", Key="cats/after.jpg", Body=photo(10, 10, "JPEG"))
    thumbnail(client, "cats/after.jpg")  # handled after the text file was not
    assert "Contents" not in client.list_objects_v2(Bucket="thumbnails", Prefix="notes")
