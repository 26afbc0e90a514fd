"""Plumbing shared by the scenarios: subprocesses, Kafka offsets, producing, health polling.

Every consumer under test runs in its own process (like production), so the harness process only
produces, polls offsets and reads Redis, and never competes with the measured code for the GIL.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError, NotCoordinatorForGroupError

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class Proc:
    """A subprocess with its output in a log file, stopped politely (SIGTERM) then firmly."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass
class Services:
    """Where Kafka and Redis are, and the env every child process starts from."""

    bootstrap: str
    redis_url: str
    partitions: int
    workdir: Path
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def worker_env(
        self, prefix: str, app_id: str, data_dir: Path, port: int, **extra: str
    ) -> dict[str, str]:
        """Environment for `engagement-monitor worker` on an isolated prefix / app id."""
        return {
            **self.base_env,
            "EM_KAFKA_BOOTSTRAP": self.bootstrap,
            "EM_REDIS_URL": self.redis_url,
            "EM_TOPIC_PREFIX": prefix,
            "EM_APP_ID": app_id,
            "EM_PARTITIONS": str(self.partitions),
            "EM_STORE": "rocksdb",
            "EM_DATA_DIR": str(data_dir),
            "EM_WORKER_WEB_PORT": str(port),
            "EM_LOG_LEVEL": os.environ.get("EM_BENCH_LOG_LEVEL", "WARNING"),
            **extra,
        }

    def start_worker(self, name: str, env: Mapping[str, str]) -> Proc:
        argv = python_module("engagement_monitor.cli", "worker")
        return Proc(name, argv, env, self.workdir / f"{name}.log").start()


async def http_status(url: str, timeout: float = 2.0) -> int:  # noqa: ASYNC109
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url) as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


async def wait_healthy(
    proc: Proc,
    port: int,
    timeout: float = 180,  # noqa: ASYNC109
    interval: float = 0.1,
) -> float:
    """Seconds from the process start until `GET /healthz` answers 200."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/healthz"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited before it was healthy:\n{proc.tail()}")
        if await http_status(url) == 200:
            return time.monotonic() - proc.started_at
        await asyncio.sleep(interval)
    raise RuntimeError(f"{proc.name} not healthy after {timeout:.0f} s:\n{proc.tail()}")


class Kafka:
    """An admin client and an offset reader for the whole run."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        self.reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await asyncio.wait_for(self.admin.start(), 20)
        await asyncio.wait_for(self.reader.start(), 20)

    async def close(self) -> None:
        await self.reader.stop()
        await self.admin.close()

    async def create_topics(self, names: Sequence[str], partitions: int) -> None:
        await self.admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
        # Metadata propagates asynchronously; wait until every partition has a leader.
        for _ in range(100):
            layout = await self.partitions(names)
            if all(len(layout.get(n, ())) == partitions for n in names):
                return
            await asyncio.sleep(0.1)

    async def partitions(self, topics: Iterable[str]) -> dict[str, list[int]]:
        """Partitions (with a leader) of each existing topic among `topics`."""
        existing = set(await self.admin.list_topics())
        wanted = [t for t in topics if t in existing]
        if not wanted:
            return {}
        out: dict[str, list[int]] = {}
        for item in await self.admin.describe_topics(wanted):
            parts = [p["partition"] for p in item["partitions"] if p.get("leader", -1) >= 0]
            out[item["topic"]] = sorted(parts)
        return out

    async def end_offsets(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        layout = await self.partitions(topics)
        tps = [TopicPartition(t, p) for t, parts in layout.items() for p in parts]
        if not tps:
            return {}
        ends: dict[TopicPartition, int] = await self.reader.end_offsets(tps)
        return ends

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        """Offsets the group committed; none yet while a fresh broker still creates its
        offsets topic (the coordinator is not available then), which callers poll through."""
        try:
            raw = await self.admin.list_consumer_group_offsets(group)
        except (GroupCoordinatorNotAvailableError, NotCoordinatorForGroupError):
            return {}
        return {tp: meta.offset for tp, meta in raw.items() if meta.offset >= 0}

    async def delete_topics(self, names: list[str]) -> None:
        existing = set(await self.admin.list_topics())
        doomed = [n for n in names if n in existing]
        for start in range(0, len(doomed), 50):
            await self.admin.delete_topics(doomed[start : start + 50])
        if doomed:
            # The offset reader's client keeps every topic it was asked about in its metadata
            # and would warn about each deleted one at every refresh: a fresh reader forgets.
            await self.reader.stop()
            self.reader = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False
            )
            await asyncio.wait_for(self.reader.start(), 20)

    async def list_topics(self) -> list[str]:
        topics: list[str] = await self.admin.list_topics()
        return topics


