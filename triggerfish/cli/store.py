"""`triggerfish store migrate`: bring a store's schema up to date, or check it, and report its version.

Nodes migrate the store when they open it unless told not to
(`open_store(..., migrate=False)`); operators who keep schema changes apart
from deploys run this first, once, and start nodes with migration off.
"""

from __future__ import annotations

import asyncio

import click

from triggerfish.cli.client import EXIT_INPUT, EXIT_REFUSED, EXIT_UNREACHABLE, CliError
from triggerfish.cli.output import Output, json_option


@click.group()
def store() -> None:
    """Administer a store directly (not through a server)."""


@store.command()
@click.option(
    "--store",
    "store_url",
    required=True,
    envvar="TRIGGERFISH_STORE",
    help="The store URL: sqlite:///path.db, postgresql://user@host/db?schema=NAME (or $TRIGGERFISH_STORE).",
)
@click.option("--check", is_flag=True, help="Change nothing: exit 1 when the schema needs migrating.")
@json_option
def migrate(store_url: str, check: bool, as_json: bool) -> None:
    """Migrate the store's schema to this version of Triggerfish, and print the version it is at.

    Safe to run on a live store and from several machines at once: migrations run
    in one transaction under a lock, and a store already up to date is left alone.
    """
    version = asyncio.run(_migrate(store_url, check))
    out = Output(as_json)
    if out.json({"store": _safe(store_url), "schema_version": version, "up_to_date": True}):
        return
    click.echo(f"{_safe(store_url)}: schema version {version}, up to date")


async def _migrate(url: str, check: bool) -> int | None:
    from triggerfish.errors import SchemaVersionError, StoreUnavailableError, UnknownStoreURLError
    from triggerfish.store import open_store

    try:
        opened = await open_store(url, migrate=not check)
    except UnknownStoreURLError as exc:
        raise CliError(EXIT_INPUT, str(exc)) from None
    except StoreUnavailableError as exc:
        raise CliError(EXIT_UNREACHABLE, str(exc)) from None
    except SchemaVersionError as exc:
        raise CliError(EXIT_REFUSED, str(exc)) from None
    version: int | None = getattr(opened, "schema_version", None)
    await opened.close()
    return version


def _safe(url: str) -> str:
    """The URL without a password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
