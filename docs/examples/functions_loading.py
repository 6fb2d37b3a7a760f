"""Load an app from a file, see its functions, and see how a broken app fails."""

from pathlib import Path

from triggerfish import AppLoadError
from triggerfish.loader import describe_functions, load_app

Path("shop_app.py").write_text(
    """
import triggerfish

app = triggerfish.App("shop")

@app.http("POST", "/orders")
def create_order(event, context):
    return {"statusCode": 201}

@app.schedule("rate(1 hour)")
def hourly(event):
    return None
"""
)

app = load_app("shop_app.py")  # or "shop_app.py:app", "shop_app", "shop_app:app"
table = describe_functions(app.functions)
print(table)
assert table.splitlines()[0].split() == ["FUNCTION", "MEMORY", "TIMEOUT", "CONCURRENCY", "TRIGGERS"]
assert "http POST /orders" in table
assert "schedule rate(1 hour)" in table

Path("broken_app.py").write_text("import triggerfish\napp = triggerfish.App('broken')\nTABLE = {}['name']\n")
try:
    load_app("broken_app.py")
except AppLoadError as error:
    failure = error
else:
    raise AssertionError("a broken app loaded")
assert "importing the app raised KeyError: 'name'" in str(failure)
assert "Traceback (most recent call last)" in failure.details  # the full traceback, for the CLI to show
