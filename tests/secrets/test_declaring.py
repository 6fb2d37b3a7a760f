"""Declaring secrets: the setting in decorators and triggerfish.toml, its checks, its trip to the zygote and back,
and the Spawn frame that carries values to a worker without ever showing them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import triggerfish
from triggerfish.config import load_config, resolve_functions
from triggerfish.errors import DeclarationError
from triggerfish.loader import spec_from_dict, spec_to_dict
from triggerfish.runtime.context import Context, Secrets
from triggerfish.runtime.protocol import Spawn, decode, encode
from triggerfish.runtime.worker import worker_environment


def app_with(**settings: object) -> triggerfish.App:
    app = triggerfish.App("shop")
    app.function(name="charge", **settings)(lambda event, context: None)
    return app


def test_the_setting_from_the_decorator_and_the_file_a_stage_replacing_the_list(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_text(
        textwrap.dedent(
            """
            [functions.charge]
            secrets = ["STRIPE_KEY", "DB_URL", "STRIPE_KEY"]

            [stages.prod.functions.charge]
            secrets = ["LIVE_KEY"]
            """
        )
    )
    config = load_config(tmp_path)
    app = app_with(secrets=["FROM_CODE"])
    assert app.functions["charge"].settings.secrets == ("FROM_CODE",)
    assert resolve_functions(app, config)["charge"].settings.secrets == ("STRIPE_KEY", "DB_URL")
    assert resolve_functions(app, config, stage="prod")["charge"].settings.secrets == ("LIVE_KEY",)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("STRIPE_KEY", "must be a list of secret names"),
        (["STRIPE-KEY"], "not a valid secret name"),
        ([42], "not a valid secret name"),
        (["X" * 129], "not a valid secret name"),
        (["_HANDLER"], "the runtime sets"),
        (["TRIGGERFISH_VERSION"], "the runtime sets"),
        ([f"K{n}" for n in range(101)], "at most 100"),
    ],
)
def test_bad_declarations_are_refused_naming_the_function(value: object, said: str) -> None:
    with pytest.raises(DeclarationError) as refused:
        _ = app_with(secrets=value).functions
    assert said in str(refused.value)
    assert "'charge'" in str(refused.value)


def test_a_name_in_both_env_and_secrets_is_refused_wherever_each_comes_from(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_text('[functions.charge]\nenv = { TOKEN = "in the bundle" }\n')
    with pytest.raises(DeclarationError, match="TOKEN is both in env and in secrets"):
        resolve_functions(app_with(secrets=["TOKEN"]), load_config(tmp_path))


def test_declared_secrets_cross_to_the_parent_and_leave_undeclaring_descriptions_as_they_were() -> None:
    spec = app_with(secrets=["STRIPE_KEY"]).functions["charge"]
    described = spec_to_dict(spec)
    assert described["settings"]["secrets"] == ["STRIPE_KEY"]
    assert spec_from_dict(described).settings.secrets == ("STRIPE_KEY",)
    plain = spec_to_dict(app_with().functions["charge"])
    assert "secrets" not in plain["settings"]  # deploy fingerprints of functions declaring none do not move


def test_a_spawn_frame_carries_values_and_never_shows_them() -> None:
    spawn = Spawn(function="charge", cwd="/tmp/f", memory_bytes=1, max_processes=1, secrets={"STRIPE_KEY": "sk_1"})
    assert "sk_1" not in repr(spawn)
    assert decode(encode(spawn)[4:]) == spawn


def test_a_worker_environment_adds_the_values_and_context_secrets_is_read_only() -> None:
    spec = app_with(secrets=["STRIPE_KEY"], env={"TABLE": "orders"}).functions["charge"]
    env = worker_environment(spec, app_name="shop", version="3", cwd="/tmp/f", secrets={"STRIPE_KEY": "sk_1"})
    assert (env["STRIPE_KEY"], env["TABLE"], env["TRIGGERFISH_APP"]) == ("sk_1", "orders", "shop")
    context = Context(request_id="r", function_name="charge", deadline=0.0, secrets={"STRIPE_KEY": "sk_1"})
    assert isinstance(context.secrets, Secrets)
    assert dict(context.secrets) == {"STRIPE_KEY": "sk_1"}
    assert "sk_1" not in repr(context.secrets)
    with pytest.raises(TypeError):
        context.secrets["STRIPE_KEY"] = "changed"  # type: ignore[index]
    with pytest.raises(KeyError, match=r"declares no secret of that name .*secrets=\['OTHER'\]"):
        context.secrets["OTHER"]
    assert len(Context(request_id="r", function_name="f", deadline=0.0).secrets) == 0
