"""Queue settings come from triggerfish.toml; what its own checks cannot see, the consumer reports."""

import asyncio
import tempfile
from pathlib import Path

from triggerfish import App
from triggerfish.config import load_config
from triggerfish.errors import DeclarationError
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import QueueConfig, open_store
from triggerfish.triggers.queue_config import queue_configs
from triggerfish.triggers.queues import QueueTriggers

app = App("shop")


@app.on_queue("orders", batch_size=10)
def take_orders(event, context): ...


@app.on_queue("emails")
def send_emails(event, context): ...


TOML = """
[queues.orders]
visibility_timeout = 60
max_receives = 5
dead_letter = "orders-failed"
"""


async def main(project: str) -> None:
    settings = load_config(project).queue_settings()
    store = await open_store(f"sqlite:///{project}/store.db")
    invoker = Invoker(InProcessRunner(app.functions), store)

    triggers = QueueTriggers(store, invoker, app.functions, queue_settings=settings)
    await triggers.start()
    assert await store.queues.config("orders") == QueueConfig(
        visibility_timeout=60, max_receives=5, dead_letter="orders-failed"
    )
    # No table: 3 receives, then <queue>.dlq.
    assert await store.queues.config("emails") == QueueConfig(max_receives=3, dead_letter="emails.dlq")
    await triggers.stop()
    await store.close()


with tempfile.TemporaryDirectory() as project:
    Path(project, "triggerfish.toml").write_text(TOML)
    asyncio.run(main(project))

# triggerfish.toml checks each key (names, types, positive numbers); queue_configs, which QueueTriggers
# runs when it is built and on update(), checks the rest.
try:
    queue_configs({"orders": {"dead_letter": "orders"}})
except DeclarationError as exc:
    message = str(exc)
assert message == (
    "[queues.orders]: dead_letter names the queue itself, so failing messages would never leave it;"
    " name another queue, such as dead_letter = 'orders.dlq'"
)
