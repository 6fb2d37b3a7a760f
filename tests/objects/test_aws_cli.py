"""The AWS CLI as a user runs it (`aws s3 ...`, `aws s3api ...`), against the platform on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import Served

# Every `aws` is an interpreter start of its own (about a second): slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300), pytest.mark.slow]


def aws(url: str, *args: str) -> Any:
    """Run `aws ARGS`: s3api's JSON parsed, s3's text as is. The server runs on the test's loop: call it in a thread."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"{url}/-/aws",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "local",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    done = subprocess.run([sys.executable, "-m", "awscli", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
    if args[0] == "s3api" and done.stdout.strip():
        return json.loads(done.stdout)
    return done.stdout


async def test_aws_s3_cp_ls_sync_rm(served: Served, tmp_path: Path) -> None:
    url = served.url
    big = os.urandom(9 * 1024 * 1024)  # over the CLI's 8 MB multipart threshold
    (tmp_path / "big.bin").write_bytes(big)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (tree / name).write_text(f"file {name}")

    def run() -> None:
        aws(url, "s3", "mb", "s3://cli-bucket")
        aws(url, "s3", "cp", str(tmp_path / "big.bin"), "s3://cli-bucket/big.bin")
        head = aws(url, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "big.bin")
        assert head["ContentLength"] == len(big)
        assert head["ETag"].endswith('-2"')  # sent in two parts
        aws(url, "s3", "cp", "s3://cli-bucket/big.bin", str(tmp_path / "back.bin"))
        assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).digest() == hashlib.sha256(big).digest()
        synced = aws(url, "s3", "sync", str(tree), "s3://cli-bucket/tree/")
        assert synced.count("upload:") == 3
        assert aws(url, "s3", "sync", str(tree), "s3://cli-bucket/tree/").count("upload:") == 0  # nothing changed
        listing = aws(url, "s3", "ls", "s3://cli-bucket/", "--recursive")
        assert [line.split()[-1] for line in listing.splitlines()] == [
            "big.bin",
            "tree/a.txt",
            "tree/b.txt",
            "tree/sub/c.txt",
        ]
        top = aws(url, "s3", "ls", "s3://cli-bucket/")
        assert "PRE tree/" in top
        assert "big.bin" in top
        aws(url, "s3", "cp", "s3://cli-bucket/tree/", str(tmp_path / "down"), "--recursive")
        assert (tmp_path / "down" / "sub" / "c.txt").read_text() == "file sub/c.txt"
        removed = aws(url, "s3", "rm", "s3://cli-bucket/tree/", "--recursive")
        assert removed.count("delete:") == 3
        aws(url, "s3", "rb", "s3://cli-bucket", "--force")
        assert "cli-bucket" not in aws(url, "s3", "ls")

    await asyncio.to_thread(run)


async def test_aws_s3api(served: Served, tmp_path: Path) -> None:
    url = served.url
    (tmp_path / "body.txt").write_bytes(b"hello from s3api")

    def run() -> None:
        aws(url, "s3api", "create-bucket", "--bucket", "api-bucket")
        assert aws(url, "s3api", "get-bucket-location", "--bucket", "api-bucket")["LocationConstraint"] == "local"
        put = aws(
            url, "s3api", "put-object", "--bucket", "api-bucket", "--key", "k one",
            "--body", str(tmp_path / "body.txt"),
            "--content-type", "text/plain", "--metadata", "team=fish",
        )  # fmt: skip
        assert put["ETag"] == f'"{hashlib.md5(b"hello from s3api").hexdigest()}"'
        got = aws(url, "s3api", "get-object", "--bucket", "api-bucket", "--key", "k one", str(tmp_path / "out.txt"))
        assert got["Metadata"] == {"team": "fish"}
        assert got["ContentType"] == "text/plain"
        assert (tmp_path / "out.txt").read_bytes() == b"hello from s3api"
        aws(
            url, "s3api", "copy-object", "--bucket", "api-bucket", "--key", "k two", "--copy-source", "api-bucket/k one"
        )
        listed = aws(url, "s3api", "list-objects-v2", "--bucket", "api-bucket")
        assert [o["Key"] for o in listed["Contents"]] == ["k one", "k two"]
        v1 = aws(url, "s3api", "list-objects", "--bucket", "api-bucket", "--prefix", "k t")
        assert [o["Key"] for o in v1["Contents"]] == ["k two"]
        started = aws(url, "s3api", "create-multipart-upload", "--bucket", "api-bucket", "--key", "mp")
        part = aws(
            url, "s3api", "upload-part", "--bucket", "api-bucket", "--key", "mp", "--part-number", "1",
            "--upload-id", started["UploadId"], "--body", str(tmp_path / "body.txt"),
        )  # fmt: skip
        parts = aws(
            url, "s3api", "list-parts", "--bucket", "api-bucket", "--key", "mp", "--upload-id", started["UploadId"]
        )
        assert [p["ETag"] for p in parts["Parts"]] == [part["ETag"]]
        done = json.dumps({"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        aws(
            url, "s3api", "complete-multipart-upload", "--bucket", "api-bucket", "--key", "mp",
            "--upload-id", started["UploadId"], "--multipart-upload", done,
        )  # fmt: skip
        deleted = aws(
            url, "s3api", "delete-objects", "--bucket", "api-bucket",
            "--delete", json.dumps({"Objects": [{"Key": "k one"}, {"Key": "k two"}, {"Key": "mp"}]}),
        )  # fmt: skip
        assert len(deleted["Deleted"]) == 3
        aws(url, "s3api", "delete-bucket", "--bucket", "api-bucket")

    await asyncio.to_thread(run)
