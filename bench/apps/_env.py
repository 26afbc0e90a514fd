"""Configuration of the comparison apps, from the environment the harness sets (BENCH_*)."""

from __future__ import annotations

import os
import time

import redis


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(f"BENCH_{name}", default)
    if value is None:
        raise SystemExit(f"BENCH_{name} is not set (these apps are started by bench/)")
    return value


def topics() -> list[str]:
    return [t for t in env("TOPICS").split(",") if t]


class Stats:
    """Records consumed, first and last consumption time (epoch s), mirrored to a Redis hash.

    The harness measures throughput from committed offsets; this is the cross-check that the
    app really read (and decoded) every record, not just committed offsets.
    """

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(env("REDIS_URL"))
        self.key = env("STATS_KEY")
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def add(self, n: int, started: float | None = None) -> None:
        """Count `n` records whose processing began at `started` (epoch s) and ends now."""
        now = time.time()
        if not self.count:
            self.first = started if started is not None else now
        self.count += n
        self.last = now

    def flush(self) -> None:
        self.client.hset(
            self.key, mapping={"count": self.count, "first": self.first, "last": self.last}
        )
