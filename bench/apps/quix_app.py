"""Peer: the same counting rules in quixstreams, as far as its API allows without heroics.

Run by the harness in its own virtualenv (`.venv-quix`, quixstreams pinned in
bench/peers.py: it pins a pydantic older than the project's), configured by BENCH_*.

What it does, per contact (records re-keyed `org:contact` with `group_by`, which goes through a
repartition topic, as Kafka Streams' `selectKey` would):

* remembers the last 256 event ids and ignores a repeated one;
* keeps every message of the 90-day window: channel, earliest dispatch, and a flag each for
  delivered / opened / clicked / replied (an interaction implies delivery), so each figure is
  unique per message whatever the arrival order;
* after every event, counts dispatched / delivered / opened / clicked / replied per channel
  and writes that per-contact result to its output topic (`{prefix}peer.quix.results`);
* state in quixstreams' RocksDB store with its changelog; at-least-once, 5 s checkpoints.

What it does not do: rates, tiers, engagement, sending errors and subscriptions, expiry
without new events, best send times, snapshots in Redis, dead letters (a record it cannot
read is skipped), machine opens, bot clicks, bounces and complaints.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from quixstreams import Application, State

from bench.apps._env import Stats, env, topics

WINDOW_MS = 90 * 86_400_000
FLAGS = {"delivery": 1, "open": 2, "click": 4, "reply": 8}
SEEN_MAX = 256


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def main() -> None:
    app = Application(
        broker_address=env("BOOTSTRAP"),
        consumer_group=env("APP_ID"),
        auto_offset_reset="earliest",
        commit_interval=5.0,
        state_dir=os.path.join(env("DATADIR"), "state"),
        processing_guarantee="at-least-once",
        loglevel="WARNING",
    )
    stats = Stats()
    last_flush = [0.0]
    output = app.topic(f"{env('PREFIX')}peer.quix.results", value_serializer="json")

    def count(value: dict[str, Any], state: State) -> dict[str, Any] | None:
        stats.add(1)
        now = time.monotonic()
        if now - last_flush[0] > 1.0:
            stats.flush()
            last_flush[0] = now
        if not isinstance(value, dict):
            return None
        kind = value["_kind"]
        seen: list[str] = state.get("seen", [])
        event_id = str(value.get("event_id"))
        if event_id in seen:
            return None
        seen.append(event_id)
        if len(seen) > SEEN_MAX:
            del seen[0]
        state.set("seen", seen)
        if kind not in ("dispatch", *FLAGS):
            return None
        messages: dict[str, list[Any]] = state.get("m", {})
        at = _ms(value["occurred_at"])
        record = messages.setdefault(value["message_id"], [value["channel"], None, 0])
        if kind == "dispatch":
            if record[1] is None or at < record[1]:
                record[0], record[1] = value["channel"], at
        else:
            record[2] |= FLAGS[kind]
        start = int(time.time() * 1000) - WINDOW_MS
        messages = {m: r for m, r in messages.items() if r[1] is None or r[1] >= start}
        state.set("m", messages)
        figures: dict[str, list[int]] = {}
        for channel, dispatched, flags in messages.values():
            if dispatched is None:
                continue  # waits for its dispatch
            f = figures.setdefault(channel, [0, 0, 0, 0, 0])
            f[0] += 1
            f[1] += bool(flags)
            f[2] += bool(flags & 2)
            f[3] += bool(flags & 4)
            f[4] += bool(flags & 8)
        return {"org_id": value["org_id"], "contact_id": value["contact_id"], "figures": figures}

    frames = []
    prefix = env("PREFIX")
    for name in topics():
        kind = name.removeprefix(prefix)
        sdf = app.dataframe(app.topic(name, value_deserializer="json", key_deserializer="bytes"))
        frames.append(
            sdf.apply(lambda v, kind=kind: {**v, "_kind": kind} if isinstance(v, dict) else v)
        )
    stream = frames[0]
    for other in frames[1:]:  # one stream over every topic, then one state keyed by contact
        stream = stream.concat(other)
    stream = stream.group_by(lambda v: f"{v['org_id']}:{v['contact_id']}", name="contact")
    stream = stream.apply(count, stateful=True).filter(lambda v: v is not None)
    stream.to_topic(output)
    try:
        app.run()
    finally:
        stats.flush()


if __name__ == "__main__":
    main()
