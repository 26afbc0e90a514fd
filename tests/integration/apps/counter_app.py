"""A minimal Faust app with one table, for the plumbing test of table recovery.

Run as `python -m tests.integration.apps.counter_app worker`; configured by environment so the
test can point it at a fresh topic, app id, store and data directory.

Stock Faust is not exact across a restart: it can commit an offset whose changelog record is
still in its producer buffer (its flush gives up after 0.1 s) and it can ack records it skipped
during a rebalance (`streams/delivery_guard.py`). This app therefore takes the same two
safeguards as the worker: each record waits for its changelog record to be acknowledged before
it is acked, and the delivery guard counts only acks of records the agent handled. Without them
this test lost one count now and then.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import faust
import redis

from streams.contact_table import ConfirmedTable
from streams.faust_seams import GuardedConsumer, broker_urls, check_app, check_faust

check_faust()
app = faust.App(
    os.environ["SMOKE_APP_ID"],
    broker=broker_urls(os.environ["SMOKE_BOOTSTRAP"]),
    store=os.environ["SMOKE_STORE"],
    datadir=os.environ["SMOKE_DATADIR"],
    web_enabled=False,
    topic_partitions=4,
)
source = app.topic(
    os.environ["SMOKE_TOPIC"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
# The value is the set of record ids seen, not a counter: Kafka redelivers after a restart (the
# last records before a stop may be processed again), and a set makes that harmless.
seen: ConfirmedTable[str, list[str]] = ConfirmedTable(
    app, name="seen", default=list, partitions=4, beacon=app.tables.beacon
)
app.tables.add(seen)
mirror = redis.Redis.from_url(os.environ["SMOKE_REDIS_URL"])
check_app(app)
guard: GuardedConsumer = app.consumer


@app.agent(source)
async def count(stream: Any) -> None:
    async for event in stream.events():
        name = event.key.decode()
        ids = set(seen[name])
        ids.add(event.value.decode())
        seen[name] = sorted(ids)
        await asyncio.gather(*seen.take_unconfirmed())
        mirror.set(f"{os.environ['SMOKE_TOPIC']}:{name}", len(ids))
        guard.mark_handled([event.message])


@app.timer(2.0)  # type: ignore[untyped-decorator]
async def resolve_stalls() -> None:
    await guard.resolve_stalls()


if __name__ == "__main__":
    app.main()
