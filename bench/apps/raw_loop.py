"""Scenario 1: the ceiling for a Python consumer here — a bare aiokafka loop.

Consumes the same topics with its own group, decodes every record with orjson and counts per
(org, contact, channel, topic) in a dict: the least work that still touches every record.
It commits after every fetched batch so the harness's committed-offset clock
has a fine grain; Faust apps commit every second, which the harness's clock cancels out by
measuring from the first commit to the last.

Run by the harness: `python -m bench.apps.raw_loop`, configured by BENCH_*.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer

from bench.apps._env import Stats, env, topics


async def main() -> None:
    consumer = AIOKafkaConsumer(
        *topics(),
        bootstrap_servers=env("BOOTSTRAP"),
        group_id=env("APP_ID"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    counts: Counter[tuple[str, str, str | None, str]] = Counter()
    stats = Stats()
    await consumer.start()
    last_flush = 0.0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            n = 0
            started = time.time()
            for tp, messages in batch.items():
                topic = tp.topic
                for message in messages:
                    d = orjson.loads(message.value or b"null")
                    counts[(d["org_id"], d["contact_id"], d.get("channel"), topic)] += 1
                n += len(messages)
            if n:
                stats.add(n, started)
                await consumer.commit()
            if loop.time() - last_flush > 1.0:
                stats.flush()
                last_flush = loop.time()
    finally:
        stats.flush()
        with contextlib.suppress(Exception):
            await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main())
