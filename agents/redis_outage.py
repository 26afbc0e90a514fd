"""Riding out a Redis outage: the worker keeps counting, and Redis is rebuilt once it answers.

Redis is a cache of the tables (`engagement_monitor.redis_layout`), so nothing the worker
computes may wait for it. While Redis does not answer:

* batches land as usual (outputs, then the table's changelog), and their snapshot writes are
  skipped, so the worker keeps consuming at its own pace and its state stays exact;
* deletions are remembered (bounded), since a rebuild from the tables rewrites the contacts
  that exist but cannot know which snapshots to remove;
* the worker reports itself `degraded` on `/healthz`, with the reason and since when, and in
  `em_redis_up` / `em_redis_outages_total` / `em_redis_writes_held_total`;
* it probes Redis with a growing delay (1 s, 2 s, 4 s ... 30 s).

Once Redis answers, writes resume at once, then every snapshot of the worker's partitions is
rewritten from its table and the remembered deletions are replayed. Both carry the contact's
version, and Redis keeps the higher one (`UPSERT_LUA`), so a rebuild racing a live batch
never puts an older snapshot back. Whether Redis was merely unreachable or restarted empty
makes no difference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from agents import metrics as m
from agents.processor import RedisJob, SnapshotWrite

log = logging.getLogger("engagement_monitor.redis")

# What a Redis client raises when the server is gone, hangs or restarts (ConnectionError,
# TimeoutError, "LOADING", a closed connection, and socket errors underneath).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

FIRST_PROBE_SECONDS = 1.0
MAX_PROBE_SECONDS = 30.0
MAX_HELD_DELETES = 100_000


@dataclass
class Outage:
    reason: str
    since: datetime
    next_probe: float  # monotonic
    delay: float
    attempts: int = 0


class RedisHealth:
    """Up, or down since when and why, with the next probe time (backoff)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.outage: Outage | None = None
        m.REDIS_UP.set(1)

    @property
    def up(self) -> bool:
        return self.outage is None

    def failed(self, exc: BaseException, during: str) -> None:
        """A Redis call failed: the first failure starts an outage, later ones back off."""
        reason = f"{during}: {type(exc).__name__}: {exc}"
        if self.outage is None:
            self.outage = Outage(
                reason, datetime.now(UTC), self.clock() + FIRST_PROBE_SECONDS, FIRST_PROBE_SECONDS
            )
            m.REDIS_UP.set(0)
            m.REDIS_OUTAGES.inc()
            log.error("Redis unavailable (%s): counting goes on, snapshots wait", reason)
            return
        outage = self.outage
        outage.reason = reason
        outage.attempts += 1
        outage.delay = min(outage.delay * 2, MAX_PROBE_SECONDS)
        outage.next_probe = self.clock() + outage.delay
        log.warning("Redis still unavailable (%s); next try in %.0f s", reason, outage.delay)

    def probe_due(self) -> bool:
        return self.outage is not None and self.clock() >= self.outage.next_probe

    def recovered(self) -> None:
        if self.outage is not None:
            seconds = (datetime.now(UTC) - self.outage.since).total_seconds()
            log.info("Redis answers again after %.1f s; rebuilding its snapshots", seconds)
        self.outage = None
        m.REDIS_UP.set(1)

    def describe(self) -> str:
        if self.outage is None:
            return "redis ok"
        since = self.outage.since.strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"redis unavailable since {since} ({self.outage.reason}); counting continues and "
            "every snapshot of this worker is rebuilt once it answers"
        )


class OutageAwareSnapshots:
    """`agents.checkpoint.Snapshots` that never holds a batch for Redis: skips while it is down.

    `write` renders and writes a checkpoint's Redis jobs (`agents.snapshot_process`, or the
    worker's own sink); what it raises of `REDIS_ERRORS` starts or prolongs an outage.
    `prepare` and `drop`, when given, start rendering a part's jobs as soon as it is built, and
    forget them when it is abandoned (`agents.snapshot_process.SnapshotProcess`)."""

    def __init__(
        self,
        write: Callable[[Sequence[RedisJob], Any], Awaitable[None]],
        health: RedisHealth,
        max_held_deletes: int = MAX_HELD_DELETES,
        *,
        prepare: Callable[[Sequence[RedisJob]], Any] | None = None,
        drop: Callable[[Any], None] | None = None,
    ) -> None:
        self.write = write
        self.prepare_jobs = prepare
        self.drop_prepared = drop
        self.health = health
        self.max_held_deletes = max_held_deletes
        # (org, contact) -> the newest delete op not yet in Redis
        self.held_deletes: dict[tuple[str, str], SnapshotWrite] = {}
        self.deletes_dropped = 0

    def prepare(self, jobs: Sequence[RedisJob]) -> Any:
        """Start rendering a part's jobs (while Redis is up): what `apply` or `drop` take."""
        if not jobs or not self.health.up or self.prepare_jobs is None:
            return None
        return self.prepare_jobs(jobs)

    def drop(self, prepared: Any) -> None:
        if prepared is not None and self.drop_prepared is not None:
            self.drop_prepared(prepared)

    async def apply(self, jobs: Sequence[RedisJob], prepared: Any = None) -> None:
        if not jobs:
            self.drop(prepared)
            return
        if self.health.up:
            try:
                await self.write(jobs, prepared)
                return
            except REDIS_ERRORS as exc:
                self.health.failed(exc, "writing snapshots")
        else:
            self.drop(prepared)
        self.hold(jobs)

    def hold(self, jobs: Sequence[RedisJob]) -> None:
        """Remember what a rebuild from the tables cannot redo: the deletions."""
        m.REDIS_WRITES_HELD.inc(len(jobs))
        for job in jobs:
            key = (job.org_id, job.contact_id)
            if job.shown:
                self.held_deletes.pop(key, None)  # re-created: the rebuild writes it
            elif key in self.held_deletes or len(self.held_deletes) < self.max_held_deletes:
                self.held_deletes[key] = job.removal()
            else:
                self.deletes_dropped += 1
                if self.deletes_dropped == 1:
                    log.error(
                        "more than %d deletions held during the Redis outage: later ones stay "
                        "in Redis until `engagement-monitor resnapshot` after a FLUSHDB",
                        self.max_held_deletes,
                    )

    def take_held_deletes(self) -> list[SnapshotWrite]:
        held, self.held_deletes = list(self.held_deletes.values()), {}
        return held
