"""API keys on a real SQLite store: created and shown once, kept only as a hash, listed, revoked at once."""

from __future__ import annotations

import asyncio
import hashlib
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from triggerfish.errors import InvalidInputError, KeyNotFoundError
from triggerfish.server.keys import ApiKeys, KeyInfo, presented_key
from triggerfish.store import Store, open_store

KEY_SHAPE = re.compile(r"tfk_[0-9a-f]{8}_[A-Za-z0-9_-]{32}")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    yield store
    await store.close()


@pytest.fixture
def keys(store: Store) -> ApiKeys:
    return ApiKeys(store)


async def test_a_created_key_authenticates_as_what_it_was_created_for(keys: ApiKeys) -> None:
    text, info = await keys.create("ci deploys", "deployer", app="shop")
    assert KEY_SHAPE.fullmatch(text)
    assert text.startswith(info.prefix + "_")
    assert (info.name, info.role, info.app, info.revoked_at) == ("ci deploys", "deployer", "shop", None)
    assert await keys.authenticate(text) == info


async def test_every_key_is_different(keys: ApiKeys) -> None:
    made = [await keys.create(f"k{n}", "viewer", app="shop") for n in range(20)]
    assert len({text for text, _ in made}) == len({info.id for _, info in made}) == 20


async def test_listing_shows_prefix_name_role_and_app_but_never_the_secret_or_hash(keys: ApiKeys) -> None:
    shop_text, shop = await keys.create("shop ci", "deployer", app="shop")
    _, blog = await keys.create("blog reader", "viewer", app="blog")
    _, admin = await keys.create("ops", "admin")
    assert await keys.list() == [shop, blog, admin]
    assert await keys.list(app="shop") == [shop]
    listed = shop.as_dict()
    assert set(listed) == {"id", "prefix", "name", "role", "app", "created_at", "revoked_at"}
    rendered = repr(await keys.list()) + repr([k.as_dict() for k in await keys.list()])
    assert shop_text[len(shop.prefix) + 1 :] not in rendered
    assert hashlib.sha256(shop_text.encode()).hexdigest() not in rendered


async def test_the_store_file_holds_the_hash_and_never_the_key(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    text, _ = await ApiKeys(store).create("ci", "deployer", app="shop")
    await store.close()
    stored = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("s.db*")))  # noqa: ASYNC240
    secret = text[len("tfk_12345678_") :]
    assert text.encode() not in stored
    assert secret.encode() not in stored
    assert hashlib.sha256(text.encode()).hexdigest().encode() in stored


async def test_a_revoked_key_fails_at_once_on_another_server_sharing_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    async with await open_store(url) as here, await open_store(url) as there:
        text, info = await ApiKeys(here).create("ci", "invoker", app="shop")
        assert await ApiKeys(there).authenticate(text) == info
        revoked = await ApiKeys(here).revoke(info.prefix)
        assert revoked.revoked_at is not None
        assert await ApiKeys(there).authenticate(text) is None
        assert await ApiKeys(here).authenticate(text) is None
        # Still known, as revoked, so a refusal can say so; and still listed, for the record.
        assert await ApiKeys(there).lookup(text) == revoked
        assert await ApiKeys(there).list() == [revoked]


async def test_a_key_is_revoked_by_id_prefix_or_whole_text_and_revoking_again_changes_nothing(keys: ApiKeys) -> None:
    texts = [await keys.create(f"k{n}", "viewer", app="shop") for n in range(3)]
    by_id = await keys.revoke(texts[0][1].id)
    by_prefix = await keys.revoke(texts[1][1].prefix)
    by_text = await keys.revoke(texts[2][0])
    assert all(info.revoked for info in (by_id, by_prefix, by_text))
    assert await keys.revoke(texts[0][1].id) == by_id
    assert [await keys.authenticate(text) for text, _ in texts] == [None, None, None]


async def test_revoking_an_unknown_or_misnamed_key_says_so(keys: ApiKeys) -> None:
    with pytest.raises(KeyNotFoundError, match="no API key tfk_00000000"):
        await keys.revoke("tfk_00000000")
    with pytest.raises(InvalidInputError, match="by its id"):
        await keys.revoke("shop-ci")


