"""Functions that use memory as real ported functions do: threads and transfers, and more than their setting."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from triggerfish.app import App

app = App("memory")
_kept: list[bytes] = []


@app.function(timeout=10.0, memory_mb=128)
def transfers(event: Any) -> Any:
    """Zip a folder's worth of data and upload it in parts from 10 threads, as boto3's transfer manager does."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for index in range(20):
            bundle.writestr(f"file-{index}.bin", os.urandom(256 * 1024))
    body = archive.getvalue()
    parts = [body[start : start + 512 * 1024] for start in range(0, len(body), 512 * 1024)]
    with ThreadPoolExecutor(max_workers=10) as pool:  # each thread: an 8 MB stack and maybe an arena
        digests = list(pool.map(lambda part: hashlib.md5(part).hexdigest(), parts))
    return {"parts": len(digests), "bytes": len(body), "threads": 10}


@app.function(timeout=10.0, memory_mb=128)
def allocates(event: Any) -> Any:
    """Keep `event` MB written (resident) across invocations; 0 returns what is kept."""
    if event:
        _kept.append(b"\x01" * (int(event) * 1024 * 1024))
    return {"kept_mb": sum(len(chunk) for chunk in _kept) // (1024 * 1024), "pid": os.getpid()}
