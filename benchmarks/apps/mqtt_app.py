"""The MQTT benchmark's app: a function that takes batches of readings and does nothing with them."""

from typing import Any

import triggerfish

app = triggerfish.App("bench")


@app.on_mqtt("bench-mqtt/+/reading", batch_size=100, parallelization=2, share=False)
def readings(event: dict[str, Any], context: Any) -> None:
    return None
