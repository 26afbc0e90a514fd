"""The benchmark run: one backlog, eight scenarios, one JSON document.

Scenarios (the issue's numbering):

0. ``empty``    — an empty Faust agent on the backlog (the framework's floor);
1. ``raw``      — a bare aiokafka + orjson loop on the backlog (the Python ceiling);
2. ``pipeline`` — `engagement-monitor worker` draining the backlog, exactness-checked;
3. ``naive``    — a Faust-docs-style app (hopping windowed tables) on the backlog;
4. ``latency``  — event -> snapshot latency at a fixed offered rate;
5. ``api``      — snapshot GET latency at a fixed request rate (needs `read_api`);
6. ``footprint``— Redis and table bytes per contact (measured on the pipeline's run);
7. ``recovery`` — restart time of a worker holding N contacts (store kept, store wiped).

Every scenario gets its own consumer group / app id, and the ones that need fresh topics their
own topic prefix, so nothing is shared between scenarios or with other runs on the same broker.
Scenarios 0-3 read the same backlog, produced once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition

from bench import backlog as bl
from bench.common import (
    ROOT,
    Drain,
    HarnessPauses,
    Kafka,
    Proc,
    Services,
    dir_bytes,
    free_port,
    freeze_heap,
    percentile,
    produce,
    python_module,
    settle_host,
    wait_healthy,
    watch_drain,
)
from bench.names import SCENARIOS, TITLES
from bench.probes import Probes
from counting import CountingConfig
from engagement_monitor import keyspace as ks
from engagement_monitor.native import status as native_status
from engagement_monitor.snapshot_codec import unpack_snapshot
from streams.topics import TopicNames

TIERS = ("no_engagement", "low", "high", "very_high")


@dataclass
class BenchConfig:
    """Everything a run depends on; recorded verbatim in the JSON."""

    events: int = 200_000
    contacts: int = 20_000
    orgs: int = 20
    messages: int | None = None
    mix: dict[str, float] = field(default_factory=lambda: dict(bl.DEFAULT_MIX))
    duplicate_rate: float = 0.03
    late_rate: float = 0.05
    seed: int = 7
    partitions: int = 8
    scenarios: tuple[str, ...] = SCENARIOS
    drain_budget: float = 240.0  # seconds a drain may take before it is reported incomplete
    naive_budget: float = 60.0  # the naive app is measured over this long at most
    check_sample: int = 0  # snapshots compared with the reference (0 = every contact)
    latency_rate: float = 2000.0
    latency_high_rate: float = 10000.0
    latency_seconds: float = 20.0
    # Offered before the measured window, at the same rate (OpenMessaging Benchmark's
    # warm-up): a fresh worker's first seconds pay one-off costs (producers' first metadata
    # and sends, the broker creating partitions' files); they are reported apart.
    latency_warmup_seconds: float = 5.0
    latency_probe_every: int = 20
    api_rate: float = 1000.0
    api_high_rate: float = 5000.0
    api_high_workers: int = 2  # EM_API_WORKERS of scenario 5b: one API process per core
    api_seconds: float = 15.0
    recovery_contacts: int = 1_000_000  # issue 14: a million contacts from an empty disk
    failover_session_seconds: int = 6  # EM_SESSION_TIMEOUT_SECONDS of scenario 7b's workers
    failover_settle_seconds: float = 120.0  # at most, waiting for the group to settle
    failover_window_seconds: float = 20.0
    webhook_batches: int = 200  # SendGrid batches of webhook_batch events (scenario 8)
    webhook_batch: int = 1000
    webhook_concurrency: int = 8
    profile: bool = False
    keep: bool = False
    preset: str = "default"


@dataclass
class Context:
    cfg: BenchConfig
    services: Services
    kafka: Kafka
    redis: aioredis.Redis
    run_id: str
    workdir: Path
    log: Callable[[str], None]
    backlog: bl.Backlog | None = None
    backlog_ends: dict[TopicPartition, int] = field(default_factory=dict)
    pipeline_sample: list[int] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    topics_created: list[str] = field(default_factory=list)
    app_ids: list[str] = field(default_factory=list)
    org_prefixes: list[str] = field(default_factory=list)

    @property
    def backlog_prefix(self) -> str:
        return f"bench{self.run_id}."

    def prefix(self, name: str) -> str:
        return f"bench{self.run_id}{name}."

    def app_id(self, name: str) -> str:
        app_id = f"bench-{self.run_id}-{name}"
        self.app_ids.append(app_id)
        return app_id

    def org_prefix(self, name: str) -> str:
        prefix = f"b{self.run_id}{name}"
        self.org_prefixes.append(prefix)
        return prefix


# --------------------------------------------------------------------------- backlog
async def prepare_backlog(ctx: Context) -> None:
    cfg = ctx.cfg
    spec = bl.BacklogSpec(
        events=cfg.events,
        contacts=cfg.contacts,
        orgs=cfg.orgs,
        messages=cfg.messages,
        mix=cfg.mix,
        duplicate_rate=cfg.duplicate_rate,
        late_rate=cfg.late_rate,
        seed=cfg.seed,
        org_prefix=ctx.org_prefix("bk"),
    )
    started = time.perf_counter()
    backlog = bl.generate(spec)
    generated = time.perf_counter() - started
    names = TopicNames(ctx.backlog_prefix)
    await ctx.kafka.create_topics(names.inputs, cfg.partitions)
    ctx.topics_created += list(names.inputs)
    ctx.log(f"backlog: {len(backlog.records):,} records generated in {generated:.1f} s; producing")
    started = time.perf_counter()
    sent = await produce(
        ctx.services.bootstrap,
        ((names.full(r.topic), r.key, r.value) for r in backlog.records),
    )
    produced = time.perf_counter() - started
    ctx.backlog = backlog
    ctx.backlog_ends = await ctx.kafka.end_offsets(names.inputs)
    on_broker = sum(ctx.backlog_ends.values())
    if on_broker != sent:
        raise RuntimeError(f"produced {sent} records but the topics hold {on_broker}")
    ctx.results["backlog"] = {
        "events": sent,
        "contacts": cfg.contacts,
        "contacts_touched": len(backlog.touched()),
        "orgs": cfg.orgs,
        "messages": backlog.messages,
        "duplicates": backlog.duplicates(),
        "keyless": sum(1 for r in backlog.records if r.key is None),
        "by_topic": backlog.by_topic(),
        "partitions": cfg.partitions,
        "generate_seconds": round(generated, 2),
        "produce_seconds": round(produced, 2),
        "produce_events_per_second": round(sent / produced) if produced else None,
    }
    ctx.log(f"backlog: {sent:,} records on {len(names.inputs)} topics in {produced:.1f} s")


def _drain_figures(drain: Drain, consumed: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": "ok" if drain.completed else "incomplete",
        "events": drain.committed,
        "of": drain.total,
        "events_per_second": round(drain.events_per_second),
        "seconds_to_first_commit": round(drain.first_commit_at, 2),
        "seconds_to_drained": round(drain.wall_seconds, 2),
    }
    if drain.cpu_seconds is not None:
        out["cpu_seconds"] = round(drain.cpu_seconds, 2)
        per_cpu = drain.events_per_cpu_second
        if per_cpu:  # none when the whole backlog was committed before the first poll
            out["events_per_cpu_second"] = round(per_cpu)
    if consumed is not None:
        out["records_seen_by_app"] = consumed
    if drain.inputs_done_at is not None:
        # The pipeline's two stages, each on its own: the ingest's group had committed every
        # input here, and the agent's group was at most this many envelopes behind.
        out["seconds_to_inputs_framed"] = round(drain.inputs_done_at, 2)
        out["max_envelope_lag"] = drain.max_follow_lag
    return out


async def _stats(ctx: Context, key: str) -> tuple[int, float]:
    """(records the app saw, its own first-to-last-record rate) from its Redis stats hash."""
    raw = await ctx.redis.hgetall(key)
    count = int(raw.get(b"count", 0))
    span = float(raw.get(b"last", 0)) - float(raw.get(b"first", 0))
    return count, (count / span if span > 0 else 0.0)


def _app_env(
    ctx: Context, app_id: str, data_dir: Path, stats_key: str, **extra: str
) -> dict[str, str]:
    names = TopicNames(ctx.backlog_prefix)
    return {
        **ctx.services.base_env,
        "BENCH_APP_ID": app_id,
        "BENCH_BOOTSTRAP": ctx.services.bootstrap,
        "BENCH_REDIS_URL": ctx.services.redis_url,
        "BENCH_TOPICS": ",".join(names.inputs),
        "BENCH_PREFIX": ctx.backlog_prefix,
        "BENCH_DATADIR": str(data_dir),
        "BENCH_PARTITIONS": str(ctx.cfg.partitions),
        "BENCH_STATS_KEY": stats_key,
        **extra,
    }


async def _run_consumer_app(
    ctx: Context, name: str, argv: list[str], budget: float, **extra_env: str
) -> dict[str, Any]:
    """Start a comparison app on the backlog with its own group; time its drain; stop it."""
    app_id = ctx.app_id(name)
    stats_key = f"bench:{ctx.run_id}:{name}"
    env = _app_env(ctx, app_id, ctx.workdir / name, stats_key, **extra_env)
    proc = Proc(name, argv, env, ctx.workdir / f"{name}.log").start()
    try:
        drain = await watch_drain(ctx.kafka, app_id, ctx.backlog_ends, proc, budget)
        await asyncio.sleep(1.2)  # let the app flush its stats once more
        seen, own_rate = await _stats(ctx, stats_key)
        figures = _drain_figures(drain, seen)
        figures["app_events_per_second"] = round(own_rate)
        if not figures["events_per_second"] and drain.completed:
            # the whole backlog fitted in one commit interval: only the app's clock can tell
            figures["events_per_second"] = round(own_rate)
            figures["note"] = "rate from the app's own clock (drained within one commit)"
    finally:
        proc.stop()
        await ctx.redis.delete(stats_key)
    return figures


async def scenario_empty(ctx: Context) -> dict[str, Any]:
    argv = python_module("bench.apps.empty_agent", "worker", "-l", "warn")
    return await _run_consumer_app(ctx, "empty", argv, ctx.cfg.drain_budget)


async def scenario_raw(ctx: Context) -> dict[str, Any]:
    return await _run_consumer_app(
        ctx, "raw", python_module("bench.apps.raw_loop"), ctx.cfg.drain_budget
    )


async def scenario_naive(ctx: Context) -> dict[str, Any]:
    argv = python_module("bench.apps.naive_app", "worker", "-l", "warn")
    figures = await _run_consumer_app(ctx, "naive", argv, ctx.cfg.naive_budget)
    if figures["status"] == "incomplete":
        figures["status"] = "partial"
        figures["note"] = (
            f"measured over a {ctx.cfg.naive_budget:.0f} s budget "
            f"({figures['events']:,} of {figures['of']:,} events committed)"
        )
        if not figures["events_per_second"] and figures.get("app_events_per_second"):
            # Its commits wait for the producer to flush 90 changelog writes per event, so
            # none may land within the budget: only the app's own count shows its pace.
            figures["events_per_second"] = figures["app_events_per_second"]
            figures["note"] = (
                f"no offset committed within the {ctx.cfg.naive_budget:.0f} s budget; rate from "
                f"the app's own count ({figures.get('records_seen_by_app', 0):,} events)"
            )
    return figures


# --------------------------------------------------------------------------- peers
async def _internal_topics(ctx: Context, app_id: str, proc: Proc, limit: float = 90) -> list[str]:
    """The repartition topics a peer creates for itself (both re-key by contact), once it has:
    the drain ends when the peer's group has committed them to their end too."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited while starting:\n{proc.tail()}")
        found = [t for t in await ctx.kafka.list_topics() if app_id in t and "repartition" in t]
        if found:
            return found
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{proc.name} created no repartition topic in {limit:.0f} s")


