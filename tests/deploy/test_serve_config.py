"""The deploy settings of `triggerfish serve`'s config file: where pip installs from, whether it may build
source distributions, and the bundle limits; checked when read, and used by the running server."""

from __future__ import annotations

import re
from pathlib import Path

import click
import httpx
import pytest

from tests.deploy.packages import wheel
from tests.server.devserver import DevServer
from triggerfish.cli.serve import _bundle_limits, _read_config
from triggerfish.deploy.bundle import BundleLimits, pack

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_deploy_settings_are_read_and_checked(tmp_path: Path) -> None:
    settings = _read_config(
        _config(
            tmp_path,
            'pip_args = ["--index-url", "https://pypi.internal/simple"]\npip_source_builds = true\n'
            "bundle_max_files = 500\nbundle_max_ratio = 40\n",
        )
    )
    assert settings["pip_args"] == ["--index-url", "https://pypi.internal/simple"]
    assert settings["pip_source_builds"] is True
    assert _bundle_limits(settings) == BundleLimits(max_files=500, max_ratio=40)
    assert _bundle_limits({}) == BundleLimits()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('pip_args = "--pre"\n', "pip_args must be a list"),
        ("pip_args = [1]\n", "pip_args must be a list of strings"),
        ('pip_source_builds = "yes"\n', "pip_source_builds must be a bool"),
        ("bundle_max_files = 0\n", "bundle limit max_files must be a whole number of at least 1"),
        ("bundle_max_files = true\n", "bundle_max_files must be a int"),
        ("bundle_max_members = 10\n", "unknown key 'bundle_max_members'"),
    ],
)
def test_a_bad_deploy_setting_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        _read_config(_config(tmp_path, text))


def test_a_running_server_uses_its_deploy_settings(tmp_path: Path) -> None:
    index = tmp_path / "index"
    wheel(index, "tinylib", "NAME = 'tinylib'\n")
    config = _config(tmp_path, f'pip_args = ["--no-index", "--find-links", {str(index)!r}]\nbundle_max_files = 3\n')
    server = DevServer(
        "--port", "0", "--data-dir", str(tmp_path / "server"), "--config", str(config), cwd=ROOT, verb="serve"
    ).start()
    try:
        line = next(line for line in server.lines if line.startswith("admin key"))
        admin = re.search(r"(tfk_\S+)", line).group(1)  # type: ignore[union-attr]
        app = tmp_path / "shop"
        app.mkdir()
        (app / "app.py").write_text(
            "import tinylib\nimport triggerfish\napp = triggerfish.App('shop')\n\n\n"
            "@app.function()\ndef name(event, context):\n    return tinylib.NAME\n"
        )
        (app / "requirements.txt").write_text("tinylib==1.0\n")
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {admin}"}, timeout=60) as http:
            bundle = pack(app)
            assert (
                http.put(
                    f"/-/api/v1/apps/shop/bundles/{bundle.sha256}",
                    content=bundle.data,
                    headers={"content-type": "application/gzip"},
                ).status_code
                == 201
            )
            deployed = http.post("/-/api/v1/apps/shop/deploys", json={"bundle": bundle.sha256})
            assert deployed.status_code == 201, deployed.text  # installed from the configured index
            for name in ("a.py", "b.py"):
                (app / name).write_text("")
            bigger = pack(app)
            refused = http.put(
                f"/-/api/v1/apps/shop/bundles/{bigger.sha256}",
                content=bigger.data,
                headers={"content-type": "application/gzip"},
            )
            assert refused.status_code == 400
            assert "past the limit of 3 members per bundle (max_files)" in refused.json()["error"]["message"]
    finally:
        server.stop()
