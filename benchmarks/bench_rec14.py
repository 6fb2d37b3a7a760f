"""What an invocation record costs the store, counted, side by side with another tree (rec14).

    TRIGGERFISH_BENCH_REC14_BASELINE=/path/to/main python -m benchmarks.run rec14

For each configuration, `benchmarks/record_rows.py` stores invocation records in a fresh store, once with this
tree and once with the baseline's (when TRIGGERFISH_BENCH_REC14_BASELINE names one), in turns: on SQLite the WAL
frames each record's commit wrote (one frame a page; the checkpointer off), the file's pages and rows per record;
on PostgreSQL (when the local server answers) the bytes the schema's tables and indexes hold per record. Counts,
not timings: they repeat within a percent whatever the machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import load_average

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
SCRIPT = HERE / "record_rows.py"
BASELINE = os.environ.get("TRIGGERFISH_BENCH_REC14_BASELINE")

#: (store, records, at once, kept input bytes)
CONFIGURATIONS = [
    ("sqlite", 2000, 1, 0),
    ("sqlite", 2000, 32, 0),
    ("sqlite", 2000, 1, 600),
    ("sqlite", 2000, 32, 600),
    ("postgresql", 4000, 32, 0),
]


def count(tree: Path, store: str, records: int, at_once: int, input_bytes: int) -> dict[str, object] | None:
    command = [sys.executable, str(SCRIPT), store, "--count", str(records), "--at-once", str(at_once)]
    command += ["--input-bytes", str(input_bytes)]
    done = subprocess.run(
        command, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        if store == "postgresql":
            return None  # no server here
        raise RuntimeError(f"record_rows.py failed for {tree}: {done.stderr[-2000:]}")
    found: dict[str, object] = json.loads(done.stdout)
    return found


def cell(store: str, found: dict[str, object]) -> tuple[float, str]:
    """The figure compared (frames per record on SQLite, bytes per record on PostgreSQL) and its table cell."""
    if store == "sqlite":
        frames, pages = float(str(found["frames_per_record"])), float(str(found["pages_per_record"]))
        return frames, f"{frames:,.3f} frames, {pages:.3f} pages"
    stored = float(str(found["bytes_per_record"]))
    return stored, f"{stored:,.0f} bytes"


def main() -> str:
    trees = {"this tree": TREE}
    if BASELINE:
        trees = {"baseline": Path(BASELINE).resolve(), **trees}
    named = ", ".join(f"{name} `{path}`" for name, path in trees.items())
    lines = [
        "## rec14: an invocation record's cost to the store, counted",
        "",
        f"Trees: {named}; load {load_average():.1f} at the start.",
        "",
        "| store, records a write, kept input | " + " | ".join(trees) + " | change |",
        "|---|" + "---:|" * (len(trees) + 1),
    ]
    for store, records, at_once, input_bytes in CONFIGURATIONS:
        label = f"{store}, {at_once}, {input_bytes or 'none'}"
        found = [count(tree, store, records, at_once, input_bytes) for tree in trees.values()]
        if any(result is None for result in found):
            lines.append(f"| {label}: no server | " + " | " * len(trees) + "|")
            continue
        cells = [cell(store, result) for result in found if result is not None]
        change = f"{(cells[-1][0] / cells[0][0] - 1) * 100:+.1f}%" if len(cells) > 1 else ""
        lines.append(f"| {label} | " + " | ".join(text for _, text in cells) + f" | {change} |")
    lines += [
        "",
        f"Load {load_average():.1f} at the end. Per record: WAL frames (4 KiB pages written) and file pages on SQLite,",
        "bytes stored (tables and indexes) on PostgreSQL.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