async def _run_peer(
    ctx: Context, name: str, argv: list[str], results_topic: str, **extra_env: str
) -> dict[str, Any]:
    """Start a peer on the backlog with its own group; time its drain (inputs and its
    repartition topic committed to their ends) and its process tree's CPU; stop it."""
    app_id = ctx.app_id(name)
    stats_key = f"bench:{ctx.run_id}:{name}"
    env = _app_env(ctx, app_id, ctx.workdir / name, stats_key, **extra_env)
    proc = Proc(name, argv, env, ctx.workdir / f"{name}.log").start()
    try:
        follow = await _internal_topics(ctx, app_id, proc)
        drain = await watch_drain(
            ctx.kafka, app_id, ctx.backlog_ends, proc, ctx.cfg.drain_budget, follow=follow
        )
        # Stopped first: a peer flushes its last count when it stops (a stream framework
        # has no idle timer to flush it on), so the count read after is complete.
        await asyncio.to_thread(proc.stop)
        seen, own_rate = await _stats(ctx, stats_key)
        figures = _drain_figures(drain, seen or None)
        if own_rate:
            figures["app_events_per_second"] = round(own_rate)
        # what it wrote: one per-contact result per counted event (proof that it counts)
        ends = await ctx.kafka.end_offsets([ctx.backlog_prefix + results_topic])
        figures["results_written"] = sum(ends.values())
    finally:
        proc.stop()
        await ctx.redis.delete(stats_key)
    return figures


