"""Keys and sealing: key texts, ids, AES-GCM bound to app and name, and what a wrong key or a changed record does."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from triggerfish.errors import SecretsKeyError
from triggerfish.secrets.keyring import KEY_ENV, Keyring, SecretsKey, find_keyring, make_key_file
from triggerfish.secrets.sealing import Sealed, open_value, seal

VALUE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


def ring(*keys: SecretsKey) -> Keyring:
    return Keyring(keys, "the test")


def test_a_key_reads_back_from_its_text_and_its_id_names_it_without_revealing_it() -> None:
    key = SecretsKey.generate()
    again = SecretsKey.parse(key.text, where="the file")
    assert again.material == key.material
    assert again.id == key.id
    assert len(key.id) == 8
    assert key.id not in key.text
    assert key.text not in repr(key)  # a key in a log line or traceback shows no material
    assert SecretsKey.generate().id != key.id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hunter2",
        "tfk_1a2b3c4d_notasecretskeyatallbutanapikey",
        "tfsk_short",
        "tfsk_" + "!" * 43,
        "tfsk_" + "A" * 60,
    ],
)
def test_what_is_not_a_key_is_refused_without_repeating_it(text: str) -> None:
    with pytest.raises(SecretsKeyError) as refused:
        SecretsKey.parse(text, where="$TRIGGERFISH_SECRETS_KEY")
    message = str(refused.value)
    assert "$TRIGGERFISH_SECRETS_KEY" in message
    if len(text) > 5:
        assert text[5:] not in message


def test_a_ring_seals_with_its_first_key_and_opens_with_any() -> None:
    old, new = SecretsKey.generate(), SecretsKey.generate()
    sealed_old = seal(old, "shop", "STRIPE_KEY", VALUE)
    both = ring(new, old)
    assert both.sealing is new
    assert open_value(both, "shop", "STRIPE_KEY", sealed_old) == VALUE
    assert seal(both.sealing, "shop", "STRIPE_KEY", VALUE).key_id == new.id
    with pytest.raises(SecretsKeyError, match="twice"):
        ring(new, new)


def test_the_ciphertext_holds_nothing_of_the_value_and_two_seals_differ() -> None:
    key = SecretsKey.generate()
    first, second = seal(key, "shop", "STRIPE_KEY", VALUE), seal(key, "shop", "STRIPE_KEY", VALUE)
    assert VALUE.encode() not in first.ciphertext
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_a_sealed_value_opens_only_for_its_app_and_its_name() -> None:
    key = SecretsKey.generate()
    sealed = seal(key, "shop", "STRIPE_KEY", VALUE)
    for app, name in (("blog", "STRIPE_KEY"), ("shop", "OTHER_KEY"), ("sho", "pSTRIPE_KEY")):
        with pytest.raises(SecretsKeyError, match="does not open") as refused:
            open_value(ring(key), app, name, sealed)
        assert VALUE not in str(refused.value)


def test_a_changed_ciphertext_or_nonce_fails_whole() -> None:
    key = SecretsKey.generate()
    sealed = seal(key, "shop", "STRIPE_KEY", VALUE)
    for changed in (
        Sealed(sealed.key_id, sealed.nonce, bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]),
        Sealed(sealed.key_id, bytes(12), sealed.ciphertext),
        Sealed(sealed.key_id, sealed.nonce, sealed.ciphertext[:-1]),
    ):
        with pytest.raises(SecretsKeyError, match="was changed"):
            open_value(ring(key), "shop", "STRIPE_KEY", changed)


def test_a_value_sealed_with_a_key_the_server_lacks_names_both_keys() -> None:
    theirs, ours = SecretsKey.generate(), SecretsKey.generate()
    sealed = seal(theirs, "shop", "STRIPE_KEY", VALUE)
    with pytest.raises(SecretsKeyError) as refused:
        open_value(ring(ours), "shop", "STRIPE_KEY", sealed)
    assert theirs.id in str(refused.value)
    assert ours.id in str(refused.value)
    assert "same secrets key" in str(refused.value)


def test_a_damaged_record_is_named_as_such() -> None:
    for document in ({}, {"key_id": "x", "nonce": "not base64!", "ciphertext": ""}, {"key_id": 1, "nonce": 2}):
        with pytest.raises(SecretsKeyError, match="damaged"):
            Sealed.from_json(document, where="record secret/shop/X")


def test_key_files_are_private_and_the_environment_comes_first(tmp_path: Path) -> None:
    first, second = SecretsKey.generate(), SecretsKey.generate()
    path = tmp_path / "keys" / "secrets.key"
    make_key_file(path, [first, second])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    from_file = find_keyring({}, None, path)
    assert from_file is not None
    assert from_file.ids == (first.id, second.id)
    from_env = find_keyring({KEY_ENV: f" {second.text} , {first.text}"}, None, path)
    assert from_env is not None
    assert from_env.ids == (second.id, first.id)
    named = tmp_path / "elsewhere.key"
    named.write_text(f"# the cluster's key\n\n{second.text}\n")
    chosen = find_keyring({}, named, path)
    assert chosen is not None
    assert chosen.ids == (second.id,)
    assert find_keyring({}, None, tmp_path / "absent.key") is None
    with pytest.raises(SecretsKeyError, match="cannot be read"):
        find_keyring({}, tmp_path / "missing.key", path)
    (tmp_path / "empty.key").write_text("# nothing\n")
    with pytest.raises(SecretsKeyError, match="holds no secrets key"):
        find_keyring({}, tmp_path / "empty.key", None)
