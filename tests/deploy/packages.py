"""Tiny packages in a local index directory (pip's `--find-links`), so tests install without reaching any index.

`wheel` writes a pure-Python wheel by hand. `sdist` writes a source distribution whose build backend
lives in the archive itself (`backend-path`) and needs nothing installed (`requires = []`), so pip's
isolated build has nothing to download; building it runs code of the package's choosing, which is what
tests of source builds need to see (it can leave a marker file, or hang).
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import textwrap
import zipfile
from pathlib import Path

_PYPROJECT = """\
[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]

[project]
name = {name!r}
version = {version!r}
"""

_BACKEND = """\
import base64
import hashlib
import os
import pathlib
import time
import zipfile

NAME, VERSION, MARKER = {name!r}, {version!r}, {marker!r}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if MARKER:
        pathlib.Path(MARKER).write_text(str(os.getpid()))
    if {hang!r}:
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


def wheel(index: Path, name: str, source: str, *, version: str = "1.0") -> Path:
    """Write the wheel of package `name` (its `__init__.py` is `source`) into the directory `index`."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": textwrap.dedent(source).encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    index.mkdir(parents=True, exist_ok=True)
    path = index / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def sdist(
    index: Path, name: str, source: str, *, version: str = "1.0", marker: Path | None = None, hang: bool = False
) -> Path:
    """Write a source distribution of `name` into `index`; building it runs its own backend.

    With `marker`, the build writes its process id into that file (proof that code of the package's
    choosing ran); with `hang`, it then sleeps.
    """
    top = f"{name}-{version}"
    files = {
        "pyproject.toml": _PYPROJECT.format(name=name, version=version),
        "tiny_backend.py": _BACKEND.format(name=name, version=version, marker=str(marker) if marker else "", hang=hang),
        "source.py": textwrap.dedent(source),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    index.mkdir(parents=True, exist_ok=True)
    path = index / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