async def scenario_quixstreams(ctx: Context) -> dict[str, Any]:
    from bench.peers import PeerUnavailable, quix_python

    try:
        python = quix_python()
    except (PeerUnavailable, OSError) as exc:
        return {"status": f"skipped: quixstreams peer unavailable ({exc})"}
    figures = await _run_peer(
        ctx, "quixstreams", [str(python), "-m", "bench.apps.quix_app"], "peer.quix.results"
    )
    figures["peer"] = "quixstreams"
    return figures


async def scenario_kstreams(ctx: Context) -> dict[str, Any]:
    import shutil

    from bench.peers import PeerUnavailable, kstreams_classpath

    java = shutil.which("java")
    if java is None:
        return {"status": "skipped: java is not installed"}
    try:
        classpath = await asyncio.to_thread(kstreams_classpath)
    except (PeerUnavailable, OSError) as exc:
        return {"status": f"skipped: Kafka Streams peer unavailable ({exc})"}
    argv = [java, f"-Xmx{KSTREAMS_HEAP}", "-cp", classpath, "engagement.peer.PeerApp"]
    figures = await _run_peer(ctx, "kstreams", argv, "peer.kstreams.results")
    figures["heap"] = KSTREAMS_HEAP
    return figures


KSTREAMS_HEAP = "1g"


# --------------------------------------------------------------------------- pipeline
async def _compare(
    ctx: Context, expected: dict[tuple[str, str], dict[str, Any] | None]
) -> list[tuple[str, str]]:
    keys = list(expected)
    wrong: list[tuple[str, str]] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        raws = await ctx.redis.mget([ks.redis_snapshot_key(o, c) for o, c in chunk])
        for key, raw in zip(chunk, raws, strict=True):
            got = orjson.loads(unpack_snapshot(raw)) if raw is not None else None
            if bl.figures(got) != bl.figures(expected[key]):
                wrong.append(key)
    return wrong


async def check_exact(ctx: Context, sample: list[int]) -> dict[str, Any]:
    """Compare the sampled contacts' Redis snapshots with the reference, every figure."""
    assert ctx.backlog is not None
    contacts = ctx.backlog.contacts
    expected = bl.reference(ctx.backlog.records, contacts, set(sample), CountingConfig())
    wrong = await _compare(ctx, expected)
    deadline = time.monotonic() + 20
    while wrong and time.monotonic() < deadline:  # a last Redis write may still be in flight
        await asyncio.sleep(1)
        wrong = await _compare(ctx, {k: expected[k] for k in wrong})
    result: dict[str, Any] = {
        "checked": len(expected),
        "mismatches": len(wrong),
        "passed": not wrong,
        "snapshots_compared": sum(1 for v in expected.values() if v is not None),
    }
    if wrong:
        org, contact = wrong[0]
        raw = await ctx.redis.get(ks.redis_snapshot_key(org, contact))
        result["first_mismatch"] = {
            "org_id": org,
            "contact_id": contact,
            "got": bl.figures(orjson.loads(unpack_snapshot(raw))) if raw else None,
            "expected": bl.figures(expected[(org, contact)]),
        }
    return result


