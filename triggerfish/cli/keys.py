"""`triggerfish keys create|list|revoke`: API keys of a `triggerfish serve` server (an admin's job).

A key's secret is shown once, by `create`; the server keeps only its hash.
Keys are named afterwards by their id or their prefix (`tfk_ab12cd34`, what
`list` shows), or by the whole key text.
"""

from __future__ import annotations

from typing import Any

import click

from triggerfish.cli.client import EXIT_REFUSED, Client, CliError, input_error, segment, server_options
from triggerfish.cli.output import Output, json_option, moment

ROLES = ("admin", "deployer", "publisher", "invoker", "viewer")


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (admin keys only)."""


@keys.command()
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the key may do.")
@click.option("--app", "key_app", default=None, help="The one app the key works on (every role but admin).")
@click.option("--name", default=None, help="A name to tell the key by (default: APP-ROLE).")
@server_options(app=False)
@json_option
def create(
    role: str, key_app: str | None, name: str | None, server: str | None, key: str | None, as_json: bool
) -> None:
    """Create a key and print it: the only time its secret is shown.

    \b
    Roles: admin (everything, every app, keys), deployer (deploy, roll back
    and configure its app), publisher (publish events and send messages to
    its app), invoker (invoke its app's functions), viewer (read its app).

    \b
    Example:
      triggerfish keys create --role deployer --app shop --name ci
    """
    if role == "admin" and key_app is not None:
        raise input_error("an admin key works on every app: drop --app")
    if role != "admin" and key_app is None:
        raise input_error(f"a {role} key works on one app: name it with --app APP")
    document = {"name": name or (role if key_app is None else f"{key_app}-{role}"), "role": role, "app": key_app}
    out = Output(as_json)
    with Client(server, key) as client:
        created = client.request("POST", client.api("/keys"), json=document)
    if out.json(created):
        return
    # The secret alone on stdout, so `KEY=$(triggerfish keys create ...)` works; the rest is for the person.
    out.write(str(created.get("key")))
    scope = "every app" if key_app is None else f"app {key_app}"
    click.echo(
        f"created key {created.get('prefix')} ({role}, {scope}); it is shown only now: keep it somewhere safe",
        err=True,
    )
    if created.get("aws_access_key_id"):
        click.echo(
            f"its AWS credentials for {client.server}/-/aws (docs/aws.md), shown only now:\n"
            f"  AWS_ACCESS_KEY_ID={created['aws_access_key_id']}\n"
            f"  AWS_SECRET_ACCESS_KEY={created['aws_secret_access_key']}",
            err=True,
        )


@keys.command("list")
@click.option("--app", "key_app", default=None, help="Only the keys of this app.")
@server_options(app=False)
@json_option
def list_keys(key_app: str | None, server: str | None, key: str | None, as_json: bool) -> None:
    """List the keys, revoked ones too: prefix, name, role, app, when created and revoked. Never a secret."""
    out = Output(as_json)
    with Client(server, key) as client:
        document = client.request("GET", client.api("/keys"), params={} if key_app is None else {"app": key_app})
    if out.json(document):
        return
    rows = [
        [
            k.get("prefix"),
            k.get("name"),
            k.get("role"),
            k.get("app") or "(all)",
            moment(k.get("created_at")),
            moment(k.get("revoked_at")),
        ]
        for k in document.get("keys", [])
    ]
    out.table(["prefix", "name", "role", "app", "created", "revoked"], rows, empty="no keys")


@keys.command()
@click.argument("which", metavar="KEY")
@server_options(app=False)
@json_option
def revoke(which: str, server: str | None, key: str | None, as_json: bool) -> None:
    """Revoke the key KEY (its id, its prefix, or the key itself): it stops working at once."""
    out = Output(as_json)
    with Client(server, key) as client:
        found = _find(client.request("GET", client.api("/keys")).get("keys", []), which)
        answer = client.request("DELETE", client.api(f"/keys/{segment(str(found['id']))}"))
    if not out.json(answer if answer is not None else {**found, "revoked": True}):
        out.line(f"revoked key {found.get('prefix')} ({found.get('name')})", style="green")


def _find(listed: list[dict[str, Any]], which: str) -> dict[str, Any]:
    """The key named by id, prefix (`tfk_ab12cd34` or `ab12cd34`) or whole key text (`tfk_<prefix>_<secret>`)."""
    # The prefix is the 8 characters after `tfk_` (the secret's alphabet includes `_`, so no splitting on it).
    prefix = which[4:12] if which.startswith("tfk_") and len(which) >= 12 else which
    names = {which, prefix, f"tfk_{prefix}"}
    matches = [k for k in listed if str(k.get("id")) in names or k.get("prefix") in names]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(str(k.get("prefix")) for k in listed) or "none"
        raise CliError(EXIT_REFUSED, f"no key {which!r}: the keys are {known} (`triggerfish keys list`)")
    raise input_error(f"{which!r} names {len(matches)} keys: give the id (`triggerfish keys list`)")
