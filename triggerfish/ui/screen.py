"""What every screen does around its own work: open the control API as the viewer, and show its refusals.

    @screen
    async def functions(request: Request, api: ControlApi) -> Response:
        return page(request, "functions.html", functions=(await api.get("/functions"))["functions"])

A refusal of the API becomes a page saying what was refused and why, with
the API's own status: 404 for a function that does not exist, 403 for a
role that may not. A missing or revoked key (401) sends the viewer to the
login form, which comes back to the page asked for once signed in.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from triggerfish.ui.api import ApiFailure, ControlApi
from triggerfish.ui.render import ROOT, page

Screen = Callable[[Request, ControlApi], Awaitable[Response]]


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{ROOT}/login?next={quote(target, safe='/')}", status_code=303)


def screen(handler: Screen) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def serve(request: Request) -> Response:
        async with ControlApi.of(request) as api:
            try:
                return await handler(request, api)
            except FormError as exc:
                return page(request, "error.html", 400, failure=ApiFailure(400, "BadForm", str(exc)), title="BadForm")
            except ApiFailure as failure:
                if failure.status == 401:
                    return login_redirect(request)
                return page(request, "error.html", failure.status, failure=failure, title=failure.code)

    return serve


#: The most a form may carry: the invoke form's payload is the largest field (Lambda takes 6 MB when it waits).
MAX_FORM_BYTES = 6 * 1024 * 1024 + 64 * 1024


class FormError(Exception):
    """A posted form that cannot be read; its message says why."""


async def missing(request: Request) -> Response:
    """Any other path under `/-/ui`: a page (not the API's JSON) saying so, with the way back."""
    failure = ApiFailure(404, "NotFound", f"the dashboard has no page {request.url.path}")
    return page(request, "error.html", 404, failure=failure, title="Not found")


async def form_of(request: Request) -> dict[str, str]:
    """A posted form's fields as text (the last of a repeated field).

    The dashboard's forms are all URL-encoded (the browser's default), read
    here with the standard library rather than by Starlette's `request.form()`,
    which would add python-multipart to the dependencies for no field we use.
    """
    kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError(f"a dashboard form is sent as application/x-www-form-urlencoded, not {kind or 'no type'}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"the form is larger than {MAX_FORM_BYTES // (1024 * 1024)} MB")
    text = body.decode("utf-8", errors="replace")
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=100))
