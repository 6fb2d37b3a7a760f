"""A webhook subscriber: the SNS notification, signed; one that is down ends in the dead-letter queue."""

import asyncio
import json
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from triggerfish.bus.webhook import verify
from triggerfish.names import topic_dead_letter_queue
from triggerfish.store import open_store
from triggerfish.triggers.topics import Topics

SECRET = "whsec-shared-with-the-receiver"
received: list[dict] = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        verify(SECRET, dict(self.headers.items()), body)  # raises unless signed with SECRET, and recent
        received.append({"type": self.headers["x-amz-sns-message-type"], **json.loads(body)})
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as directory:
            async with await open_store(f"sqlite:///{directory}/store.db") as store:
                topics = Topics(store, {})
                up = f"http://127.0.0.1:{server.server_address[1]}/sns"
                await topics.subscribe("deploys", "webhook", up, secret=SECRET)
                down = f"http://127.0.0.1:{closed_port()}/sns"
                fast = {"max_attempts": 3, "backoff": {"base": 0.0, "ceiling": 0.0}}
                await topics.subscribe("deploys", "webhook", down, retry=fast)

                message_id = await topics.publish("deploys", "v2 is live", subject="Deploy")
                await topics.drain()
                await topics.stop()

                [note] = received
                assert (note["type"], note["MessageId"], note["Subject"]) == ("Notification", message_id, "Deploy")

                [dead] = await store.queues.receive(topic_dead_letter_queue("deploys"))
                letter = json.loads(dead.body)
                assert (letter["message"]["id"], letter["attempts"]) == (message_id, 3)
                assert letter["subscription"]["endpoint"] == down
                assert letter["condition"] == "RetriesExhausted"
    finally:
        server.shutdown()
        server.server_close()


asyncio.run(main())
