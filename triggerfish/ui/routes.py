"""The dashboard's routes, for `triggerfish dev` (one app at `/-/ui`) and `serve` (each app at `/-/ui/apps/{app}`).

    Mount("/-/ui", routes=dev_routes())      # in the Starlette app serving dev's `/-/` endpoints
    Mount("/-/ui", routes=serve_routes())    # in the one serving a server's

The UI is mounted inside the Starlette app that serves the control API, so
it calls that same app in process (api.py) and is guarded like every `/-/`
endpoint by the server's Host and Origin rules (request_guard.py). Forms
post URL-encoded fields, which browsers send across sites without asking:
under `serve` the key's cookie is SameSite=Strict, so such a post arrives
without a key and is refused, and the request guard refuses a browser's
request from another origin on both servers.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from triggerfish.ui.render import STATIC
from triggerfish.ui.screen import missing
from triggerfish.ui.screens import events, flow, functions, invocations, login, overview, queues, workflows


def app_routes() -> list[BaseRoute]:
    """One app's screens, relative to its base."""
    return [
        Route("/", overview.overview, methods=["GET"]),
        Route("/functions", functions.functions, methods=["GET"]),
        Route("/functions/{name}", functions.function, methods=["GET"]),
        Route("/functions/{name}/invoke", functions.invoke, methods=["POST"]),
        Route("/invocations", invocations.invocations, methods=["GET"]),
        Route("/invocations/{request_id}", invocations.invocation, methods=["GET"]),
        Route("/invocations/{request_id}/rerun", invocations.rerun, methods=["POST"]),
        Route("/events", events.events, methods=["GET"]),
        Route("/events", events.send_event, methods=["POST"]),
        Route("/events/{bus}/replay", events.replay, methods=["POST"]),
        Route("/queues", queues.queues, methods=["GET"]),
        Route("/queues/{name}/redrive", queues.redrive, methods=["POST"]),
        Route("/schedules", queues.schedules, methods=["GET"]),
        Route("/schedules/{name}/{action:str}", queues.steer_schedule, methods=["POST"]),
        Route("/flow", flow.flow, methods=["GET"]),
        Route("/workflows", workflows.workflows, methods=["GET"]),
        Route("/workflows/{id}", workflows.workflow, methods=["GET"]),
        Route("/{path:path}", missing),
    ]


def _shared() -> list[BaseRoute]:
    return [
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="ui-static"),
        Route("/login", login.login_form, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
    ]


def dev_routes() -> list[BaseRoute]:
    """`triggerfish dev`: the one app's screens at the root of `/-/ui`."""
    return [*_shared(), *app_routes()]


def serve_routes() -> list[BaseRoute]:
    """`triggerfish serve`: the apps the key sees at `/-/ui/`, each app's screens under `/-/ui/apps/{app}`."""
    return [
        *_shared(),
        Route("/", login.apps, methods=["GET"]),
        Mount("/apps/{app}", routes=app_routes()),
        Route("/{path:path}", missing),
    ]
