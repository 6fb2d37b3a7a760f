"""The bubblewrap command line a box gets: what is bound, what is not, who it runs as; and boxes refused
for bad settings, a missing bubblewrap, or root without a uid."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from triggerfish.errors import IsolationError
from triggerfish.isolation.box import BOX_TMP, Box, prepare, runtime_paths


def _argv(box: Box, **options: object) -> list[str]:
    launch = prepare(box, ["true"], env={}, **options)  # type: ignore[arg-type]
    launch.started()
    return launch.argv


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, arg in enumerate(argv) if arg == flag]


def _box() -> Box:
    return Box(uid=1_900_000_001, gid=1_900_000_001) if os.geteuid() == 0 else Box()


def test_a_box_binds_the_runtime_and_the_app_read_only_and_nothing_of_the_data_directory(
    boxed: None, tmp_path: Path
) -> None:
    data = tmp_path / "server"
    bundle = data / "bundles" / "ab12"
    bundle.mkdir(parents=True)
    (data / "admin.key").write_text("tfk_secret")
    argv = _argv(_box(), read_only=[str(bundle)])
    read_only = {target: source for source, target in _pairs(argv, "--ro-bind")}
    assert read_only[str(bundle)] == str(bundle)
    assert "/usr" in read_only
    assert any(sys.prefix == target or sys.prefix.startswith(target + "/") for target in read_only)
    mounted = {target for _, target in _pairs(argv, "--ro-bind")} | {t for _, t in _pairs(argv, "--bind")}
    assert not any(target in (str(data), str(data / "admin.key")) for target in mounted)
    assert not any(str(data / "admin.key").startswith(target + "/") for target in mounted)
    assert _pairs(argv, "--bind") == []  # nothing writable but /tmp
    assert argv[argv.index("--tmpfs") - 3 : argv.index("--tmpfs") + 2] == [
        str(512 * 1024 * 1024),
        "--perms",
        "1777",
        "--tmpfs",
        BOX_TMP,
    ]
    assert "--share-net" not in argv
    assert "--unshare-net" not in argv
    assert {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"} <= set(argv)
    assert "--seccomp" in argv
    assert argv[argv.index("--remount-ro") + 1] == "/"


def test_a_box_without_network_gets_its_own_network_namespace(boxed: None) -> None:
    assert "--unshare-net" in _argv(_box_with(network=False))


def test_as_root_the_box_switches_to_its_uid_with_no_groups_capabilities_or_new_privileges(boxed: None) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    argv = _argv(Box(uid=1_900_000_007, gid=1_900_000_008))
    command = argv[argv.index("--") + 1 :]
    assert command[0].endswith("setpriv")
    assert {"--reuid=1900000007", "--regid=1900000008", "--clear-groups", "--no-new-privs"} <= set(command)
    assert "--unshare-user" not in argv  # privileged: the mounts are made as root, then the uid changes
    with pytest.raises(IsolationError, match="needs a uid and gid of its own"):
        _argv(Box())


def test_hidden_directories_are_covered_and_the_working_directory_can_be_chosen(boxed: None, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".triggerfish").mkdir(parents=True)
    box = _box_with(read_only=(str(project),), hide=(str(project / ".triggerfish"),))
    argv = _argv(box, chdir=str(project))
    hidden = argv.index(str(project / ".triggerfish"))
    assert argv[hidden - 1] == "--tmpfs"
    assert argv[hidden + 1 : hidden + 3] == ["--remount-ro", str(project / ".triggerfish")]
    assert argv[argv.index("--chdir") + 1] == str(project)


def test_a_missing_bubblewrap_is_named_with_the_package_to_install() -> None:
    with pytest.raises(IsolationError, match=r"apt-get install bubblewrap.*--no-isolation"):
        prepare(_box_with(bwrap="/nonexistent/bwrap"), ["true"], env={})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"uid": 0, "gid": 0}, "never root"),
        ({"uid": -1, "gid": -1}, "uid is a number from 1"),
        ({"uid": True, "gid": 5}, "uid is a number from 1"),
        ({"uid": "1000", "gid": 1000}, "uid is a number from 1"),
        ({"uid": 2**32, "gid": 1000}, "uid is a number from 1"),
        ({"uid": 1000}, "both a uid and a gid"),
        ({"tmp_mb": 0}, "tmp_mb is a whole number of at least 1"),
        ({"tmp_mb": 1.5}, "tmp_mb is a whole number"),
        ({"max_tasks": 2}, "max_tasks is a whole number of at least 8"),
    ],
)
def test_bad_box_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Box(**settings)  # type: ignore[arg-type]


def test_the_runtime_is_this_python_and_the_package() -> None:
    paths = runtime_paths()
    assert sys.prefix in paths
    assert str(Path(__file__).resolve().parents[2] / "triggerfish") in [str(Path(p).resolve()) for p in paths]
    assert all(os.path.isdir(path) for path in paths)
    assert not any(path in ("/", os.getcwd()) for path in paths)


def _box_with(**settings: Any) -> Box:
    return dataclasses.replace(_box(), **settings)
