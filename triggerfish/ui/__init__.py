"""The web dashboard at `/-/ui`: server-rendered pages over the control API, live with htmx (docs/dashboard.md).

| module | owns |
|---|---|
| routes.py | the URL table, for dev (one app) and serve (an app per URL) |
| api.py | the one data path: the control API, called in process with the viewer's key |
| session.py | the viewer's API key in an HttpOnly, SameSite=Strict cookie (serve) |
| render.py | Jinja2 templates, filters, the screens' list |
| screen.py | what every screen does around its work: the API, its refusals, forms |
| stats.py, flow.py | pure: the overview's figures, the flow map's graph and layout |
| screens/ | one module per screen |
| static/ | the stylesheet and htmx, vendored (no CDN, no build step) |
"""