class Profiler:
    """py-spy attached to a process for the duration of a drain (optional, `--profile`)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        exe = Path(sys.executable).with_name("py-spy")
        if not exe.exists():
            return
        self.proc = subprocess.Popen(
            [
                *(str(exe), "record", "--pid", str(pid), "--rate", "50", "--format", "raw"),
                *("--nonblocking", "--output", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if not self.out.exists():
            return None
        return summarize_profile(self.out)


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Self time and inclusive time per function from py-spy's collapsed stacks."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            if " (" in f
            else f
            for f in stack.split(";")
        ]
        if frames:
            self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    pct = 100 / total if total else 0
    return {
        "samples": total,
        "file": str(path),
        "self_top": [[f, round(n * pct, 1)] for f, n in self_time.most_common(top)],
        "inclusive_top": [[f, round(n * pct, 1)] for f, n in inclusive.most_common(top + 10)],
    }


async def scenario_pipeline(ctx: Context) -> dict[str, Any]:
    assert ctx.backlog is not None
    names = TopicNames(ctx.backlog_prefix)
    app_id = ctx.app_id("pipeline")
    data_dir = ctx.workdir / "pipeline"
    port = free_port()
    env = ctx.services.worker_env(ctx.backlog_prefix, app_id, data_dir, port)
    proc = ctx.services.start_worker("pipeline", env)
    profiler = Profiler(proc.pid, ctx.workdir / "pipeline.pyspy.txt") if ctx.cfg.profile else None
    result: dict[str, Any]
    try:
        # Inputs are committed by the ingest stage's group once framed into envelopes; the
        # drain ends when the agent's group has committed every envelope too.
        drain = await watch_drain(
            ctx.kafka,
            f"{app_id}-ingest",
            ctx.backlog_ends,
            proc,
            ctx.cfg.drain_budget,
            follow=[names.envelopes],
            follow_group=app_id,
        )
        profile = profiler.stop() if profiler else None
        result = _drain_figures(drain)
        ctx.log(f"pipeline: {drain.events_per_second:,.0f} ev/s; checking snapshots")
        sample = bl.sample_contacts(ctx.backlog, ctx.cfg.check_sample)
        ctx.pipeline_sample = sample
        result["exact"] = await check_exact(ctx, sample)
        if profile:
            result["profile"] = profile
        if "footprint" in ctx.cfg.scenarios:
            ctx.results["footprint"] = await redis_footprint(ctx, sample)
    finally:
        if profiler is not None and profiler.proc is not None and profiler.proc.poll() is None:
            profiler.proc.kill()
        proc.stop()
    if "footprint" in ctx.cfg.scenarios:
        ctx.results["footprint"].update(table_footprint(ctx, data_dir))
    return result


# --------------------------------------------------------------------------- footprint
async def redis_footprint(ctx: Context, sample: list[int]) -> dict[str, Any]:
    """Redis memory per contact (MEMORY USAGE): its own keys (stored snapshot, membership hash,
    tier history) for a sample, plus every org-wide key (segments, overview and search
    indexes, heatmap, tier-change sets) divided by the org's contacts."""
    assert ctx.backlog is not None
    contacts = ctx.backlog.contacts
    snap_bytes: list[int] = []
    stored_bytes: list[int] = []
    json_bytes: list[int] = []
    mem_bytes: list[int] = []
    hist_bytes: list[int] = []
    for idx in sample:
        org, contact = contacts[idx]
        key = ks.redis_snapshot_key(org, contact)
        usage = await ctx.redis.memory_usage(key, samples=0)
        if usage is None:
            continue
        snap_bytes.append(int(usage))
        stored = await ctx.redis.get(key)
        if stored is None:
            continue
        stored_bytes.append(len(stored))
        json_bytes.append(len(unpack_snapshot(stored)))
        hash_usage = await ctx.redis.memory_usage(ks.redis_membership_key(org, contact), samples=0)
        mem_bytes.append(int(hash_usage or 0))
        hist_usage = await ctx.redis.memory_usage(ks.redis_history_key(org, contact), samples=0)
        hist_bytes.append(int(hist_usage or 0))
    per_org: Counter[str] = Counter(contacts[i][0] for i in ctx.backlog.touched())
    by_kind: Counter[str] = Counter()
    for org in per_org:
        async for key in ctx.redis.scan_iter(match=ks.redis_org_pattern(org), count=1000):
            kind = ks.split_redis_key(key.decode())[0]
            if kind in ("snap", "mem", "hist"):
                continue  # per contact: sampled above
            by_kind[kind] += int(await ctx.redis.memory_usage(key, samples=0) or 0)
    n = max(1, len(snap_bytes))
    org_contacts = max(1, sum(per_org.values()))
    snap = sum(snap_bytes) / n
    mem = sum(mem_bytes) / n
    hist = sum(hist_bytes) / n
    seg = by_kind["seg"] / org_contacts
    del by_kind["seg"]
    indexes = sum(by_kind.values()) / org_contacts
    return {
        "status": "ok" if snap_bytes else "no snapshots",
        "contacts_sampled": len(snap_bytes),
        "redis_snapshot_bytes": round(snap),
        "redis_snapshot_stored_bytes": round(sum(stored_bytes) / n),
        "redis_snapshot_json_bytes": round(sum(json_bytes) / n),
        "redis_membership_bytes": round(mem),
        "redis_history_bytes": round(hist),
        "redis_segment_bytes_per_contact": round(seg),
        "redis_index_bytes_per_contact": round(indexes),
        "redis_index_bytes_by_kind": {k: round(v / org_contacts) for k, v in by_kind.items()},
        "redis_bytes_per_contact": round(snap + mem + hist + seg + indexes),
    }


def table_footprint(ctx: Context, data_dir: Path) -> dict[str, Any]:
    """Table bytes per contact from the stopped worker's RocksDB (values, keys, disk)."""
    try:
        from rocksdict import AccessType, Options, Rdict
    except ImportError:  # pragma: no cover - rocksdict is a project dependency
        return {"table_status": "rocksdict not installed"}
    keys = value_bytes = key_bytes = 0
    dbs = sorted(data_dir.rglob("contacts-*.db"))
    for path in dbs:
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for raw_key, raw_value in db.items():
                key, value = bytes(raw_key), bytes(raw_value)  # type: ignore[arg-type]
                if key.startswith(b"__faust"):
                    continue
                keys += 1
                key_bytes += len(key)
                value_bytes += len(value)
        finally:
            db.close()
    disk = sum(dir_bytes(p) for p in dbs)
    n = max(1, keys)
    return {
        "table_contacts": keys,
        "table_value_bytes": round(value_bytes / n),
        "table_key_bytes": round(key_bytes / n),
        "table_disk_bytes_per_contact": round(disk / n),
    }


# --------------------------------------------------------------------------- latency
async def scenario_latency(ctx: Context) -> dict[str, Any]:
    return await _latency(ctx, "latency", ctx.cfg.latency_rate)


async def scenario_latency_high(ctx: Context) -> dict[str, Any]:
    return await _latency(ctx, "latency_high", ctx.cfg.latency_high_rate)


