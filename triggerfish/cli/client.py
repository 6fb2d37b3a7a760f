"""The HTTP client every verb talking to a server uses: where the server is, which key, and what failed.

    client = Client(server, key, app=app)        # None: discover (see below)
    functions = client.request("GET", client.app_api("/functions"))

Discovery, first found wins: the `--server` / `--key` flags, then the
environment (`TRIGGERFISH_SERVER`, `TRIGGERFISH_KEY`), then the file
`triggerfish login` writes (see credentials.py; its key is used only for
the server it was logged in to), then `http://127.0.0.1:8080` and no key.
The app for per-app endpoints is `--app`, else `TRIGGERFISH_APP`; with one,
per-app calls go to `/-/api/v1/apps/{app}/...` (`triggerfish serve`),
without one to `/-/api/v1/...` (what `triggerfish dev` serves for its app).

Every failure is a `CliError` whose exit code is the documented one:

| exit | when |
|---|---|
| 1 | the server refused the request (its error code and message are printed) |
| 2 | bad local input (a bad URL, invalid JSON, an unreadable file or config file) |
| 3 | the server is unreachable, or did not answer in time |
| 4 | not authorised (401 or 403): the message names the key by its prefix and where it came from |
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import click

from triggerfish.cli.credentials import ConfigFileError, config_path, read_login

if TYPE_CHECKING:
    import httpx

EXIT_REFUSED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_UNAUTHORISED = 4

DEFAULT_SERVER = "http://127.0.0.1:8080"
SERVER_ENV = "TRIGGERFISH_SERVER"
KEY_ENV = "TRIGGERFISH_KEY"
APP_ENV = "TRIGGERFISH_APP"
API = "/-/api/v1"
#: Seconds to wait for a connection, and for an answer unless a call says otherwise.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A failure the command reports on stderr and exits on with `exit_code` (see the module docstring).

    For an error the server answered, `status` is its HTTP status, `code` its
    machine-readable code and `error` the whole error document (deploys add
    `phase` and `details` there).
    """

    def __init__(
        self,
        exit_code: int,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        # click declares exit_code on the class but reads it from the instance: one class, every exit code.
        self.exit_code = exit_code  # type: ignore[misc]
        self.status = status
        self.code = code
        self.error: Mapping[str, Any] = error or {}

    def show(self, file: Any = None) -> None:
        # click drops the colour when stderr is not a terminal.
        click.echo(f"{click.style('error:', fg='red', bold=True)} {self.message}", err=True)


def input_error(message: str) -> CliError:
    """Bad local input: exit 2."""
    return CliError(EXIT_INPUT, message)


@dataclass(frozen=True)
class Target:
    """Where the calls go and with which key, and where each was found (for messages and `status`)."""

    server: str
    server_from: str
    key: str | None
    key_from: str | None
    app: str | None
    app_from: str | None


def discover(server: str | None, key: str | None, app: str | None, environ: Mapping[str, str] | None = None) -> Target:
    """Resolve the server, key and app as the module docstring says. Raises CliError (exit 2) for a bad URL
    or an unreadable config file."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    from_file = f"the config file {path}"
    try:
        login = read_login(path)
    except ConfigFileError as exc:
        raise input_error(str(exc)) from None
    candidates = [("--server", server), (SERVER_ENV, env.get(SERVER_ENV)), (from_file, login.server)]
    server_from, given = next(((where, v) for where, v in candidates if v), ("the default", DEFAULT_SERVER))
    url = _check_url(given, server_from)
    key_from: str | None = None
    if key:
        key_from = "--key"
    elif env.get(KEY_ENV):
        key, key_from = env[KEY_ENV], KEY_ENV
    elif login.keys.get(url):
        key, key_from = login.keys[url], from_file
    else:
        key = None
    app_from, app = next(((where, v) for where, v in (("--app", app), (APP_ENV, env.get(APP_ENV))) if v), (None, None))
    return Target(url, server_from, key, key_from, app, app_from)


def _check_url(value: str, where: str) -> str:
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise input_error(
            f"{where} gives the server {value!r}, which is not an http:// or https:// URL"
            " (for example http://127.0.0.1:8080)"
        )
    return url


def key_label(key: str) -> str:
    """A key named by its prefix (`tfk_ab12cd34`), never its secret."""
    if key.startswith("tfk_") and len(key) > 12:
        return key[:12]
    return key[:4] + "..."


def segment(value: str, *, slashes: bool = False) -> str:
    """`value` as one path segment (or, with `slashes`, as a path: queue and bus names may contain `/`)."""
    return quote(value, safe="/" if slashes else "")


class Client:
    """Calls to one server with one key (see the module docstring for how both are found).

    A context manager, or call `close()`; one connection is kept for all the calls of a verb.
    """

    def __init__(
        self,
        server: str | None = None,
        key: str | None = None,
        *,
        app: str | None = None,
        environ: Mapping[str, str] | None = None,
        name_app: str = "--app APP",
    ) -> None:
        self.target = discover(server, key, app, environ)
        self.server = self.target.server
        self.app = self.target.app
        #: How this verb is told its app, for the hint when a server needs one (`logs` takes it as an argument).
        self.name_app = name_app
        self._http: httpx.Client | None = None

    # --- paths -------------------------------------------------------------------------------------

    def api(self, path: str) -> str:
        """A server-wide endpoint: `/-/api/v1` + path (apps, keys)."""
        return API + path

    def app_api(self, path: str, app: str | None = None) -> str:
        """A per-app endpoint of `app` (default: the client's app): `/-/api/v1/apps/{app}` + path, or,
        with no app (`triggerfish dev`), `/-/api/v1` + path."""
        chosen = app or self.app
        return API + path if chosen is None else f"{API}/apps/{segment(chosen)}{path}"

    def events_path(self, app: str | None = None) -> str:
        """Where events are published: `/-/apps/{app}/events`, or `/-/events` with no app."""
        chosen = app or self.app
        return "/-/events" if chosen is None else f"/-/apps/{segment(chosen)}/events"

    # --- calls -------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = READ_TIMEOUT,
    ) -> Any:
        """The answer's JSON (None for an empty answer); raises CliError for every failure."""
        answer = self.send(method, path, json=json, content=content, params=params, headers=headers, timeout=timeout)
        return self.parse(answer)

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = READ_TIMEOUT,
    ) -> httpx.Response:
        """The answer itself, for callers that read its headers; raises CliError unless it is a success.

        `timeout` bounds the wait for the answer (None: no bound, for an
        invocation the server bounds by the function's timeout).
        """
        import httpx

        body, sent_headers = self._body(json, content, headers)
        try:
            answer = self._client().request(
                method, path, content=body, params=params, headers=sent_headers, timeout=_timeout(timeout)
            )
        except httpx.ConnectTimeout:
            raise self._unreachable() from None
        except httpx.TimeoutException:
            raise self._too_slow(timeout) from None
        except httpx.TransportError:
            raise self._unreachable() from None
        self.check(answer)
        return answer

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[httpx.Response]:
        """An answer read as it arrives (server-sent events, JSON lines); checked before it is yielded."""
        import httpx

        try:
            with self._client().stream(
                method, path, params=params, headers=self._headers(headers), timeout=_timeout(timeout)
            ) as answer:
                if answer.status_code >= 400:
                    answer.read()
                self.check(answer)
                yield answer
        except httpx.ConnectTimeout:
            raise self._unreachable() from None
        except httpx.TimeoutException:
            raise self._too_slow(timeout) from None
        except httpx.TransportError:
            raise self._unreachable() from None

    def check(self, answer: httpx.Response) -> None:
        """Raise the CliError an error answer means; nothing for a success."""
        status = answer.status_code
        if status < 400:
            return
        error = _error_document(answer)
        code = str(error.get("code") or answer.reason_phrase or status)
        message = str(error.get("message") or answer.text[:500] or answer.reason_phrase)
        if status in (401, 403):
            raise CliError(EXIT_UNAUTHORISED, self._unauthorised(status, code, message), status=status, code=code)
        if status == 404 and code == "NotFound" and answer.url.path.startswith("/-/"):
            # The route itself is missing (an unknown thing has its own code): the verb's app does not fit the server.
            message += "; " + self._missing_route_hint(answer.url.path)
        said = f"the server refused ({status} {code}): {message}"
        raise CliError(EXIT_REFUSED, said, status=status, code=code, error=error)

    @staticmethod
    def parse(answer: httpx.Response) -> Any:
        """A success answer's JSON, or None when it has no body."""
        if not answer.content:
            return None
        from triggerfish._json import loads
        from triggerfish.errors import InvalidJSONError

        try:
            return loads(answer.content, where="the server's answer")
        except InvalidJSONError as exc:
            raise CliError(EXIT_REFUSED, f"{exc} (is {answer.url} a Triggerfish server?)") from None

    # --- plumbing ----------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        import httpx

        if self._http is None:
            self._http = httpx.Client(
                base_url=self.server, timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
            )
        return self._http

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if self.target.key is not None:
            headers["authorization"] = f"Bearer {self.target.key}"
        headers.update(extra or {})
        return headers

    def _body(
        self, value: Any, content: bytes | Iterator[bytes] | None, extra: Mapping[str, str] | None
    ) -> tuple[bytes | Iterator[bytes] | None, dict[str, str]]:
        headers = self._headers(extra)
        if value is None:
            return content, headers
        from triggerfish._json import dumps

        headers.setdefault("content-type", "application/json")
        return dumps(value), headers

    def _missing_route_hint(self, path: str) -> str:
        """What to change when the server has no such route: which kind of server answered decides it."""
        kind = self._server_kind()
        per_app = path == "/-/events" or (path.startswith(f"{API}/") and not path.startswith(f"{API}/apps/"))
        if kind == "serve" and self.app is None and per_app:
            return (
                f"`triggerfish serve` keeps each app's endpoints apart: name the app with {self.name_app}"
                f" (or ${APP_ENV}); `triggerfish list` shows the apps"
            )
        if kind == "dev" and self.app is not None:
            return f"`triggerfish dev` serves one app, with no --app: drop --app and ${APP_ENV}"
        if kind == "dev":
            return (
                "`triggerfish dev` serves one app, with no apps, versions or keys endpoints: those need"
                " `triggerfish serve`; give its address with --server URL"
            )
        return (
            "if the server is `triggerfish dev`, it serves one app with no apps, versions or keys endpoints"
            + (f" (drop --app and ${APP_ENV})" if self.app is not None else "")
            + ": those need `triggerfish serve`"
        )

    def _server_kind(self) -> str | None:
        """ "dev" or "serve", from `/-/health` (dev names its one app, serve counts its apps); None when unsure."""
        import httpx

        try:
            health = self._client().get("/-/health", headers=self._headers(None), timeout=CONNECT_TIMEOUT).json()
        except (httpx.HTTPError, ValueError):  # only means no better hint
            return None
        if isinstance(health, dict) and "app" in health:
            return "dev"
        if isinstance(health, dict) and "apps" in health:
            return "serve"
        return None

    def _unreachable(self) -> CliError:
        return CliError(
            EXIT_UNREACHABLE,
            f"server unreachable at {self.server} (from {self.target.server_from}): is `triggerfish dev` or"
            f" `triggerfish serve` running there? Give another with --server URL (or ${SERVER_ENV})",
        )

    def _too_slow(self, timeout: float | None) -> CliError:
        if timeout is None:  # only the connection was bounded
            return self._unreachable()
        return CliError(EXIT_UNREACHABLE, f"the server at {self.server} did not answer within {timeout:g} s")

    def _unauthorised(self, status: int, code: str, message: str) -> str:
        target = self.target
        said = f"{status} {code}: {message}"
        if target.key is None:
            return (
                f"not authorised ({said}); no key was sent: give one with --key, {KEY_ENV},"
                " or `triggerfish login SERVER --key KEY`"
            )
        used = f"the key {key_label(target.key)} (from {target.key_from})"
        if status == 401:
            return f"not authorised ({said}); {used} was not accepted: it may be revoked or mistyped"
        return f"not authorised ({said}); {used} lacks the role for this"

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _timeout(read: float | None) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(read, connect=CONNECT_TIMEOUT)


def _error_document(answer: httpx.Response) -> dict[str, Any]:
    try:
        document = answer.json()
    except ValueError:
        return {}
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def server_options(*, app: bool = True) -> Callable[[F], F]:
    """The options every verb that talks to a server takes: `--server`, `--key` and, unless the verb names
    its app itself, `--app`. The command receives them as `server`, `key` and `app` (None: discover)."""

    def decorate(command: F) -> F:
        if app:
            command = click.option(
                "--app", "app", default=None, help=f"The app on a `triggerfish serve` server (else ${APP_ENV})."
            )(command)
        command = click.option(
            "--key", "key", default=None, help=f"The API key (else ${KEY_ENV}, else `triggerfish login`'s)."
        )(command)
        command = click.option(
            "--server",
            "server",
            default=None,
            metavar="URL",
            help=f"The server (else ${SERVER_ENV}, else `triggerfish login`'s, else {DEFAULT_SERVER}).",
        )(command)
        return command

    return decorate
