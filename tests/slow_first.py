"""The test files that take longest, run first, so four xdist workers end together.

scripts/test runs the suite with `--dist loadfile --no-loadscope-reorder`: each file goes whole to the next free
worker, in collection order, and its module-scoped servers start once. With the longest files first (the
longest-processing-time rule), the last files handed out are short ones; in collection order a 5-minute file
could start when the other workers were nearly done, and the run waited for it alone. The figures are a full
run's test time per file (`--durations`, docs/benchmarks.md, "ci"); a file not listed keeps its place after
these, and a file that went away is passed over, so a stale list costs balance, never a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: Longest first (seconds of test time in a full run on a loaded 2-core machine: test_docs.py about 640).
SLOWEST_FILES = (
    "tests/test_docs.py",
    "tests/server/test_fuzz.py",
    "tests/store/test_scoped.py",
    "tests/durable/test_crash_matrix.py",
    "tests/cluster/test_postgres_cluster.py",
    "tests/objects/test_aws_cli.py",
    "tests/server/test_serve.py",
    "tests/deploy/test_server_deploys.py",
    "tests/store/test_postgres.py",
    "tests/test_readme.py",
    "tests/server/test_host.py",
    "tests/ui/test_dashboard_dev.py",
    "tests/workflows/test_platform.py",
    "tests/cli/test_init.py",
    "tests/cli/test_versions_verbs.py",
    "tests/examples/test_shop_workflow.py",
    "tests/deploy/test_deps.py",
    "tests/durable/test_sdk.py",
    "tests/cli/test_secrets_verbs.py",
    "tests/test_ruleset.py",
    "tests/server/test_dev.py",
    "tests/server/test_secrets.py",
    "tests/ui/test_dashboard_serve.py",
    "tests/examples/test_shop_dev.py",
    "tests/changes/test_pg_crash.py",
    "tests/objects/test_memory.py",
    "tests/cli/test_progress.py",
    "tests/aws/test_dynamodb.py",
    "tests/aws/test_aws_cli.py",
    "tests/server/test_roles.py",
)
_RANK = {path: rank for rank, path in enumerate(SLOWEST_FILES)}


def slowest_files_first(items: list[pytest.Item], root: Path) -> None:
    """Reorder `items` in place: the files of SLOWEST_FILES first, in its order, then the rest as collected.

    A stable sort on whole files: the tests of each file stay together and in their own order."""
    unlisted = len(SLOWEST_FILES)

    def rank(item: pytest.Item) -> int:
        path = item.path
        return _RANK.get(path.relative_to(root).as_posix(), unlisted) if path.is_relative_to(root) else unlisted

    items.sort(key=rank)