async def test_the_last_working_admin_key_cannot_be_revoked(keys: ApiKeys) -> None:
    _, first = await keys.create("ops", "admin")
    with pytest.raises(InvalidInputError, match="last admin key"):
        await keys.revoke(first.id)
    _, second = await keys.create("ops 2", "admin")
    assert (await keys.revoke(first.id)).revoked
    with pytest.raises(InvalidInputError, match="last admin key"):
        await keys.revoke(second.id)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "tfk_",
        "not a key",
        "tfk_zzzzzzzz_" + "a" * 32,
        "tfk_00000000_" + "a" * 32,  # the right shape, no such key
        "tfk_00000000_" + "a" * 31,
        "\udc80",
    ],
)
async def test_what_is_not_a_key_does_not_authenticate(keys: ApiKeys, bad: str) -> None:
    await keys.create("ci", "viewer", app="shop")
    assert await keys.authenticate(bad) is None


async def test_a_key_with_a_wrong_secret_does_not_authenticate(keys: ApiKeys) -> None:
    text, _ = await keys.create("ci", "viewer", app="shop")
    last = text[-1]
    forged = text[:-1] + ("A" if last != "A" else "B")
    assert await keys.authenticate(forged) is None
    assert await keys.authenticate(text.upper()) is None


@pytest.mark.parametrize(
    ("name", "role", "app", "expected"),
    [
        ("ci", "root", "shop", "role is one of admin, deployer, publisher, invoker, viewer"),
        ("ci", "admin", "shop", "admin key acts on every app"),
        ("ci", "deployer", None, "acts on one app: name it"),
        ("ci", "viewer", "a/b", "invalid app name 'a/b'"),
        ("ci", "viewer", "x" * 65, "invalid app name"),
        ("", "viewer", "shop", "1 to 64 printable characters"),
        ("x" * 65, "viewer", "shop", "1 to 64 printable characters"),
        ("line\nbreak", "viewer", "shop", "printable"),
    ],
)
async def test_bad_key_fields_are_refused_with_the_fix(
    keys: ApiKeys, name: str, role: str, app: str | None, expected: str
) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(expected)):
        await keys.create(name, role, app)
    assert await keys.list() == []


async def test_the_first_start_writes_an_admin_key_readable_only_by_its_owner(keys: ApiKeys, tmp_path: Path) -> None:
    path = tmp_path / "data" / "admin.key"
    text = await keys.ensure_admin(path)
    assert text is not None
    assert path.read_text() == text + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = await keys.authenticate(text)
    assert info is not None
    assert (info.role, info.app) == ("admin", None)
    assert await keys.ensure_admin(path) is None
    assert path.read_text() == text + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["admin.key"]


async def test_no_admin_key_is_made_once_any_key_exists(keys: ApiKeys, tmp_path: Path) -> None:
    await keys.create("reader", "viewer", app="shop")
    assert await keys.ensure_admin(tmp_path / "admin.key") is None
    assert not (tmp_path / "admin.key").exists()


async def test_two_servers_starting_together_make_one_admin_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    async with await open_store(url) as one, await open_store(url) as two:
        made = await asyncio.gather(
            ApiKeys(one).ensure_admin(tmp_path / "one" / "admin.key"),
            ApiKeys(two).ensure_admin(tmp_path / "two" / "admin.key"),
        )
        assert sum(text is not None for text in made) == 1
        assert [info.role for info in await ApiKeys(one).list()] == ["admin"]


async def test_an_unwritable_key_file_leaves_no_key_behind(keys: ApiKeys, tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file, not a directory")
    with pytest.raises(FileExistsError):
        await keys.ensure_admin(tmp_path / "blocked" / "admin.key")
    assert await keys.list() == []
    # Started again with a directory it can write, the server makes its key at once.
    assert await keys.ensure_admin(tmp_path / "data" / "admin.key") is not None


@pytest.mark.parametrize(
    ("authorization", "api_key", "expected"),
    [
        ("Bearer tfk_a", None, "tfk_a"),
        ("bearer   tfk_a  ", None, "tfk_a"),
        (None, "tfk_b", "tfk_b"),
        ("Basic dXNlcjpwYXNz", "tfk_b", "tfk_b"),
        ("Bearer ", None, None),
        (None, None, None),
        ("Bearer tfk_a", "tfk_b", "tfk_a"),
    ],
)
def test_the_key_a_request_presents(authorization: str | None, api_key: str | None, expected: str | None) -> None:
    assert presented_key(authorization, api_key) == expected


def test_key_info_names_its_prefix() -> None:
    info = KeyInfo("1a2b3c4d", "ci", "viewer", "shop", 0.0)
    assert info.prefix == "tfk_1a2b3c4d"
    assert not info.revoked
