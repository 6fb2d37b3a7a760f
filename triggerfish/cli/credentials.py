"""The file `triggerfish login` writes: the server to talk to by default, and a key per server.

    # Written by `triggerfish login`. It holds API keys: keep it private (mode 0600).
    server = "https://triggerfish.example.com"

    [keys]
    "https://triggerfish.example.com" = "tfk_..."

Keys are kept per server, so a key logged in for one server is never sent
to another one named by `--server` or `TRIGGERFISH_SERVER`. The file lives
at `$TRIGGERFISH_CONFIG`, else `~/.config/triggerfish/config.toml`; it is
written whole to a temporary file with mode 0600 and renamed over the old
one, so a crash leaves the old file or the new one, and no one else can
read the keys in between.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_ENV = "TRIGGERFISH_CONFIG"
_HEADER = "# Written by `triggerfish login`. It holds API keys: keep it private (mode 0600).\n"


@dataclass(frozen=True)
class Login:
    """What the config file says: the default server (or None) and the key of each server logged in to."""

    server: str | None = None
    keys: Mapping[str, str] = field(default_factory=dict)


class ConfigFileError(ValueError):
    """The config file exists but cannot be read or is not what `triggerfish login` writes."""


def config_path(environ: Mapping[str, str]) -> Path:
    given = environ.get(CONFIG_ENV)
    if given:
        return Path(given).expanduser()
    return Path(environ.get("HOME") or Path.home()) / ".config" / "triggerfish" / "config.toml"


def read_login(path: Path) -> Login:
    """The file's contents; an empty Login when there is no file. Raises ConfigFileError naming the fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Login()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigFileError(f"cannot read the config file {path}: {reason}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(
            f"the config file {path} is not valid TOML ({exc}); fix it, or delete it and run `triggerfish login` again"
        ) from None
    server = document.get("server")
    keys = document.get("keys", {})
    if server is not None and not isinstance(server, str):
        raise ConfigFileError(f"the config file {path}: server must be a string (a URL), not {server!r}")
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ConfigFileError(f'the config file {path}: [keys] must map server URLs to key strings ("URL" = "tfk_...")')
    return Login(server, dict(keys))


def write_login(path: Path, server: str, key: str) -> Login:
    """Make `server` the default and remember its `key`, keeping other servers' keys; the new contents."""
    before = read_login(path)
    after = Login(server, {**before.keys, server: key})
    lines = [_HEADER, f"server = {_toml_string(server)}\n", "\n[keys]\n"]
    lines += [f"{_toml_string(url)} = {_toml_string(value)}\n" for url, value in sorted(after.keys.items())]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created with mode 0600 (not chmod-ed after), so the keys are never readable by others, even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write("".join(lines))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)  # in case the file was left over by a crash with another mode
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return after


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML wants DEL escaped too."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
