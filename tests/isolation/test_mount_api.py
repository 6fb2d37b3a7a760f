"""The mount API wrapper: the parameters of a worker's /tmp (pure), and real detached tmpfs trees attached by a
child in a user and mount namespace of its own, as a boxed worker attaches the one the server made for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isolation.conftest import require_root
from tests.runtime.conftest import eventually
from triggerfish.isolation import mount_api


def test_a_worker_s_tmp_is_sized_sticky_and_owned_by_the_app() -> None:
    assert mount_api.tmpfs_parameters(512, 1_900_000_001, 1_900_000_002) == [
        ("size", "512m"),
        ("mode", "1777"),
        ("uid", "1900000001"),
        ("gid", "1900000002"),
    ]
    assert mount_api.tmpfs_parameters(1) == [("size", "1m"), ("mode", "1777")]


@pytest.mark.parametrize(
    ("size", "owner", "message"),
    [
        (0, None, r"a worker's /tmp is a whole number of MiB from 1 to 10240, not 0"),
        (10_241, None, r"not 10241"),
        (True, None, r"not True"),
        (512, -1, r"a tmpfs's uid is a number from 0 to 4294967294, not -1"),
    ],
)
def test_bad_sizes_and_owners_are_refused_with_the_range(size: object, owner: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mount_api.tmpfs_parameters(size, owner)  # type: ignore[arg-type]


@pytest.mark.parametrize("inside", ["/tmp/x", "", "a/../../etc"])
def test_a_plan_binds_only_inside_tmp(inside: str) -> None:
    with pytest.raises(ValueError, match="is not a path inside /tmp"):
        mount_api.TmpPlan(size_mb=1, binds=(("/srv/app", inside),))


def test_the_call_numbers_are_the_filter_s_and_unknown_machines_have_none() -> None:
    assert mount_api.call_numbers("x86_64") == {
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "move_mount": 429,
        "open_tree": 428,
        "mount_setattr": 442,
    }
    assert mount_api.call_numbers("aarch64") == mount_api.call_numbers("x86_64")  # the generic numbers
    assert mount_api.call_numbers("s390x") is None


CHILD = """
import json, os, sys
from triggerfish.runtime import private_tmp

fd, uid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
private_tmp.limits.libc().prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: as a worker forked after exec is
private_tmp.enter_mount(fd)
seen = {"listing": sorted(os.listdir("/tmp")), "fd_closed": not os.path.exists(f"/proc/self/fd/{fd}")}
written = 0
try:
    with open("/tmp/full", "wb") as f:
        while written < 64 << 20:
            f.write(b"x" * (1 << 20))
            f.flush()
            written += 1 << 20
except OSError as exc:
    seen["error"] = exc.strerror
seen["written"] = written
for name in ("bound/data.txt", "bound/new.txt"):
    try:
        seen[name] = open("/tmp/" + name, "a+").read()
    except OSError as exc:
        seen[name] = exc.strerror
seen["hidden"] = sorted(os.listdir("/tmp/bound/secret")) if os.path.isdir("/tmp/bound/secret") else None
print(json.dumps(seen))
"""


def test_a_detached_tree_attached_by_an_unprivileged_child_is_its_tmp(tmp_path: Path) -> None:
    require_root()
    bound = tmp_path / "bound"
    (bound / "secret").mkdir(parents=True)
    (bound / "secret" / "key").write_text("hidden")
    (bound / "data.txt").write_text("from the host")
    (bound / "data.txt").chmod(0o666)  # writable by anyone: only the read-only bind refuses
    bound.chmod(0o777)
    tmp_path.chmod(0o755)
    plan = mount_api.TmpPlan(size_mb=4, uid=65534, gid=65534, binds=((str(bound), "bound"),), hide=("bound/secret",))
    fd = mount_api.make_tmp(plan)
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(fd), "65534"], pass_fds=[fd], capture_output=True, text=True, timeout=60
        )
    finally:
        os.close(fd)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["listing"] == ["bound"]  # nothing of the host's /tmp, and the bound directory
    assert seen["fd_closed"]
    assert seen["error"] == "No space left on device"
    assert 3 << 20 <= seen["written"] <= 4 << 20
    assert seen["bound/data.txt"] == "Read-only file system"  # opened for appending: refused, read-only
    assert seen["bound/new.txt"] == "Read-only file system"
    assert seen["hidden"] == []
    assert not (tmp_path / "full").exists()
    assert (bound / "secret" / "key").read_text() == "hidden"


def test_a_server_that_is_not_root_is_told_why_it_cannot_make_a_tmp() -> None:
    probe = (
        "import os; from triggerfish.isolation import mount_api; os.setresgid(65534, 65534, 65534); "
        "os.setresuid(65534, 65534, 65534); print(mount_api.unavailable(mount_api.TmpPlan(size_mb=1)))"
    )
    require_root()  # to become a user that is not
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fsopen(tmpfs): Operation not permitted"


async def test_the_tree_for_the_next_cold_start_is_made_ahead_and_closed_with_the_runner() -> None:
    require_root()
    trees = mount_api.TmpTrees(mount_api.TmpPlan(size_mb=1))
    first = trees.take(512)
    await eventually(lambda: 512 in trees._spares, 5.0)  # made soon after, off the next cold start's path
    spare = trees._spares[512]
    second = trees.take(512)
    assert second == spare
    assert first != second
    for fd in (first, second):
        assert os.fstat(fd).st_mode & 0o7777 == 0o1777  # each the root of a tmpfs of its own
        os.close(fd)
    await eventually(lambda: 512 in trees._spares, 5.0)
    left = trees._spares[512]
    trees.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(left)
