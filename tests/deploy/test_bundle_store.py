"""The bundle store: each app's bundles are its own, kept read-only beside their archive; a tree that changed
on disk is found out, set aside and not served; bundles of older servers become each app's own."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.deploy.tarballs import archive, file, sha
from triggerfish.deploy.bundle import Bundle, BundleLimits, pack
from triggerfish.deploy.bundles import BundleStore
from triggerfish.deploy.unpack import PARTIAL_PREFIX
from triggerfish.deploy.verify import TamperedBundleError
from triggerfish.errors import BundleError


def _bundle(root: Path) -> Bundle:
    for name, text in {
        "app.py": "import triggerfish\n",
        "lib/prices.py": "RATE = 2\n",
        "run.sh": "#!/bin/sh\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "run.sh").chmod(0o755)
    return pack(root)


@pytest.fixture
def store(tmp_path: Path) -> BundleStore:
    return BundleStore(tmp_path / "bundles")


def test_bundles_are_kept_by_app_and_hash(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    assert not store.has("shop", bundle.sha256)
    path = store.put("shop", bundle.sha256, bundle.data)
    assert path == store.path("shop", bundle.sha256) == tmp_path / "bundles" / "by-app" / "shop" / bundle.sha256
    assert store.has("shop", bundle.sha256)
    assert (path / "lib" / "prices.py").read_text(encoding="utf-8") == "RATE = 2\n"
    # Another app does not see it, not even by its hash: the same answer as for a bundle nobody uploaded.
    assert not store.has("blog", bundle.sha256)
    assert not store.path("blog", bundle.sha256).exists()
    # The archive is kept beside the tree, read-only: it is what the tree is checked against.
    assert store.archive_path("shop", bundle.sha256).read_bytes() == bundle.data
    assert store.archive_path("shop", bundle.sha256).stat().st_mode & 0o777 == 0o444
    assert store.put("shop", bundle.sha256, bundle.data) == path  # a second put changes nothing


def test_a_bad_app_name_or_hash_never_becomes_a_path(store: BundleStore) -> None:
    with pytest.raises(BundleError, match="expected 64 lowercase hex digits"):
        store.path("shop", "../../etc")
    for app in ("../blog", ".", "", "a/b", "x" * 65):
        with pytest.raises(ValueError, match="invalid app name"):
            store.path(app, "0" * 64)


def test_a_refused_bundle_keeps_nothing(tmp_path: Path, store: BundleStore) -> None:
    data = archive([file("app.py"), file("../escape.py")])
    with pytest.raises(BundleError, match="climbs out"):
        store.put("shop", sha(data), data)
    assert list(store.app_root("shop").iterdir()) == []
    bundle = _bundle(tmp_path / "app")
    with pytest.raises(BundleError, match="damaged or cut short"):
        store.put("shop", bundle.sha256, bundle.data[:-1])
    assert list(store.app_root("shop").iterdir()) == []


def test_concurrent_puts_of_one_bundle_all_succeed_with_one_directory(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: store.put("shop", bundle.sha256, bundle.data), range(4)))
    assert set(paths) == {store.path("shop", bundle.sha256)}
    assert sorted(p.name for p in store.app_root("shop").iterdir()) == [bundle.sha256, f"{bundle.sha256}.tar.gz"]


def test_a_verified_bundle_is_its_directory(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    store.put("shop", bundle.sha256, bundle.data)
    assert store.verify("shop", bundle.sha256) == store.path("shop", bundle.sha256)


def _writable(path: Path) -> None:
    for directory in [path, *path.parents]:
        if directory.name == "by-app":
            break
        directory.chmod(0o755)


def _change_content(tree: Path) -> None:
    _writable(tree / "lib")
    (tree / "lib" / "prices.py").chmod(0o644)
    (tree / "lib" / "prices.py").write_text("RATE = 0\n", encoding="utf-8")
    (tree / "lib" / "prices.py").chmod(0o444)
    (tree / "lib").chmod(0o555)


def _add_module(tree: Path) -> None:
    tree.chmod(0o755)
    (tree / "json.py").write_text("raise SystemExit('shadowing the standard library')\n", encoding="utf-8")
    (tree / "json.py").chmod(0o444)
    tree.chmod(0o555)


def _remove_file(tree: Path) -> None:
    tree.chmod(0o755)
    (tree / "run.sh").unlink()
    tree.chmod(0o555)


def _make_writable(tree: Path) -> None:
    (tree / "app.py").chmod(0o666)


def _replace_with_link(tree: Path) -> None:
    _writable(tree / "lib")
    (tree / "lib" / "prices.py").unlink()
    (tree / "lib" / "prices.py").symlink_to("/etc/hostname")


def _plant_bytecode_in_data_dir(tree: Path) -> None:
    # Only a `__pycache__` counts as a cache; anything else added is tampering.
    tree.chmod(0o755)
    (tree / "cache").mkdir()
    (tree / "cache" / "x.pyc").write_bytes(b"\0")


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "content": (_change_content, "lib/prices.py has other content"),
    "added": (_add_module, "json.py was added"),
    "removed": (_remove_file, "run.sh is missing"),
    "mode": (_make_writable, "app.py is mode 666, not 444"),
    "link": (_replace_with_link, "lib/prices.py was replaced by a symbolic link"),
    "added-dir": (_plant_bytecode_in_data_dir, "cache was added"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_tree_is_refused_set_aside_and_unpacked_afresh_by_the_next_upload(
    tmp_path: Path, store: BundleStore, case: str
) -> None:
    bundle = _bundle(tmp_path / "app")
    tree = store.put("shop", bundle.sha256, bundle.data)
    tamper, difference = TAMPERING[case]
    tamper(tree)
    with pytest.raises(TamperedBundleError, match="does not match what was deployed") as caught:
        store.verify("shop", bundle.sha256)
    assert difference in caught.value.differences
    assert caught.value.phase == "unpack"
    # Set aside for whoever looks into it, so the bundle is no longer there...
    assert not store.has("shop", bundle.sha256)
    aside = [p for p in store.app_root("shop").iterdir() if p.name.startswith(".tampered-")]
    assert len(aside) == 1
    assert sorted(p.name for p in aside[0].iterdir()) == [bundle.sha256, f"{bundle.sha256}.tar.gz"]
    # ...and the next upload unpacks it afresh.
    store.put("shop", bundle.sha256, bundle.data)
    assert store.verify("shop", bundle.sha256) == tree
    assert (tree / "lib" / "prices.py").read_text(encoding="utf-8") == "RATE = 2\n"


def test_a_changed_archive_is_found_out_too(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    store.put("shop", bundle.sha256, bundle.data)
    kept = store.archive_path("shop", bundle.sha256)
    kept.chmod(0o644)
    kept.write_bytes(_bundle(tmp_path / "other").data + b"\0")
    with pytest.raises(TamperedBundleError, match="no longer has that sha256"):
        store.verify("shop", bundle.sha256)


def test_bytecode_python_wrote_into_the_tree_is_dropped_not_trusted(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    tree = store.put("shop", bundle.sha256, bundle.data)
    for directory in (tree, tree / "lib"):
        directory.chmod(0o755)
        (directory / "__pycache__").mkdir()
        (directory / "__pycache__" / "planted.cpython-311.pyc").write_bytes(b"\0")
        directory.chmod(0o555)
    assert store.verify("shop", bundle.sha256) == tree
    assert not list(tree.rglob("__pycache__"))
    assert (tree / "lib").stat().st_mode & 0o777 == 0o555


def test_removing_an_app_forgets_its_bundles_only(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    store.put("shop", bundle.sha256, bundle.data)
    store.put("blog", bundle.sha256, bundle.data)
    store.remove_app("shop")
    assert not store.has("shop", bundle.sha256)
    assert store.has("blog", bundle.sha256)


def _legacy(store: BundleStore, bundle: Bundle) -> Path:
    """The bundle as a server from before per-app bundles left it: unpacked, writable, in root/<sha256>."""
    legacy = store.root / bundle.sha256
    shutil.copytree(store.put("tmp", bundle.sha256, bundle.data), legacy)
    store.remove_app("tmp")
    for path in [legacy, *legacy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o111 else 0o644)
    return legacy


def test_a_legacy_bundle_that_packs_again_to_its_hash_becomes_each_apps_own(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    legacy = _legacy(store, bundle)
    (legacy / "__pycache__").mkdir()  # what the old server's zygote wrote beside the code
    (legacy / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    assert store.legacy_bundles() == [bundle.sha256]
    assert store.legacy_path(bundle.sha256) == legacy
    assert store.adopt_legacy("shop", bundle.sha256)
    assert store.adopt_legacy("blog", bundle.sha256)
    for app in ("shop", "blog"):
        assert store.verify(app, bundle.sha256) == store.path(app, bundle.sha256)
    store.remove_legacy(bundle.sha256)
    assert store.legacy_bundles() == []


def test_a_legacy_bundle_packed_otherwise_cannot_be_adopted(tmp_path: Path, store: BundleStore) -> None:
    # Packed with another compression level than `pack` uses: packing the files again gives other bytes.
    data = archive([file("app.py", b"import triggerfish\n")], compresslevel=1, pax=False)
    store.put("tmp", sha(data), data)
    shutil.copytree(store.path("tmp", sha(data)), store.root / sha(data))
    assert not store.adopt_legacy("shop", sha(data))
    assert not store.has("shop", sha(data))
    assert store.legacy_path(sha(data)) == store.root / sha(data)
    assert not store.adopt_legacy("shop", "0" * 64)  # no such legacy bundle


def test_sweep_removes_what_interrupted_uploads_left_but_not_recent_ones(tmp_path: Path, store: BundleStore) -> None:
    assert store.sweep() == 0
    bundle = _bundle(tmp_path / "app")
    store.put("shop", bundle.sha256, bundle.data)
    app_root = store.app_root("shop")
    old, recent = app_root / f"{PARTIAL_PREFIX}abc-1", app_root / f"{PARTIAL_PREFIX}abc-2"
    old_archive = app_root / ".archive-xyz"
    legacy_partial = store.root / f"{PARTIAL_PREFIX}def-1"
    for directory in (old, recent, legacy_partial):
        directory.mkdir(parents=True)
        (directory / "app.py").write_text("", encoding="utf-8")
        directory.chmod(0o555)
    old_archive.write_bytes(b"half")
    past = time.time() - 7200
    for path in (old, old_archive, legacy_partial):
        os.utime(path, (past, past))
    assert store.sweep() == 3
    assert not old.exists()
    assert not old_archive.exists()
    assert not legacy_partial.exists()
    assert recent.exists()
    assert store.has("shop", bundle.sha256)


def test_the_stores_limits_apply_to_what_it_is_given(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles", limits=BundleLimits(max_files=2))
    bundle = _bundle(tmp_path / "app")
    with pytest.raises(BundleError, match="past the limit of 2 members per bundle"):
        store.put("shop", bundle.sha256, bundle.data)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_given_to_another_user_is_tampering(tmp_path: Path, store: BundleStore) -> None:
    bundle = _bundle(tmp_path / "app")
    tree = store.put("shop", bundle.sha256, bundle.data)
    os.chown(tree / "app.py", 12345, 12345)  # such as the uid an app runs as: it could then change it
    with pytest.raises(TamperedBundleError) as caught:
        store.verify("shop", bundle.sha256)
    assert caught.value.differences == ["app.py is owned by uid 12345, not the server's"]
