"""Signing in under `triggerfish serve` (an API key, kept in a cookie: see session.py), and the list of apps."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from triggerfish.server.keys import looks_like_key
from triggerfish.ui.api import DEV_ROOT, ApiFailure, ControlApi
from triggerfish.ui.render import ROOT, page
from triggerfish.ui.screen import FormError, form_of, login_redirect, screen
from triggerfish.ui.session import forget, key_of, needs_key, remember


def _next(target: str | None) -> str:
    """Where to go once signed in: a dashboard page only (never another site: no open redirect)."""
    if target and target.startswith(ROOT + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return ROOT + "/"


async def login_form(request: Request) -> Response:
    if not needs_key(request):
        return RedirectResponse(ROOT + "/", status_code=303)
    return page(request, "login.html", title="Sign in", bare=True, next=_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    """Check the key as the control API does (by asking it for the apps the key sees); keep it when it passes."""
    try:
        form = await form_of(request)
    except FormError as exc:
        return page(request, "login.html", 400, title="Sign in", bare=True, next=ROOT + "/", error=str(exc))
    key, target = form.get("key", "").strip(), _next(form.get("next"))
    error = None
    if not key:
        error = "Type an API key: `triggerfish keys create` makes one (a viewer key is enough to look)."
    elif not looks_like_key(key):
        error = "That is not an API key of this server: they read tfk_<8 hex digits>_<32 characters>."
    else:
        async with ControlApi(request.app, DEV_ROOT, key) as api:
            try:
                await api.get("/apps")
            except ApiFailure as failure:
                error = failure.message
    if error is not None:
        return page(request, "login.html", 401, title="Sign in", bare=True, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    remember(response, request, key)
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse(ROOT + "/login", status_code=303)
    forget(response)
    return response


@screen
async def apps(request: Request, api: ControlApi) -> Response:
    """`serve`'s front page: the apps the key may see, each a link to its overview."""
    if needs_key(request) and key_of(request) is None:
        return login_redirect(request)
    found = (await api.call("GET", "/apps", root=DEV_ROOT)).body["apps"]
    return page(request, "apps.html", title="Apps", bare=True, apps=found)
