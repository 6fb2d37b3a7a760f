"""Pages from templates: the Jinja2 environment, the filters the templates use, and where a page's links point.

Jinja2 (through Starlette's `Jinja2Templates`) rather than our own small
templates: it escapes every value by default (`autoescape`), so a function's
output, an event's payload or an error message can never become markup on
the page, and it is the template engine Starlette documents and tests with.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from triggerfish import __version__
from triggerfish.ui.session import needs_key

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
ROOT = "/-/ui"
#: How often (seconds) the live parts of a page ask for themselves again.
POLL_SECONDS = 3
#: What a table shows for no value (an en dash, as typeset tables do).
NONE = "\u2013"

#: The screens of one app, in the navigation's order: (path under the app's base, title).
SCREENS = (
    ("", "Overview"),
    ("/functions", "Functions"),
    ("/invocations", "Invocations"),
    ("/events", "Events"),
    ("/queues", "Queues and topics"),
    ("/schedules", "Schedules"),
    ("/flow", "Flow map"),
    ("/workflows", "Workflows"),
)


def base(request: Request) -> str:
    """Where the app's screens are: `/-/ui` under dev, `/-/ui/apps/{app}` under serve."""
    app = request.path_params.get("app")
    return ROOT if app is None else f"{ROOT}/apps/{app}"


def _ms(value: Any) -> str:
    if value is None:
        return NONE
    number = float(value)
    if number >= 10_000:
        return f"{number / 1000:.1f} s"
    return f"{number:.1f} ms" if number < 100 else f"{number:.0f} ms"


def _when(value: Any) -> str:
    """Epoch seconds as a UTC time a person reads (the full date when not today)."""
    if value is None:
        return NONE
    moment = datetime.datetime.fromtimestamp(float(value), datetime.UTC)
    today = datetime.datetime.now(datetime.UTC).date()
    shown = moment.strftime("%H:%M:%S.%f")[:-3]
    return shown if moment.date() == today else moment.strftime("%Y-%m-%d ") + shown


def _iso(value: Any) -> str:
    return "" if value is None else datetime.datetime.fromtimestamp(float(value), datetime.UTC).isoformat()


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str)


def _age(value: Any) -> str:
    if value is None:
        return NONE
    seconds = float(value)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters.update(ms=_ms, when=_when, iso=_iso, pretty=_pretty, age=_age)
templates.env.globals.update(version=__version__, screens=SCREENS, poll=POLL_SECONDS, root=ROOT)


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """The whole page (htmx picks the part it polls for with `hx-select`, so every answer is a whole page that
    also works without JavaScript)."""
    context.setdefault("app", request.path_params.get("app"))
    context.setdefault("base", base(request))
    context.setdefault("signed_in", needs_key(request))
    return templates.TemplateResponse(request, template, context, status_code=status)
