"""Probe contacts: dispatches to never-seen contacts, and when their snapshots appear in Redis.

The latency scenarios (4, 4b) and the fail-over scenario (7b) measure event -> snapshot time the
same way: a probe is handed to the producer (`send`), and Redis is polled (`poll`) until its
snapshot is there; the difference is the latency (producer linger, broker, ingest, agent,
checkpoint and Redis included, quantized by the polling interval).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from engagement_monitor import keyspace as ks
from streams.topics import TopicNames

POLL_BATCH = 1000  # snapshot keys asked per MGET


class Probes:
    """Probes of one org: `sent_at` / `seen_at` by contact id (perf_counter seconds)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        producer: AIOKafkaProducer,
        names: TopicNames,
        org_id: str,
    ) -> None:
        self.redis = redis
        self.producer = producer
        self.topic = names.full("dispatch")
        self.org_id = org_id
        self.sent_at: dict[str, float] = {}
        self.seen_at: dict[str, float] = {}

    @property
    def pending(self) -> int:
        return len(self.sent_at) - len(self.seen_at)

    async def send(self, contact_id: str) -> None:
        """A dispatch to `contact_id`, timed from now."""
        value = orjson.dumps(
            {
                "event_id": uuid.uuid4().hex,
                "org_id": self.org_id,
                "contact_id": contact_id,
                "channel": "sms",
                "message_id": "m1",
                "dispatch_kind": "single",
                "occurred_at": datetime.now(UTC).isoformat(),
            }
        )
        self.sent_at[contact_id] = time.perf_counter()
        await self.producer.send(self.topic, value, key=ks.record_key(self.org_id, contact_id))

    async def poll(self) -> None:
        """One look at Redis for the probes not seen yet (up to `POLL_BATCH` of them)."""
        waiting = [c for c in self.sent_at if c not in self.seen_at][:POLL_BATCH]
        if not waiting:
            return
        raws = await self.redis.mget([ks.redis_snapshot_key(self.org_id, c) for c in waiting])
        now = time.perf_counter()
        for contact, raw in zip(waiting, raws, strict=True):
            if raw is not None:
                self.seen_at[contact] = now

    def latencies_ms(self, contacts: list[str] | None = None) -> list[float]:
        """Sorted latencies of the probes seen (of `contacts`, or all)."""
        chosen = self.seen_at if contacts is None else [c for c in contacts if c in self.seen_at]
        return sorted((self.seen_at[c] - self.sent_at[c]) * 1000 for c in chosen)

    def by_second(self, start: float) -> list[dict[str, float | int]]:
        """p50 and max latency (ms) of the probes sent in each second after `start`: shows
        whether a high percentile comes from the worker's first seconds or from all along."""
        buckets: dict[int, list[float]] = {}
        for contact, seen in self.seen_at.items():
            sent = self.sent_at[contact]
            buckets.setdefault(int(sent - start), []).append((seen - sent) * 1000)
        out: list[dict[str, float | int]] = []
        for second in sorted(buckets):
            values = sorted(buckets[second])
            out.append(
                {
                    "second": second,
                    "probes": len(values),
                    "p50_ms": round(values[len(values) // 2], 1),
                    "max_ms": round(values[-1], 1),
                }
            )
        return out
