"""The MQTT benchmark's publisher, in a process of its own: QoS 1 readings, paced by what the consumer took.

    python -m benchmarks.mqtt_publisher BASE MESSAGES IN_FLIGHT AHEAD

Prints the wall-clock start, then `done` once the broker acknowledged every message. Reads the consumer's
count from stdin (one number per line) and never runs more than AHEAD messages ahead of it: Mosquitto drops
QoS 1 messages queued for a subscriber past its `max_queued_messages` (1,000 by default).
"""

from __future__ import annotations

import asyncio
import sys
import time

HOST, PORT = "127.0.0.1", 1883
PAYLOAD = b'{"celsius": 21.5, "humidity": 40}'


async def main(base: str, messages: int, in_flight: int, ahead: int) -> None:
    import aiomqtt

    consumed = 0

    async def follow() -> None:
        nonlocal consumed
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            consumed = int(line)

    follower = asyncio.create_task(follow())
    async with aiomqtt.Client(HOST, PORT, max_inflight_messages=in_flight) as client:
        client.pending_calls_threshold = in_flight + 1
        slots = asyncio.Semaphore(in_flight)

        async def one(n: int) -> None:
            try:
                await client.publish(f"{base}/device{n % 10}/reading", PAYLOAD, qos=1)
            finally:
                slots.release()

        print(f"{time.time():.6f}", flush=True)
        sent: list[asyncio.Task[None]] = []
        for n in range(messages):
            await slots.acquire()
            while n - consumed > ahead:  # noqa: ASYNC110 - the count arrives on stdin; nothing to wait on
                await asyncio.sleep(0.001)
            sent.append(asyncio.create_task(one(n)))
        await asyncio.gather(*sent)
    print("done", flush=True)
    follower.cancel()


if __name__ == "__main__":
    name, count, flight, lead = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(name, count, flight, lead))