async def _latency(ctx: Context, name: str, rate: float) -> dict[str, Any]:
    """Offer a fixed rate to a fresh worker; probes are dispatches to never-seen contacts.

    Every `latency_probe_every`-th record is a dispatch for a new probe contact; the time from
    handing it to the producer to the first poll that finds its snapshot in Redis is the
    event -> snapshot latency (producer linger, broker, batching, processing, Redis included;
    polling every 5 ms). The other records are background traffic of the backlog's shape.

    The rate is offered for `latency_warmup_seconds` first, then for `latency_seconds`; the
    percentiles are those of the probes sent in the second span (a worker in its steady
    state), and the warm-up's own are reported beside them (`warmup`).
    """
    cfg = ctx.cfg
    prefix = ctx.prefix(name)
    names = TopicNames(prefix)
    app_id = ctx.app_id(name)
    port = free_port()
    env = ctx.services.worker_env(prefix, app_id, ctx.workdir / name, port)
    warmup = max(0, int(rate * cfg.latency_warmup_seconds))
    total = warmup + int(rate * cfg.latency_seconds)
    every = max(1, cfg.latency_probe_every)
    background = bl.generate(
        bl.BacklogSpec(
            events=total,
            contacts=max(100, min(cfg.contacts, total // 5)),
            orgs=max(1, cfg.orgs // 4),
            seed=cfg.seed + 1,
            org_prefix=ctx.org_prefix(name),
        )
    ).records
    probe_org = ctx.org_prefix(f"probe-{name}")
    ctx.topics_created += list(names.all)
    settled = await settle_host()
    proc = ctx.services.start_worker(name, env)
    producer = AIOKafkaProducer(bootstrap_servers=ctx.services.bootstrap, linger_ms=5)
    pauses = HarnessPauses()
    try:
        healthy = await wait_healthy(proc, port)
        await producer.start()
        probes = Probes(ctx.redis, producer, names, probe_org)
        producing = True

        poll_gaps: list[float] = []  # seconds between the poller's looks (harness stalls)

        async def poll() -> None:
            last = time.perf_counter()
            while producing or probes.pending:
                await probes.poll()
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                poll_gaps.append(now - last)
                last = now

        poller = asyncio.create_task(poll())
        pauses.start()
        start = time.perf_counter()
        sent = 0
        warm: list[str] = []  # the probes sent during the warm-up
        measured_from = 0.0
        bg = iter(background)
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate))
            while sent < due:
                if sent == warmup:
                    measured_from = time.perf_counter()
                if sent % every == 0:
                    contact = f"p{len(probes.sent_at):06d}"
                    if sent < warmup:
                        warm.append(contact)
                    await probes.send(contact)
                else:
                    record = next(bg, None)
                    if record is not None:
                        await producer.send(names.full(record.topic), record.value, key=record.key)
                sent += 1
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - measured_from
        await producer.flush()
        producing = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poller, timeout=60)
        poller.cancel()
        pauses.stop()
        warmed = set(warm)
        latencies = probes.latencies_ms([c for c in probes.sent_at if c not in warmed])
        warm_latencies = probes.latencies_ms(warm)
        return {
            "status": "ok" if not probes.pending else "lost probes",
            "offered_events_per_second": rate,
            "achieved_events_per_second": round((total - warmup) / elapsed),
            "seconds": round(elapsed, 1),
            "probes": len(probes.sent_at) - len(warm),
            "probes_seen": len(probes.seen_at) - len(warmed & probes.seen_at.keys()),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(latencies[-1], 1) if latencies else None,
            "warmup": {
                "seconds": cfg.latency_warmup_seconds,
                "probes": len(warm),
                "p50_ms": round(percentile(warm_latencies, 50), 1),
                "p99_ms": round(percentile(warm_latencies, 99), 1),
                "max_ms": round(warm_latencies[-1], 1) if warm_latencies else None,
            },
            "by_second": probes.by_second(start),
            # The harness's own stalls while it measured: its garbage collections, and the
            # longest gap between two looks at Redis (the poller sleeps 5 ms between them).
            "harness": {
                "gc": pauses.summary(),
                "heap_frozen": gc.get_freeze_count(),
                "poll_gap_max_ms": round(max(poll_gaps, default=0.0) * 1000, 1),
            },
            "seconds_to_healthy": round(healthy, 2),
            # Waited for the host to settle first (seconds, then its busy share of all cores).
            "host_settled": {"seconds": settled[0], "busy_share": settled[1]},
        }
    finally:
        pauses.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        proc.stop()


def _api_available() -> str | None:
    """None when `read_api.app.create_app` exists, else why the scenario is skipped."""
    for module, attr in (("read_api.app", "create_app"), ("read_api.server", "run_api")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"read_api not available ({module} missing)"
        if not hasattr(importlib.import_module(module), attr):
            return f"read_api not available ({module} has no {attr})"
    return None


async def scenario_api(ctx: Context) -> dict[str, Any]:
    return await _api_load(ctx, ctx.cfg.api_rate, workers=1)


async def scenario_api_high(ctx: Context) -> dict[str, Any]:
    return await _api_load(ctx, ctx.cfg.api_high_rate, workers=ctx.cfg.api_high_workers)


async def _api_load(ctx: Context, rate: float, workers: int) -> dict[str, Any]:
    """Snapshot GETs at a fixed rate against `engagement-monitor api` (`workers` processes),
    from another process."""
    import hashlib
    import secrets

    reason = _api_available()
    if reason:
        return {"status": f"skipped: {reason}"}
    assert ctx.backlog is not None
    sample = ctx.pipeline_sample or bl.sample_contacts(ctx.backlog, 200)
    org = ctx.backlog.contacts[sample[0]][0]
    contacts = [ctx.backlog.contacts[i][1] for i in sample if ctx.backlog.contacts[i][0] == org]
    token = secrets.token_urlsafe(24)
    tokens_file = ctx.workdir / "tokens.json"
    entry = {"org_id": org, "role": "agent", "name": "bench"}
    entry["sha256"] = hashlib.sha256(token.encode()).hexdigest()
    tokens_file.write_bytes(orjson.dumps([entry]))
    port = free_port()
    env = {
        **ctx.services.worker_env(ctx.backlog_prefix, ctx.app_id("api"), ctx.workdir / "api", 0),
        "EM_WORKER_WEB_PORT": str(free_port()),
        "EM_API_HOST": "127.0.0.1",
        "EM_API_PORT": str(port),
        "EM_API_TOKENS_FILE": str(tokens_file),
        "EM_API_WORKERS": str(workers),
    }
    api = Proc("api", python_module("bench.apps.api_server"), env, ctx.workdir / "api.log")
    api.start()
    try:
        try:
            await wait_healthy(api, port, timeout=60)
        except RuntimeError as exc:
            return {"status": "skipped: the API did not start", "detail": str(exc)[-500:]}
        template = (
            f"http://127.0.0.1:{port}/v1/orgs/{quote(org, safe='')}/contacts/{{contact}}/monitor"
        )
        argv = python_module(
            "bench.apps.http_load",
            template,
            token,
            json.dumps(contacts),
            str(rate),
            str(ctx.cfg.api_seconds),
        )
        load = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await load.communicate()
        if load.returncode != 0:
            return {"status": "failed: load generator", "detail": err.decode()[-500:]}
        figures: dict[str, Any] = orjson.loads(out.splitlines()[-1])
        figures["status"] = "ok" if figures.get("ok") == figures.get("requests") else "errors"
        figures["api_processes"] = workers
        for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "achieved_rps", "launch_lag_p99_ms"):
            if isinstance(figures.get(k), float):
                figures[k] = round(figures[k], 2)
        return figures
    finally:
        api.stop()


