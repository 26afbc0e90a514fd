"""A minimal Faust app with one table, for the plumbing test of table recovery.

Run as `python -m tests.integration.apps.counter_app worker`; configured by environment so the
test can point it at a fresh topic, app id, store and data directory.

It writes its table the way the worker's checkpoints do (`agents.checkpoint`): the changelog
record through the worker's own producer (`streams.record_writer`), acknowledged, then the store
through `write_checkpoint` with that changelog offset, and only then is the record marked handled
for the delivery guard. Faust's own recovery must then rebuild the table from that changelog,
on both stores the worker can use.
"""

from __future__ import annotations

import os
from typing import Any, cast

import faust
import orjson
import redis

from streams.checkpoint_store import CheckpointStore
from streams.faust_seams import GuardedConsumer, broker_urls, check_app, check_faust
from streams.record_writer import Record, RecordWriter

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
seen: faust.Table[bytes, bytes] = faust.Table(
    app,
    name="seen",
    default=None,
    partitions=4,
    beacon=app.tables.beacon,
    key_type=bytes,
    value_type=bytes,
    schema=faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    ),
)
app.tables.add(seen)
mirror = redis.Redis.from_url(os.environ["SMOKE_REDIS_URL"])
check_app(app)
guard: GuardedConsumer = app.consumer
writer = RecordWriter(os.environ["SMOKE_BOOTSTRAP"])
changelog = seen.changelog_topic.get_topic_name()


@app.agent(source)
async def count(stream: Any) -> None:
    store = cast(CheckpointStore, seen.data)
    async for event in stream.events():
        partition = event.message.partition
        raw = store.get_in_partition(partition, event.key)
        ids = set(orjson.loads(raw)) if raw is not None else set()
        ids.add(event.value.decode())
        value = orjson.dumps(sorted(ids))
        offsets = await writer.write([Record(changelog, event.key, value, partition)])
        store.write_checkpoint(partition, [(event.key, value)], offsets[(changelog, partition)])
        mirror.set(f"{os.environ['SMOKE_TOPIC']}:{event.key.decode()}", len(ids))
        guard.mark_handled([event.message])


@app.timer(2.0)  # type: ignore[untyped-decorator]
async def resolve_stalls() -> None:
    await guard.resolve_stalls()


if __name__ == "__main__":
    app.main()
