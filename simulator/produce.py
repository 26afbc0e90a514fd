"""The Kafka side of the simulator: write a record stream to the (prefixed) input topics.

Throughput comes from letting aiokafka batch: each ``send`` only enqueues the record (batches
fill for ``linger_ms`` or until ``max_batch_size``), and the delivery futures are awaited in
chunks rather than one by one, which would serialize the stream on the broker's round trip.
Awaiting every chunk bounds memory and surfaces a broker problem within one chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from simulator.config import SimRecord


class Producer(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` used here (a fake one in the tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Awaitable[Any]: ...


ProducerFactory = Callable[[str], Producer]


@dataclass(slots=True)
class SimStats:
    """What was produced: acknowledged records by topic and kind, failures, achieved rate."""

    sent: int = 0
    failed: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # exception type -> count

    @property
    def rate(self) -> float:
        """Acknowledged records per second over the whole run."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def render(self) -> str:
        lines = [
            f"produced {self.sent:,} records ({self.bytes / 1e6:.1f} MB) in {self.elapsed_s:.1f} s"
            f" = {self.rate:,.0f} records/s; failed: {self.failed:,}",
            "  by topic: " + ", ".join(f"{t} {n:,}" for t, n in sorted(self.by_topic.items())),
            "  by kind: " + ", ".join(f"{k} {n:,}" for k, n in sorted(self.by_kind.items())),
        ]
        if self.errors:
            lines.append(
                "  errors: " + ", ".join(f"{e} {n:,}" for e, n in sorted(self.errors.items()))
            )
        return "\n".join(lines)


def kafka_producer(bootstrap: str, linger_ms: int = 20) -> Producer:
    """An aiokafka producer tuned for a bulk replay: big batches, a short linger, acks=all."""
    from aiokafka import AIOKafkaProducer

    producer: Producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="engagement-monitor-simulator",
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,  # oversize test records must reach the worker
        request_timeout_ms=30_000,
    )
    return producer


async def produce(
    records: Iterable[SimRecord],
    bootstrap: str,
    prefix: str,
    rate: float | None,
    progress: bool,
    *,
    total: int | None = None,
    chunk: int = 5_000,
    producer_factory: ProducerFactory | None = None,
) -> SimStats:
    """Send ``records`` to ``{prefix}{topic}``; ``rate`` in records/s, None or 0 = flat out.

    Pacing is against the start time (record n leaves no earlier than n / rate seconds in), so
    a slow moment is caught up instead of lowering the average. ``total`` only sizes the
    progress bar.
    """
    producer = (producer_factory or kafka_producer)(bootstrap)
    await producer.start()
    stats = SimStats()
    pending: list[tuple[SimRecord, Awaitable[Any]]] = []
    started = time.monotonic()
    bar = _progress_bar() if progress else None
    task = bar.add_task("producing", total=total, rate="") if bar is not None else None
    reported = 0

    async def settle() -> None:
        nonlocal reported
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        for (record, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                stats.failed += 1
                stats.errors[type(result).__name__] += 1
                continue
            stats.sent += 1
            stats.bytes += len(record.value)
            stats.by_topic[record.topic] += 1
            stats.by_kind[record.kind] += 1
        pending.clear()
        if bar is not None and task is not None:
            done = stats.sent + stats.failed
            elapsed = max(1e-9, time.monotonic() - started)
            bar.update(task, advance=done - reported, rate=f"{stats.sent / elapsed:,.0f} rec/s")
            reported = done

    try:
        if bar is not None:
            bar.start()
        for n, record in enumerate(records):
            if rate:
                ahead = started + n / rate - time.monotonic()
                if ahead > 0.002:
                    if pending and ahead > 0.05:
                        await settle()  # keep the bar moving while we wait
                        ahead = started + n / rate - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            future = await producer.send(prefix + record.topic, value=record.value, key=record.key)
            pending.append((record, future))
            if len(pending) >= chunk:
                await settle()
        if pending:
            await settle()
    finally:
        try:
            await producer.stop()
        finally:
            stats.elapsed_s = time.monotonic() - started
            if bar is not None:
                bar.stop()
    return stats


def _progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        refresh_per_second=8,
    )
