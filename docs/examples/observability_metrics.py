"""Scrape GET /-/metrics and read it with Prometheus's own parser."""

import asyncio
import tempfile
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.http("GET", "/price")
def price(event, context):
    return {"price": 20}
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            for _ in range(5):
                await http.get("/price")
            await platform.current.invoker.records.settled()  # the sync path stores records just after answering

            scraped = await http.get("/-/metrics")
            assert scraped.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(scraped.text)
                for sample in family.samples
            }
            labels = (("app", "shop"), ("function", "price"), ("outcome", "success"), ("trigger", "http"))
            assert samples["triggerfish_function_invocations_total", labels] == 5
            timed = (("app", "shop"), ("function", "price"), ("trigger", "http"))
            assert samples["triggerfish_function_duration_seconds_count", timed] == 5
            assert samples["triggerfish_function_cold_starts_total", (("app", "shop"), ("function", "price"))] == 1


asyncio.run(main())
