"""Scenario 3: the peer to beat — engagement counts the way the Faust documentation suggests.

One agent per topic, typed `faust.Record` values, and per (org, contact, channel) counters in
hopping windowed tables (90-day windows advancing by one day, relative to the event's
`occurred_at`), i.e. `table[key] += 1` on a `.hopping(...)` table. Faust then writes one table
key (and one changelog record) per window the event falls in: 90 per event. The profile topic
goes to a plain table.

It does less than the pipeline (no unique-per-message counting, no deduplication, no
sending errors, no rates or tiers, no snapshot in Redis) and is still the natural first design;
its counts are *not* exact under duplicates (a re-sent open counts twice). It is measured for
throughput only.

Run by the harness: `python -m bench.apps.naive_app worker -l warn`, configured by BENCH_*.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import faust

from bench.apps._env import Stats, env
from engagement_monitor.keyspace import state_key

PREFIX = env("PREFIX")
WINDOW = timedelta(days=90)
STEP = timedelta(days=1)


class Engagement(faust.Record, serializer="json", coerce=True):
    event_id: str
    org_id: str
    contact_id: str
    occurred_at: datetime
    channel: str = ""
    message_id: str = ""


class ContactChange(faust.Record, serializer="json", coerce=True):
    event_id: str
    org_id: str
    contact_id: str
    occurred_at: datetime
    type: str = ""
    name: str = ""


app = faust.App(
    env("APP_ID"),
    broker=f"kafka://{env('BOOTSTRAP')}",
    store=env("STORE", "rocksdb://"),
    datadir=env("DATADIR"),
    topic_partitions=int(env("PARTITIONS")),
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=1.0,
)
stats = Stats()


def windowed(name: str) -> Any:
    return (
        app.Table(name, default=int, partitions=int(env("PARTITIONS")))
        .hopping(WINDOW, STEP, expires=WINDOW + STEP)
        .relative_to_field(Engagement.occurred_at)  # type: ignore[arg-type]
    )


def counting_agent(short: str) -> None:
    topic = app.topic(
        f"{PREFIX}{short}", value_type=Engagement, key_type=bytes, key_serializer="raw"
    )
    table = windowed(f"{short}-counts")

    async def count(stream: Any) -> None:
        async for event in stream:
            table[f"{state_key(event.org_id, event.contact_id).decode()}|{event.channel}"] += 1
            stats.add(1)

    app.agent(topic, name=f"count-{short}")(count)


for _short in ("dispatch", "delivery", "open", "click", "reply", "unsubscribe"):
    counting_agent(_short)

profiles = app.Table("profiles", default=dict, partitions=int(env("PARTITIONS")))
contact_topic = app.topic(
    f"{PREFIX}contact", value_type=ContactChange, key_type=bytes, key_serializer="raw"
)


@app.agent(contact_topic, name="profiles")
async def on_contact(stream: Any) -> None:
    async for change in stream:
        profiles[state_key(change.org_id, change.contact_id).decode()] = {
            "type": change.type,
            "name": change.name,
            "at": change.occurred_at.isoformat(),
        }
        stats.add(1)


@app.timer(1.0)  # type: ignore[untyped-decorator]
async def report() -> None:
    stats.flush()


if __name__ == "__main__":
    app.main()
