"""triggerfish.toml: settings per function and per stage, and how the layers combine."""

from pathlib import Path

from triggerfish import App
from triggerfish.config import load_config, parse_override, resolve_functions

app = App("shop")


@app.function(memory_mb=256, timeout=5)
def create_order(event, context):
    return event


@app.function()
def refund(event, context):
    return event


Path("triggerfish.toml").write_text(
    """
app = "app.py:app"

[functions."*"]
timeout = 10

[functions.create_order]
memory_mb = 512
env = { TABLE = "orders" }

[stages.prod.functions.create_order]
concurrency = 50
env = { STAGE = "prod" }

[queues.orders]
visibility_timeout = 60
max_receives = 5
dead_letter = "orders-dlq"
"""
)

config = load_config(Path("."))

# decorator < file: the file's "*" and the function's own table both beat the decorator.
dev = resolve_functions(app, config)["create_order"].settings
assert (dev.memory_mb, dev.timeout, dev.concurrency) == (512, 10.0, 10)

# file < stage, and env tables merge key by key.
prod = resolve_functions(app, config, stage="prod")["create_order"].settings
assert prod.concurrency == 50
assert prod.env == {"TABLE": "orders", "STAGE": "prod"}

# stage < command line: `--set create_order.memory_mb=1024`.
name, setting, value = parse_override("create_order.memory_mb=1024")
flagged = resolve_functions(app, config, stage="prod", overrides={name: {setting: value}})
assert flagged["create_order"].settings.memory_mb == 1024
assert flagged["refund"].settings.timeout == 10.0

# Queue tables are kept for the queue runtime, their keys checked.
assert config.queues["orders"]["max_receives"] == 5
