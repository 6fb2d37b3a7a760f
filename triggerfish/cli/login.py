"""`triggerfish login SERVER --key KEY`: remember a server and its key for the verbs that follow."""

from __future__ import annotations

import os

import click

from triggerfish.cli.client import Client, CliError, input_error, key_label
from triggerfish.cli.credentials import config_path, write_login
from triggerfish.cli.output import Output, json_option


@click.command()
@click.argument("server")
@click.option("--key", prompt=True, hide_input=True, help="The API key (asked for when not given).")
@click.option("--no-check", is_flag=True, help="Save without asking the server whether the key works.")
@json_option
def login(server: str, key: str, no_check: bool, as_json: bool) -> None:
    """Save SERVER as the default server and KEY as its key, in the config file.

    The file is $TRIGGERFISH_CONFIG, else ~/.config/triggerfish/config.toml,
    written with mode 0600. Keys of other servers logged in to are kept, and a
    key is sent only to the server it was saved for. First the server is
    asked whether the key works: an unreachable server exits 3 and a refused
    key 4, and nothing is saved.

    \b
    Example:
      triggerfish login https://triggerfish.example.com --key "$(cat admin.key)"
    """
    key = key.strip()
    if not key:
        raise input_error("the key is empty: give the key an admin created (`triggerfish keys create`)")
    with Client(server, key) as client:
        if not no_check:
            client.request("GET", "/-/health")
            try:
                client.request("GET", client.api("/apps"))
            except CliError as exc:
                # `triggerfish dev` has no /apps (and no keys): reachable is all there is to check.
                if (exc.status, exc.code) != (404, "NotFound"):
                    raise
    path = config_path(os.environ)
    try:
        write_login(path, client.server, key)
    except OSError as exc:
        raise input_error(f"cannot write the config file {path}: {exc.strerror or exc}") from None
    out = Output(as_json)
    if not out.json({"server": client.server, "key": key_label(key), "config": str(path)}):
        out.line(f"logged in to {client.server} with key {key_label(key)}; saved in {path}", style="green")
