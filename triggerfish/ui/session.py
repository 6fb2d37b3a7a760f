"""Who is looking: the API key a dashboard viewer signed in with, kept in a cookie.

Under `triggerfish serve` the dashboard asks for an API key once (the login
form) and keeps it in a cookie the browser sends back only to `/-/ui` on
this server: HttpOnly (no script on the page can read it), SameSite=Strict
(no other site's page can make the browser send it), Secure when the page
came over HTTPS. The key itself is the cookie's value, not a session id:
the server keeps no sessions, a revoked key stops working on its next
page, and the key is checked on every request exactly as the control API
checks it (the dashboard calls the API with it; see api.py).

Under `triggerfish dev` there are no keys (the server binds to loopback), so
nobody signs in.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "triggerfish_ui_key"
#: The cookie lives as long as the browser session: closing the browser signs out.
COOKIE_PATH = "/-/ui"


def needs_key(request: Request) -> bool:
    """Whether this server asks for API keys (`serve`); dev's endpoints have none (`app.state.keys` is None)."""
    return getattr(request.app.state, "keys", None) is not None


def key_of(request: Request) -> str | None:
    """The key the viewer signed in with (None under dev, or before signing in)."""
    if not needs_key(request):
        return None
    return request.cookies.get(COOKIE) or None


def remember(response: Response, request: Request, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