# --------------------------------------------------------------------------- webhooks
async def scenario_webhooks(ctx: Context) -> dict[str, Any]:
    """Signed SendGrid batches of 1,000 events into `engagement-monitor api`'s webhook, from
    another process: events per second into Kafka (a 202 means Kafka holds the batch)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    reason = _api_available()
    if reason:
        return {"status": f"skipped: {reason}"}
    org = "bench-webhooks"  # its own org and topics: no backlog needed, none touched
    contacts = [f"webhook-contact-{i}" for i in range(2000)]
    private = ec.generate_private_key(ec.SECP256R1())
    key_file = ctx.workdir / "webhook-key.pem"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secrets_file = ctx.workdir / "webhook-secrets.json"
    secrets_file.write_bytes(
        orjson.dumps([{"org_id": org, "provider": "sendgrid", "secret": public.decode()}])
    )
    port = free_port()
    prefix = f"{ctx.backlog_prefix}webhooks."
    env = {
        **ctx.services.worker_env(prefix, ctx.app_id("webhooks"), ctx.workdir / "webhooks", 0),
        "EM_WORKER_WEB_PORT": str(free_port()),
        "EM_API_HOST": "127.0.0.1",
        "EM_API_PORT": str(port),
        "EM_API_TOKENS_FILE": str(ctx.workdir / "no-tokens.json"),
        "EM_WEBHOOK_SECRETS_FILE": str(secrets_file),
    }
    api = Proc("api", python_module("bench.apps.api_server"), env, ctx.workdir / "webhooks.log")
    api.start()
    try:
        try:
            await wait_healthy(api, port, timeout=60)
        except RuntimeError as exc:
            return {"status": "skipped: the API did not start", "detail": str(exc)[-500:]}
        argv = python_module(
            "bench.apps.webhook_load",
            f"http://127.0.0.1:{port}/v1/orgs/{quote(org, safe='')}/webhooks/sendgrid",
            str(key_file),
            json.dumps(contacts),
            str(ctx.cfg.webhook_batches),
            str(ctx.cfg.webhook_batch),
            str(ctx.cfg.webhook_concurrency),
        )
        load = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await load.communicate()
        if load.returncode != 0:
            return {"status": "failed: load generator", "detail": err.decode()[-500:]}
        figures: dict[str, Any] = orjson.loads(out.splitlines()[-1])
        expected = (ctx.cfg.webhook_batches - 1) * ctx.cfg.webhook_batch
        figures["status"] = "ok" if figures.get("events") == expected else "errors"
        for k in ("p50_ms", "p99_ms", "seconds", "events_per_second"):
            if isinstance(figures.get(k), float):
                figures[k] = round(figures[k], 2)
        return figures
    finally:
        api.stop()


# --------------------------------------------------------------------------- recovery
def recovery_templates(cfg: BenchConfig, count: int = 64) -> list[bytes]:
    """Realistic table values: contacts of a small generated backlog, as the worker packs them.

    Counting state holds no contact identity (the table key does), so `count` real states can
    stand for any number of contacts without changing a byte of what recovery has to read.
    """
    from agents.stored import StoredContact, pack
    from counting import tiers

    small = bl.generate(
        bl.BacklogSpec(events=count * 10, contacts=count, orgs=1, seed=cfg.seed + 2)
    )
    counting_cfg = CountingConfig()
    now = datetime.now(UTC)
    states: dict[tuple[str, str], Any] = {}
    distinct: dict[str, Any] = {}
    from models.events import parse_record

    for record in small.records:
        event = parse_record(record.topic, record.value, now, counting_cfg)
        distinct.setdefault(event.event_id, event)
    from counting import apply_event, build_snapshot, next_expiry

    for event in sorted(distinct.values(), key=lambda e: (e.occurred_at, e.event_id)):
        key = (event.org_id, event.contact_id)
        states[key] = apply_event(states.get(key), event, now, counting_cfg).state
    values = []
    for (org, contact), state in states.items():
        snap = build_snapshot(org, contact, state, now, counting_cfg)
        published = dict(tiers(snap)) if snap is not None else {}
        values.append(pack(StoredContact(state, published, 1), next_expiry(state, counting_cfg)))
    return values


async def scenario_recovery(ctx: Context) -> dict[str, Any]:
    """Time for a restarted worker holding N contacts to answer /healthz 200.

    The state of N contacts is written straight into the table's changelog topic (values
    packed exactly as the worker packs them, partitioned by the same murmur2 rule), which takes
    seconds instead of the minutes a drain through the worker would. Then:
    (b) a worker starts with an empty data directory and replays the whole changelog, and is
    stopped (SIGTERM); (a) it is restarted with its RocksDB store intact (only the changelog
    tail is read). Both are timed from process start to the first `/healthz` 200.
    """
    from aiokafka.admin import NewTopic

    from streams.partitioning import partition_for

    n = ctx.cfg.recovery_contacts
    prefix = ctx.prefix("rec")
    names = TopicNames(prefix)
    app_id = ctx.app_id("recovery")
    data_dir = ctx.workdir / "recovery"
    org_prefix = ctx.org_prefix("rec")
    partitions = ctx.cfg.partitions
    changelog = f"{app_id}-contacts-changelog"
    ctx.topics_created += [*names.all, changelog]
    await ctx.kafka.admin.create_topics(
        [
            NewTopic(
                changelog,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"},
            )
        ]
    )
    templates = recovery_templates(ctx.cfg)
    value_bytes = 0
    started = time.perf_counter()

    def records() -> Any:
        nonlocal value_bytes
        for i in range(n):
            key = ks.state_key(f"{org_prefix}-o{i % 10}", f"r{i:07d}")
            value = templates[i % len(templates)]
            value_bytes += len(value)
            yield changelog, key, value, partition_for(key, partitions)

    await produce(ctx.services.bootstrap, records())
    loaded = time.perf_counter() - started
    ends = await ctx.kafka.end_offsets([changelog])
    result: dict[str, Any] = {
        "status": "ok",
        "contacts": n,
        "changelog_records": sum(ends.values()),
        "changelog_value_bytes_per_contact": round(value_bytes / max(1, n)),
        "changelog_load_seconds": round(loaded, 1),
    }
    for case in ("store_wiped", "store_intact"):
        port = free_port()
        env = ctx.services.worker_env(prefix, app_id, data_dir, port)
        proc = ctx.services.start_worker(f"recovery-{case}", env)
        try:
            result[f"{case}_seconds"] = round(await wait_healthy(proc, port, timeout=300), 2)
        finally:
            proc.stop()
        if case == "store_wiped":
            result["store_disk_bytes_per_contact"] = round(dir_bytes(data_dir) / max(1, n))
    return result


# --------------------------------------------------------------------------- fail-over
async def scenario_failover(ctx: Context) -> dict[str, Any]:
    """How long a killed worker's contacts go unserved: two workers with a standby replica of
    each table partition (`EM_STANDBY_REPLICAS=1`) and `EM_SESSION_TIMEOUT_SECONDS` of
    `failover_session_seconds`; probes (dispatches to new contacts, every partition) flow at a
    steady rate; one worker is killed -9. The fail-over time is the longest event -> snapshot
    latency of the probes sent after the kill: those of the killed worker's partitions wait
    until its session expires, the group rebalances and the standby takes over."""
    cfg = ctx.cfg
    name = "failover"
    prefix = ctx.prefix(name)
    names = TopicNames(prefix)
    app_id = ctx.app_id(name)
    probe_org = ctx.org_prefix("probe-failover")
    ctx.topics_created += list(names.all)
    extra = {
        "EM_STANDBY_REPLICAS": "1",
        "EM_SESSION_TIMEOUT_SECONDS": str(cfg.failover_session_seconds),
    }
    procs: list[tuple[Proc, int]] = []
    for worker in ("a", "b"):
        port = free_port()
        env = {
            **ctx.services.worker_env(prefix, app_id, ctx.workdir / name / worker, port),
            **extra,
        }
        procs.append((ctx.services.start_worker(f"{name}-{worker}", env), port))
        await wait_healthy(*procs[-1])
    producer = AIOKafkaProducer(bootstrap_servers=ctx.services.bootstrap, linger_ms=5)
    await producer.start()
    probes = Probes(ctx.redis, producer, names, probe_org)
    sent_at, seen_at = probes.sent_at, probes.seen_at
    contacts: list[str] = []  # the probes, in the order sent
    try:

        async def poll_until(deadline: float) -> None:
            while time.perf_counter() < deadline and probes.pending:
                await probes.poll()
                await asyncio.sleep(0.01)

        async def step() -> None:
            """One more probe (~every 100 ms), and a look at Redis."""
            contacts.append(f"f{len(contacts):06d}")
            await probes.send(contacts[-1])
            await asyncio.sleep(0.05)
            await poll_until(time.perf_counter() + 0.05)

        # warm: both workers serve and standbys are assigned (the second join rebalances, maybe
        # more than once): wait until 40 probes in a row are served within a second
        calm = 0
        settle = time.perf_counter() + cfg.failover_settle_seconds
        while calm < 40 and time.perf_counter() < settle:
            await step()
            if len(contacts) >= 20:
                latest = contacts[-20]
                ok = latest in seen_at and seen_at[latest] - sent_at[latest] < 1.0
                calm = calm + 1 if ok else 0
        await poll_until(time.perf_counter() + 30)
        before = probes.latencies_ms(contacts[-40:])
        victim, _ = procs[0]
        assert victim.proc is not None
        victim.proc.kill()  # SIGKILL: no goodbye to the group, no last commit
        killed = time.perf_counter()
        first_after = len(contacts)
        end = killed + cfg.failover_window_seconds
        while time.perf_counter() < end:
            await step()
        await poll_until(time.perf_counter() + 120)
        after = contacts[first_after:]
        lost = [c for c in after if c not in seen_at]
        latencies = probes.latencies_ms(after)
        served = max((seen_at[c] for c in after if c in seen_at), default=killed)
        return {
            "status": "ok" if not lost else "lost probes",
            "session_timeout_seconds": cfg.failover_session_seconds,
            "probes_after_kill": len(after),
            "probes_lost": len(lost),
            "failover_seconds": round(max(latencies, default=0.0) / 1000, 2),
            "p50_ms_after_kill": round(percentile(latencies, 50), 1) if latencies else None,
            "p99_ms_before_kill": round(percentile(before, 99), 1) if before else None,
            "settled": calm >= 40,
            "all_served_seconds_after_kill": round(served - killed, 2),
        }
    finally:
        await producer.stop()
        for proc, _ in procs:
            proc.stop()


# --------------------------------------------------------------------------- run
RUNNERS: dict[str, Callable[[Context], Coroutine[Any, Any, dict[str, Any]]]] = {
    "empty": scenario_empty,
    "raw": scenario_raw,
    "pipeline": scenario_pipeline,
    "naive": scenario_naive,
    "quixstreams": scenario_quixstreams,
    "kstreams": scenario_kstreams,
    "latency": scenario_latency,
    "latency_high": scenario_latency_high,
    "api": scenario_api,
    "api_high": scenario_api_high,
    "recovery": scenario_recovery,
    "failover": scenario_failover,
    "webhooks": scenario_webhooks,
}


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    ram = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024 / 1024
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
        "hot_modules": native_status().describe,
    }


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain")),
    }


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    def rate(name: str) -> float | None:
        item = results.get("scenarios", {}).get(name) or {}
        value = item.get("events_per_second")
        return float(value) if value else None

    pipe = rate("pipeline")
    out: dict[str, float | None] = {}
    for other in ("raw", "empty", "naive", "quixstreams", "kstreams"):
        base = rate(other)
        out[f"pipeline_over_{other}"] = float(f"{pipe / base:.3g}") if pipe and base else None
    # per core: events per CPU-second of each process tree (the JVM's JIT and GC included)
    pipe_cpu = (results.get("scenarios", {}).get("pipeline") or {}).get("events_per_cpu_second")
    for other in ("quixstreams", "kstreams"):
        item = results.get("scenarios", {}).get(other) or {}
        base_cpu = item.get("events_per_cpu_second")
        out[f"pipeline_over_{other}_per_cpu"] = (
            float(f"{pipe_cpu / base_cpu:.3g}") if pipe_cpu and base_cpu else None
        )
    return out


async def drop_scenario_topics(ctx: Context, before: set[str], settle: float = 30.0) -> int:
    """Delete the topics a finished scenario created, and wait until the broker has.

    Every scenario starts its own worker or peer on fresh topics; left in place until the
    run's end, a full run holds well over a thousand partitions by its latency scenarios, and
    a one-node broker on two cores spends a sixth of a core on them while idle (measured:
    17 % of a core with 154 topics, 2 % without). The backlog's input topics stay (several
    scenarios read them), and so do the broker's own (`__consumer_offsets`)."""
    keep = set(TopicNames(ctx.backlog_prefix).inputs)
    fresh = sorted(
        t for t in set(await ctx.kafka.list_topics()) - before - keep if not t.startswith("__")
    )
    if not fresh:
        return 0
    await ctx.kafka.delete_topics(fresh)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if not set(fresh) & set(await ctx.kafka.list_topics()):
            break
        await asyncio.sleep(0.5)
    return len(fresh)