async def produce(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes] | tuple[str, bytes | None, bytes, int]],
    *,
    linger_ms: int = 20,
) -> int:
    """Send (full topic, key, value) records as fast as the producer takes them; wait for acks.

    The default partitioner is Kafka's murmur2 of the key, like the Java client, so a keyed record
    lands on the partition the worker expects and a keyless one on a random partition.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
        # Idempotent: a retried batch (e.g. NotLeaderForPartition right after topic creation)
        # must not add a record, or the backlog would not be the one the reference describes.
        acks="all",
        enable_idempotence=True,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    n = 0
    try:
        futures: list[asyncio.Future[Any]] = []
        for record in records:
            topic, key, value = record[:3]
            partition = record[3] if len(record) > 3 else None
            futures.append(await producer.send(topic, value, key=key, partition=partition))
            n += 1
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures = []
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


@dataclass
class Drain:
    """How a consumer group drained a fixed backlog, from its committed offsets."""

    total: int
    completed: bool
    committed: int
    wall_seconds: float  # from the consumer process start to the last commit (or the budget)
    first_commit_at: float  # seconds after the process start
    events_per_second: float  # (committed - first commit) / (last commit time - first commit time)
    samples: list[tuple[float, int]]
    # With `follow` (the pipeline's two stages): when `group` had committed every input, and
    # the largest backlog of followed records (envelopes) not yet committed by `follow_group`.
    inputs_done_at: float | None = None
    max_follow_lag: int | None = None
    # CPU seconds (user + system) of the app's process tree over the same interval as
    # `events_per_second`: on a 2-core machine shared with Kafka and Redis, events per
    # CPU-second says what a core buys, whatever else ran.
    cpu_seconds: float | None = None
    samples_first_count: int = 0  # committed at the start of that interval

    @property
    def events_per_cpu_second(self) -> float | None:
        if not self.cpu_seconds:
            return None
        return (self.committed - self.samples_first_count) / self.cpu_seconds


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """A process and its live descendants (the pipeline's ingest processes), from Linux's
    /proc/<pid>/task/<tid>/children; an empty list once the process is gone."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue  # gone meanwhile
        found.append(current)
        for task in tasks:
            try:
                stack.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (one that already exited is
    not counted)."""
    ticks = 0
    for current in process_tree(pid):
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name: state is field 3
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / _CLOCK_TICKS


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of a process and its live descendants."""
    total = 0.0
    for current in process_tree(pid):
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
                        break
        except OSError:
            continue
    return round(total, 1)


async def watch_drain(
    kafka: Kafka,
    group: str,
    ends: Mapping[TopicPartition, int],
    proc: Proc,
    budget: float,
    *,
    follow: Sequence[str] = (),
    follow_group: str | None = None,
    interval: float = 0.1,
) -> Drain:
    """Poll the group's committed offsets until they reach `ends` (and `follow` topics' ends).

    The clock runs from the last poll before the group's first commit to the poll that sees the
    last one, so start-up (imports, topic creation, the first rebalance) is excluded and both
    ends of the interval are quantized the same way (by the poll and commit intervals). `follow`
    lists topics whose end moves while draining (the pipeline's envelopes): they must be
    committed to their end too, by `follow_group` (default: `group`).
    """
    total = sum(ends.values())
    samples: list[tuple[float, int]] = []
    first: tuple[float, int] | None = None
    deadline = proc.started_at + budget
    done_at: float | None = None
    inputs_done_at: float | None = None
    max_follow_lag: int | None = None
    count = 0
    cpu_before = cpu_first = cpu_done = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited while draining:\n{proc.tail()}")
        committed = await kafka.committed(group)
        now = time.monotonic() - proc.started_at
        cpu_now = tree_cpu_seconds(proc.pid)
        count = sum(min(committed.get(tp, 0), end) for tp, end in ends.items())
        if first is None and count > 0:
            # The drain began after the last poll that saw nothing committed: timing from
            # there keeps a backlog committed within one poll measurable (and errs low).
            first = samples[-1] if samples else (now, count)
            cpu_first = cpu_before if samples else cpu_now
        samples.append((now, count))
        cpu_before = cpu_now
        follow_lag = 0
        if follow:
            follow_ends = await kafka.end_offsets(follow)
            followed = (
                committed if follow_group in (None, group) else await kafka.committed(follow_group)
            )
            follow_lag = sum(max(0, end - followed.get(tp, 0)) for tp, end in follow_ends.items())
            max_follow_lag = max(max_follow_lag or 0, follow_lag)
        if count >= total:
            if inputs_done_at is None:
                inputs_done_at = now
            if follow_lag:
                await asyncio.sleep(interval)
                continue
            done_at = now
            cpu_done = cpu_now
            break
        await asyncio.sleep(interval)
    last_at = done_at if done_at is not None else samples[-1][0]
    rate = 0.0
    if first is not None and last_at > first[0]:
        rate = (count - first[1]) / (last_at - first[0])
    return Drain(
        total=total,
        completed=done_at is not None,
        committed=count,
        wall_seconds=last_at,
        first_commit_at=first[0] if first else float("nan"),
        events_per_second=rate,
        samples=samples[:: max(1, len(samples) // 200)],
        inputs_done_at=inputs_done_at,
        max_follow_lag=max_follow_lag,
        cpu_seconds=(
            cpu_done - cpu_first if cpu_done is not None and cpu_first is not None else None
        ),
        samples_first_count=first[1] if first else 0,
    )


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def settle_host(
    busy_below: float = 0.25, window: float = 1.0, limit: float = 30.0
) -> tuple[float, float]:
    """Wait until the machine's CPU use over `window` seconds is below `busy_below` (a share
    of all cores), at most `limit` seconds: what a scenario before left running (a JVM
    exiting, the broker deleting a thousand partitions' files a minute after their topics)
    must not be measured as this one's latency. (seconds waited, busy share at the end)."""
    started = time.monotonic()
    while True:
        busy0, total0 = _cpu_times()
        await asyncio.sleep(window)
        busy1, total1 = _cpu_times()
        share = (busy1 - busy0) / max(1, total1 - total0)
        waited = time.monotonic() - started
        if share < busy_below or waited >= limit:
            return round(waited, 1), round(share, 3)


class HarnessPauses:
    """Garbage collections of the harness process while a latency is measured.

    The harness holds the backlog and its reference (millions of objects) while it measures
    latency: a full collection over them stops its producer and its Redis poller alike, and
    every probe in flight looks that much slower. Recorded so a figure can be told apart from
    the worker's own, and avoided with `gc.freeze()` (`freeze_heap`).
    """

    def __init__(self) -> None:
        self.durations_ms: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self.durations_ms.append((time.perf_counter() - self._started) * 1000)
            self._started = 0.0

    def start(self) -> HarnessPauses:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, float | int]:
        return {
            "collections": len(self.durations_ms),
            "max_ms": round(max(self.durations_ms, default=0.0), 1),
            "total_ms": round(sum(self.durations_ms), 1),
        }


def freeze_heap() -> int:
    """Move everything alive now out of the collector's reach (`gc.freeze`): the backlog and the
    reference stay alive for the whole run and need never be traversed again. Returns the
    number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
