"""A minimal Faust app with one table, for the plumbing test of table recovery.

Run as `python -m tests.integration.apps.counter_app worker`; configured by environment so the
test can point it at a fresh topic, app id, store and data directory.
"""

from __future__ import annotations

import os
from typing import Any

import faust
import redis

app = faust.App(
    os.environ["SMOKE_APP_ID"],
    broker=f"kafka://{os.environ['SMOKE_BOOTSTRAP']}",
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
seen = app.Table("seen", default=list, partitions=4)
mirror = redis.Redis.from_url(os.environ["SMOKE_REDIS_URL"])


@app.agent(source)
async def count(stream: Any) -> None:
    async for key, value in stream.items():
        name = key.decode()
        ids = set(seen[name])
        ids.add(value.decode())
        seen[name] = sorted(ids)
        mirror.set(f"{os.environ['SMOKE_TOPIC']}:{name}", len(ids))


if __name__ == "__main__":
    app.main()