async def cleanup(ctx: Context) -> None:
    """Delete this run's topics, changelogs, consumer groups' data in Redis."""
    topics = await ctx.kafka.list_topics()
    doomed = set(ctx.topics_created)
    doomed |= {t for t in topics if any(t.startswith(f"{a}-") for a in ctx.app_ids)}
    doomed |= {t for t in topics if t.startswith(f"bench{ctx.run_id}")}
    with contextlib.suppress(Exception):
        await ctx.kafka.delete_topics(sorted(doomed))
    patterns = [ks.redis_org_prefix_pattern(p) for p in ctx.org_prefixes]
    patterns += [ks.redis_meta_pattern(a) for a in ctx.app_ids]
    for pattern in patterns:
        batch: list[bytes] = []
        async for key in ctx.redis.scan_iter(match=pattern, count=2000):
            batch.append(key)
            if len(batch) >= 1000:
                await ctx.redis.unlink(*batch)
                batch = []
        if batch:
            await ctx.redis.unlink(*batch)


async def run_bench(
    cfg: BenchConfig, bootstrap: str, redis_url: str, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the selected scenarios in order; returns the whole result document."""
    run_id = uuid.uuid4().hex[:6]
    services = Services(bootstrap, redis_url, cfg.partitions, workdir)
    kafka = Kafka(bootstrap)
    await kafka.start()
    client = aioredis.Redis.from_url(redis_url)
    await client.ping()
    ctx = Context(cfg, services, kafka, client, run_id, workdir, log)
    doc: dict[str, Any] = {
        "run_id": run_id,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **commit(),
        "machine": machine(),
        "config": asdict(cfg),
        "scenarios": {},
    }
    started = time.perf_counter()
    selected = [s for s in SCENARIOS if s in cfg.scenarios]
    try:
        if {
            "empty",
            "raw",
            "pipeline",
            "naive",
            "quixstreams",
            "kstreams",
            "api",
            "api_high",
            "footprint",
        } & set(selected):
            await prepare_backlog(ctx)
            doc["backlog"] = ctx.results["backlog"]
        for name in selected:
            if name == "footprint":
                continue  # measured inside the pipeline scenario
            if (
                name in ("api", "api_high")
                and "pipeline" not in selected
                and _api_available() is None
            ):
                doc["scenarios"][name] = {"status": "skipped: needs the pipeline scenario"}
                continue
            log(f"{TITLES[name]} ...")
            # What the run holds (backlog, reference, earlier scenarios' figures) is never
            # collected again: a full collection over it once stalled the latency probes
            # ~190 ms (`harness.gc` of the latency figures).
            freeze_heap()
            t0 = time.perf_counter()
            before = set(await ctx.kafka.list_topics())
            try:
                figures = await RUNNERS[name](ctx)
            except Exception as exc:  # one broken scenario must not hide the others
                figures = {"status": f"failed: {type(exc).__name__}: {str(exc)[:2000]}"}
            figures["scenario_seconds"] = round(time.perf_counter() - t0, 1)
            if not cfg.keep:
                with contextlib.suppress(Exception):
                    figures["topics_dropped"] = await drop_scenario_topics(ctx, before)
            doc["scenarios"][name] = figures
            log(f"{TITLES[name]}: {_one_line(figures)}")
        if "footprint" in selected:
            doc["scenarios"]["footprint"] = ctx.results.get(
                "footprint", {"status": "not measured (the pipeline scenario failed)"}
            )
        for name in SCENARIOS:
            doc["scenarios"].setdefault(name, {"status": "not selected"})
    finally:
        if not cfg.keep:
            with contextlib.suppress(Exception):
                await cleanup(ctx)
        await client.aclose()
        await kafka.close()
    doc["ratios"] = ratios(doc)
    doc["total_seconds"] = round(time.perf_counter() - started, 1)
    return doc


def _one_line(figures: dict[str, Any]) -> str:
    keys = ("status", "events_per_second", "p50_ms", "p99_ms", "store_intact_seconds")
    return ", ".join(f"{k}={figures[k]}" for k in keys if k in figures)
