"""Scenario 0: a Faust agent that iterates the pipeline's topics, decodes, and does nothing else.

It is the framework's own floor: the same topics, the same raw codecs, the same batching
(`take_events(EM_BATCH_MAX_RECORDS, within=EM_BATCH_MAX_SECONDS)`), the same commit interval
as the pipeline's app (`streams/app.py`), so whatever the pipeline loses beyond this is its own
work (parsing, counting, table, Redis), not Faust's.

Run by the harness: `python -m bench.apps.empty_agent worker -l warn`, configured by BENCH_*.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import orjson

from bench.apps._env import Stats, env, topics

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}

app = faust.App(
    env("APP_ID"),
    broker=f"kafka://{env('BOOTSTRAP')}",
    store="memory://",
    datadir=env("DATADIR"),
    topic_partitions=int(env("PARTITIONS")),
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=1.0,
    stream_buffer_maxsize=max(4096, int(env("BATCH_MAX_RECORDS", "2000")) * 2),
)
source = app.topic(*topics(), **RAW)
stats = Stats()


@app.agent(source, name="empty")
async def empty(stream: Any) -> None:
    size = int(env("BATCH_MAX_RECORDS", "2000"))
    within = float(env("BATCH_MAX_SECONDS", "0.1"))
    async for events in stream.take_events(size, within=within):
        started = time.time()
        for event in events:
            orjson.loads(event.message.value)
        stats.add(len(events), started)


@app.timer(1.0)  # type: ignore[untyped-decorator]
async def report() -> None:
    stats.flush()


if __name__ == "__main__":
    app.main()
