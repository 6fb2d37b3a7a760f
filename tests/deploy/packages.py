"""Tiny local packages that pip can build and install without reaching any index.

Each is a directory with a pyproject.toml whose build backend lives in the directory itself
(`backend-path`) and needs nothing installed (`requires = []`), so pip's isolated build has
nothing to download. The backend writes a pure-Python wheel by hand.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

_PYPROJECT = """\
[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]
"""

_BACKEND = """\
import base64
import hashlib
import os
import pathlib
import time
import zipfile

NAME, VERSION = {name!r}, {version!r}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if {hang!r}:
        pathlib.Path("builder.pid").write_text(str(os.getpid()))
        time.sleep(600)
    dist = f"{{NAME}}-{{VERSION}}.dist-info"
    files = {{
        f"{{NAME}}/__init__.py": pathlib.Path("source.py").read_bytes(),
        f"{{dist}}/METADATA": f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n".encode(),
        f"{{dist}}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    record.append(f"{{dist}}/RECORD,,")
    files[f"{{dist}}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    filename = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / filename, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return filename
"""


def local_package(directory: Path, name: str, source: str, *, version: str = "1.0", hang: bool = False) -> Path:
    """Write a buildable package `name` (whose `__init__.py` is `source`) into `directory`.

    With `hang`, building it writes the builder's pid to `builder.pid` and then sleeps.
    """
    directory.mkdir(parents=True)
    (directory / "pyproject.toml").write_text(_PYPROJECT, encoding="utf-8")
    (directory / "tiny_backend.py").write_text(_BACKEND.format(name=name, version=version, hang=hang), encoding="utf-8")
    (directory / "source.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return directory
