"""The secret store on a real SQLite file: sealed at rest, listed without values, refused with a wrong key, resealed
in a key rotation, and a first key made once."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from triggerfish._json import dumps, loads
from triggerfish.errors import InvalidInputError, SecretNotSetError, SecretsKeyError
from triggerfish.names import SECRETS_NAMESPACE
from triggerfish.secrets.keyring import KEY_ENV, Keyring, SecretsKey, make_key_file
from triggerfish.secrets.store import MAX_VALUE_BYTES, SecretStore, open_secrets
from triggerfish.store import Store, open_store

VALUE = "sk_live_51HrM4kzN0tAr3alK3y"


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await open_store(f"sqlite:///{tmp_path}/store.db") as opened:
        yield opened


def files(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob("store.db*")))


async def test_a_value_is_sealed_at_rest_and_never_listed(store: Store, tmp_path: Path) -> None:
    secrets = await open_secrets(store.kv, environ={}, key_file=None, default_file=tmp_path / "secrets.key")
    first = await secrets.set("shop", "STRIPE_KEY", VALUE)
    second = await secrets.set("shop", "STRIPE_KEY", VALUE + "-rotated")
    assert (first.version, second.version) == (1, 2)
    assert second.created_at == first.created_at
    listed = [info.as_dict() for info in await secrets.list("shop")]
    assert [entry["name"] for entry in listed] == ["STRIPE_KEY"]
    assert VALUE not in repr(listed)
    assert await secrets.values("shop", ("STRIPE_KEY",)) == {"STRIPE_KEY": VALUE + "-rotated"}
    assert await secrets.list("blog") == []
    await store.close()
    stored = files(tmp_path)
    assert b"STRIPE_KEY" in stored  # the name is not secret
    assert VALUE.encode() not in stored  # the value is
    assert (tmp_path / "secrets.key").read_text().split("\n")[1].encode() not in stored  # nor is the key


async def test_another_app_cannot_read_a_secret_even_copied_into_its_record(store: Store, tmp_path: Path) -> None:
    secrets = await open_secrets(store.kv, environ={}, key_file=None, default_file=tmp_path / "secrets.key")
    await secrets.set("shop", "STRIPE_KEY", VALUE)
    with pytest.raises(SecretNotSetError, match="app 'blog' has no secret STRIPE_KEY"):
        await secrets.values("blog", ("STRIPE_KEY",))
    # Someone with write access to the store copies shop's record into blog's place: it does not open there.
    record = await store.kv.get(SECRETS_NAMESPACE, "secret/shop/STRIPE_KEY")
    assert record is not None
    moved = {**loads(record.value, where="test"), "app": "blog"}
    await store.kv.put(SECRETS_NAMESPACE, "secret/blog/STRIPE_KEY", dumps(moved))
    with pytest.raises(SecretsKeyError, match="copied from another app") as refused:
        await secrets.values("blog", ("STRIPE_KEY",))
    assert VALUE not in str(refused.value)


async def test_a_tampered_record_fails_with_a_precise_error(store: Store, tmp_path: Path) -> None:
    secrets = await open_secrets(store.kv, environ={}, key_file=None, default_file=tmp_path / "secrets.key")
    await secrets.set("shop", "DB_PASSWORD", VALUE)
    record = await store.kv.get(SECRETS_NAMESPACE, "secret/shop/DB_PASSWORD")
    assert record is not None
    document = loads(record.value, where="test")
    text = document["ciphertext"]
    document["ciphertext"] = ("A" if text[0] != "A" else "B") + text[1:]
    await store.kv.put(SECRETS_NAMESPACE, record.key, dumps(document))
    with pytest.raises(SecretsKeyError, match="secret DB_PASSWORD of app 'shop' does not open"):
        await secrets.values("shop", ("DB_PASSWORD",))


async def test_a_missing_secret_names_itself_and_how_to_set_it(store: Store) -> None:
    secrets = SecretStore(store.kv, Keyring((SecretsKey.generate(),), "test"))
    await secrets.set("shop", "A_KEY", "a")
    with pytest.raises(SecretNotSetError) as missing:
        await secrets.values("shop", ("A_KEY", "B_KEY"))
    assert "B_KEY" in str(missing.value)
    assert "triggerfish secrets set shop B_KEY" in str(missing.value)
    with pytest.raises(SecretNotSetError, match="its secrets are: A_KEY"):
        await secrets.remove("shop", "B_KEY")
    assert (await secrets.remove("shop", "A_KEY")).name == "A_KEY"
    assert await secrets.list("shop") == []


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("STRIPE_KEY", "", "1 to"),
        ("STRIPE_KEY", "x" * (MAX_VALUE_BYTES + 1), f"not {MAX_VALUE_BYTES + 1}"),
        ("STRIPE_KEY", "before\x00after", "NUL"),
        ("STRIPE_KEY", "\ud800hidden", "lone surrogate"),
        ("STRIPE_KEY", 1234, "must be a string"),
        ("1KEY", "hidden-value", "not a valid secret name"),
        ("../KEY", "hidden-value", "not a valid secret name"),
        ("AWS_LAMBDA_FUNCTION_NAME", "hidden-value", "the runtime sets"),
        ("TRIGGERFISH_APP", "hidden-value", "the runtime sets"),
    ],
)
async def test_bad_names_and_values_are_refused_without_repeating_the_value(
    store: Store, name: str, value: object, said: str
) -> None:
    secrets = SecretStore(store.kv, Keyring((SecretsKey.generate(),), "test"))
    with pytest.raises(InvalidInputError) as refused:
        await secrets.set("shop", name, value)  # type: ignore[arg-type]
    assert said in str(refused.value)
    assert "hidden" not in str(refused.value)
    assert "before" not in str(refused.value)
    assert await secrets.list("shop") == []


async def test_a_server_with_a_different_key_refuses_to_start(store: Store, tmp_path: Path) -> None:
    mine = await open_secrets(store.kv, environ={}, key_file=None, default_file=tmp_path / "a" / "secrets.key")
    assert mine.keyring is not None
    other = SecretsKey.generate()
    with pytest.raises(SecretsKeyError) as refused:
        await open_secrets(store.kv, environ={KEY_ENV: other.text}, key_file=None, default_file=None)
    message = str(refused.value)
    assert mine.keyring.sealing.id in message
    assert other.id in message
    assert other.text not in message


async def test_a_server_without_a_key_starts_and_says_how_to_get_one(store: Store, tmp_path: Path) -> None:
    first = await open_secrets(store.kv, environ={}, key_file=None, default_file=tmp_path / "a" / "secrets.key")
    await first.set("shop", "STRIPE_KEY", VALUE)
    assert first.keyring is not None
    second = await open_secrets(store.kv, environ={}, key_file=None, default_file=tmp_path / "b" / "secrets.key")
    assert second.keyring is None
    assert not (tmp_path / "b" / "secrets.key").exists()  # it made none: its own key would be the wrong one
    assert [info.name for info in await second.list("shop")] == ["STRIPE_KEY"]  # names need no key
    for attempt in (second.values("shop", ("STRIPE_KEY",)), second.set("shop", "OTHER", "x")):
        with pytest.raises(SecretsKeyError, match=f"sealed with key {first.keyring.sealing.id}.*TRIGGERFISH"):
            await attempt


async def test_servers_starting_together_make_one_first_key(store: Store, tmp_path: Path) -> None:
    opened = await asyncio.gather(
        *(
            open_secrets(store.kv, environ={}, key_file=None, default_file=tmp_path / str(n) / "secrets.key")
            for n in range(4)
        )
    )
    with_key = [s for s in opened if s.keyring is not None]
    assert len(with_key) == 1
    made = [tmp_path / str(n) / "secrets.key" for n in range(4) if (tmp_path / str(n) / "secrets.key").exists()]
    assert len(made) == 1
    assert stat.S_IMODE(made[0].stat().st_mode) == 0o600


async def test_a_rotation_reseals_every_secret_and_retires_the_old_key(store: Store, tmp_path: Path) -> None:
    old_file = tmp_path / "secrets.key"
    old = await open_secrets(store.kv, environ={}, key_file=None, default_file=old_file)
    for app, name in (("shop", "STRIPE_KEY"), ("shop", "DB_URL"), ("blog", "SMTP_PASSWORD")):
        await old.set(app, name, f"{app}-{name}-value")
    assert old.keyring is not None
    old_key = old.keyring.sealing
    # 1. Every node gets the new key first, the old one after it.
    new_key = SecretsKey.generate()
    make_key_file(old_file, [new_key, old_key])
    both = await open_secrets(store.kv, environ={}, key_file=None, default_file=old_file)
    assert await both.values("shop", ("STRIPE_KEY",)) == {"STRIPE_KEY": "shop-STRIPE_KEY-value"}
    # 2. Reseal: everything now opens with the new key alone.
    result = await both.reseal()
    assert (result.key_id, result.resealed, result.unchanged, result.unreadable) == (new_key.id, 3, 0, [])
    assert {info.key_id for app in ("shop", "blog") for info in await both.list(app)} == {new_key.id}
    assert (await both.reseal()).unchanged == 3
    # 3. The old key goes; a node still holding only the old key refuses to start.
    only_new = await open_secrets(store.kv, environ={KEY_ENV: new_key.text}, key_file=None, default_file=None)
    assert await only_new.values("blog", ("SMTP_PASSWORD",)) == {"SMTP_PASSWORD": "blog-SMTP_PASSWORD-value"}
    assert [info.version for info in await only_new.list("shop")] == [1, 1]  # a reseal is not a new version
    with pytest.raises(SecretsKeyError, match=new_key.id):
        await open_secrets(store.kv, environ={KEY_ENV: old_key.text}, key_file=None, default_file=None)


async def test_a_reseal_lists_what_it_cannot_open_and_keeps_the_old_key_in_use(store: Store) -> None:
    stranger, ours = SecretsKey.generate(), SecretsKey.generate()
    await SecretStore(store.kv, Keyring((stranger,), "a lost key")).set("shop", "LOST", "gone")
    secrets = await open_secrets(store.kv, environ={KEY_ENV: ours.text}, key_file=None, default_file=None)
    await secrets.set("shop", "KEPT", "here")
    result = await secrets.reseal()
    assert result.unreadable == [("shop", "LOST", stranger.id)]
    assert result.unchanged == 1
