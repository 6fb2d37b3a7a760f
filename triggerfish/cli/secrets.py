"""`triggerfish secrets set|list|remove|reseal|generate-key`: an app's secrets on a server (or on `triggerfish dev`).

A value is never a command-line argument (it would stay in the shell's history
and show in `ps`): `set` reads it from `--from-file`, else from standard input
when that is not a terminal (one trailing newline dropped, as `echo` adds one),
else asks for it twice without echoing it. Nothing prints a value: the server
never returns one.

With `APP NAME` the calls go to a `triggerfish serve` server's
`/-/api/v1/apps/APP/secrets`; with `NAME` alone (and no `--app` or
`TRIGGERFISH_APP`) to `triggerfish dev`'s `/-/api/v1/secrets`, its one app's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from triggerfish.cli.client import Client, CliError, input_error, segment, server_options
from triggerfish.cli.output import Output, json_option, moment


@click.group()
def secrets() -> None:
    """Set, list and remove an app's secrets; reseal them after a new secrets key (docs/security.md)."""


def _app_and_name(words: tuple[str, ...], app_option: str | None) -> tuple[str | None, str]:
    if len(words) == 2:
        return words[0], words[1]
    if len(words) == 1:
        return app_option, words[0]
    raise input_error("give APP NAME (a server's app), or NAME alone for `triggerfish dev`'s app")


def _read_value(from_file: Path | None, name: str) -> str:
    if from_file is not None:
        try:
            value = from_file.read_bytes().decode("utf-8")
        except OSError as exc:
            raise input_error(f"cannot read --from-file {str(from_file)!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise input_error(f"--from-file {str(from_file)!r} is not UTF-8 text; a secret is text") from None
    elif not sys.stdin.isatty():
        value = sys.stdin.read()
        # `echo VALUE |` and here-strings end with a newline nobody meant as part of the secret.
        value = value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value
    else:
        value = click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True, err=True)
    if not value:
        raise input_error(f"the value of {name} is empty: nothing was set (to take a secret away, remove it)")
    return value


@secrets.command("set")
@click.argument("words", nargs=-1, metavar="[APP] NAME")
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the value from this file, as it is (else standard input, else a prompt that does not echo).",
)
@server_options()
@json_option
def set_secret(
    words: tuple[str, ...], from_file: Path | None, server: str | None, key: str | None, app: str | None, as_json: bool
) -> None:
    """Set the secret NAME of APP (a new one, or its next version). Never give the value as an argument.

    \b
    Examples:
      triggerfish secrets set shop STRIPE_KEY              # asks for it, without echo
      printenv STRIPE_KEY | triggerfish secrets set shop STRIPE_KEY
      triggerfish secrets set shop TLS_KEY --from-file key.pem
    """
    chosen, name = _app_and_name(words, app)
    value = _read_value(from_file, name)
    out = Output(as_json)
    with Client(server, key, app=chosen) as client:
        info = client.request("PUT", client.app_api(f"/secrets/{segment(name)}"), json={"value": value})
    if not out.json(info):
        where = f" of app {chosen}" if chosen else ""
        out.line(f"set secret {name}{where}: version {info.get('version')}", style="green")


@secrets.command("list")
@click.argument("words", nargs=-1, metavar="[APP]")
@server_options()
@json_option
def list_secrets(words: tuple[str, ...], server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """List APP's secrets: names, versions, when set, the key they are sealed with. Never a value."""
    if len(words) > 1:
        raise input_error("give at most one APP")
    out = Output(as_json)
    with Client(server, key, app=words[0] if words else app) as client:
        document = client.request("GET", client.app_api("/secrets"))
    if out.json(document):
        return
    rows = [
        [s.get("name"), s.get("version"), moment(s.get("created_at")), moment(s.get("updated_at")), s.get("key_id")]
        for s in document.get("secrets", [])
    ]
    out.table(["name", "version", "created", "updated", "key"], rows, empty=f"app {document.get('app')} has no secrets")


@secrets.command("remove")
@click.argument("words", nargs=-1, metavar="[APP] NAME")
@server_options()
@json_option
def remove_secret(words: tuple[str, ...], server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Remove the secret NAME of APP: functions declaring it fail until it is set again."""
    chosen, name = _app_and_name(words, app)
    out = Output(as_json)
    with Client(server, key, app=chosen) as client:
        client.request("DELETE", client.app_api(f"/secrets/{segment(name)}"))
    if not out.json({"app": chosen, "name": name, "removed": True}):
        where = f" of app {chosen}" if chosen else ""
        out.line(f"removed secret {name}{where}", style="green")


@secrets.command()
@server_options(app=False)
@json_option
def reseal(server: str | None, key: str | None, as_json: bool) -> None:
    """Seal every secret with the server's first key: the step of a key rotation after every node was given the
    new key first (admin keys only; docs/security.md#rotating-the-secrets-key)."""
    out = Output(as_json)
    with Client(server, key) as client:
        result = client.request("POST", client.api("/secrets/reseal"), json={})
    if out.json(result):
        return
    unreadable = result.get("unreadable") or []
    out.line(
        f"sealed with key {result.get('key_id')}: {result.get('resealed')} resealed,"
        f" {result.get('unchanged')} already were",
        style="green",
    )
    if unreadable:
        out.table(["app", "name", "sealed with"], [[u.get("app"), u.get("name"), u.get("key_id")] for u in unreadable])
        raise CliError(1, f"{len(unreadable)} secret(s) did not open on this server and keep their old sealing")


@secrets.command("generate-key")
def generate_key() -> None:
    """Print a new secrets key (for TRIGGERFISH_SECRETS_KEY or a key file). Nothing is sent anywhere."""
    from triggerfish.secrets.keyring import SecretsKey

    click.echo(SecretsKey.generate().text)
