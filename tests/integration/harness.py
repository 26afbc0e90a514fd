"""Run the real `engagement-monitor worker` as a subprocess, and talk to its topics and Redis.

Each test gets its own topic prefix and app id, so tests never share a topic, a consumer group or
a changelog, and can run against the one broker the project started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from engagement_monitor import keyspace as ks
from engagement_monitor.snapshot_codec import unpack_snapshot

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ago(days: float = 0, *, seconds: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days, seconds=seconds)).isoformat()


@dataclass
class Pipeline:
    """The settings of one isolated pipeline (prefix, app id, data dir) and its worker(s)."""

    bootstrap: str
    redis_url: str
    unique: str
    tmp: Path
    partitions: int = 4
    store: str = "memory"
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"t{self.unique}."

    @property
    def app_id(self) -> str:
        return f"em-{self.unique}"

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "EM_KAFKA_BOOTSTRAP": self.bootstrap,
            "EM_REDIS_URL": self.redis_url,
            "EM_TOPIC_PREFIX": self.prefix,
            "EM_APP_ID": self.app_id,
            "EM_PARTITIONS": str(self.partitions),
            "EM_STORE": self.store,
            "EM_DATA_DIR": str(self.tmp / name),
            "EM_WORKER_WEB_PORT": str(free_port()),
            "EM_BATCH_MAX_SECONDS": "0.05",
            "EM_LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    async def start_worker(self, name: str = "w1") -> WorkerProcess:
        worker = WorkerProcess(name, self.env(name), self.tmp / f"{name}.log")
        worker.start()
        self.workers.append(worker)
        await worker.wait_healthy()
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()

    def topic(self, short: str) -> str:
        return f"{self.prefix}{short}"

    async def produce(
        self, records: Iterable[tuple[str, bytes | None, Any]], *, linger_ms: int = 5
    ) -> int:
        """Send (short topic, key, value) records; dict values are JSON-encoded, None is sent as
        a null value (a tombstone)."""
        # acks=all: on a cluster, a record the test sent is one a killed leader cannot lose.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=linger_ms,
            acks="all",
            enable_idempotence=True,
        )
        await producer.start()
        n = 0
        try:
            futures = []
            for short, key, value in records:
                raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
                futures.append(await producer.send(self.topic(short), raw, key=key))
                n += 1
            await producer.flush()
            for fut in futures:
                await fut
        finally:
            await producer.stop()
        return n

    def _reader(self, topic: str) -> AIOKafkaConsumer:
        """A consumer of every partition of `topic` from the start, outside any group."""
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )

    async def consume_all(
        self, short: str, *, expect: int | None = None, timeout: float = 60
    ) -> list[Any]:
        """Every record of a topic from the start (waiting for `expect` of them if given)."""
        consumer = self._reader(self.topic(short))
        await consumer.start()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            idle = 0
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                got = sum(len(v) for v in batch.values())
                for part in batch.values():
                    records.extend(part)
                if expect is not None and len(records) >= expect:
                    break
                idle = idle + 1 if got == 0 else 0
                if expect is None and idle >= 4:
                    break
        finally:
            await consumer.stop()
        return records

    async def read_to_end(self, short: str, *, timeout: float = 60) -> list[Any]:
        """Every record a topic holds now (up to the end offsets read first): for a topic that
        nothing writes to any more, without `consume_all`'s two idle seconds."""
        topic = self.topic(short)
        consumer = self._reader(topic)
        await consumer.start()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while not consumer.assignment():  # without a group: every partition, once known
                assert time.monotonic() < deadline, f"{topic}: no partitions in {timeout} s"
                await asyncio.sleep(0.05)
            ends = await consumer.end_offsets(list(consumer.assignment()))
            behind = {tp for tp, end in ends.items() if end > 0}
            while behind:
                assert time.monotonic() < deadline, f"{topic}: not read to {ends} in {timeout} s"
                for part in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(part)
                behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
        finally:
            await consumer.stop()
        return records


class WorkerProcess:
    def __init__(self, name: str, env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = int(self.env["EM_WORKER_WEB_PORT"])

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engagement_monitor.cli", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    async def health(self) -> int:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/healthz")
                return response.status_code
        except httpx.HTTPError:
            return 0

    async def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.tail()}")
            if await self.health() == 200:
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"worker {self.name} never became healthy:\n{self.tail()}")

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def snapshot(client: aioredis.Redis, org_id: str, contact_id: str) -> dict[str, Any] | None:
    raw = await client.get(ks.redis_snapshot_key(org_id, contact_id))
    return orjson.loads(unpack_snapshot(raw)) if raw is not None else None


async def wait_for(
    probe: Any, *, timeout: float = 60, interval: float = 0.3, what: str = "condition"
) -> Any:
    """Poll an async probe until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def figures(snap: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a snapshot that must be exact (everything but the as-of time)."""
    if snap is None:
        return None
    return {k: v for k, v in snap.items() if k != "as_of"}
