"""A soak: a worker and an API under a steady offered rate for a long time (`make soak`).

    python -m bench.soak [--minutes 20] [--rate 2500] [--contacts 200000] [--api-rate 100]

What it runs, on isolated topics (its own prefix) of the Kafka and Redis in EM_KAFKA_BOOTSTRAP /
EM_REDIS_URL: one `engagement-monitor worker` (RocksDB store, ingest child processes as
configured) and one API process. It offers `rate` events/s, open loop, of the benchmark backlog's
shape (bench/backlog.py: every topic, duplicates, late and keyless records) over a fixed
population of contacts, generated in chunks so memory stays flat in this process too; every
`probe_every`-th record is a dispatch to one of 1,000 probe contacts, and the time from handing
it to the producer to the first poll that sees it counted in its snapshot is the event ->
snapshot latency. The API is read at `api_rate` requests/s by the benchmark's open-loop load
generator.

Every `interval` seconds it records: RSS of the worker (with its child processes) and of the API,
Redis memory, the lag of both consumer groups (ingest on the inputs, the agent on the
envelopes), probe latency percentiles, API latency percentiles and errors. At the end it drains,
checks a sample of contacts exact against the reference, and judges:

- **memory levels off**: RSS growth over the last third of the run is less than a third of the
  growth over the first third (the cache filling) and under `--max-late-growth-mb`;
- **lag is bounded**: the lag at every sample after warm-up is under ten seconds of traffic;
- **nothing lost**: every probe was seen, every sampled contact is exact, no API 5xx.

It prints a table and writes everything to var/soak/soak-<time>.json; the exit status is 0 only
when every judgement holds. RELIABILITY.md records runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from bench import backlog as bl
from bench.common import (
    ROOT,
    Kafka,
    Proc,
    Services,
    free_port,
    percentile,
    python_module,
    tree_rss_mb,
    wait_healthy,
)
from bench.harness import commit, machine
from counting import CountingConfig
from engagement_monitor import keyspace as ks
from engagement_monitor.snapshot_codec import unpack_snapshot
from streams.topics import TopicNames

PROBES = 1_000
SAMPLE = 500


@dataclass
class SoakConfig:
    minutes: float = 20.0
    rate: float = 2_500.0
    contacts: int = 200_000
    orgs: int = 10
    api_rate: float = 100.0
    interval: float = 30.0
    probe_every: int = 50
    chunk_seconds: float = 30.0
    max_late_growth_mb: float = 64.0
    partitions: int = 8


@dataclass
class Sample:
    """One row of the report: the state at `t` seconds and what happened since the last row."""

    t: float
    events_sent: int
    offered_rate: float
    worker_rss_mb: float
    api_rss_mb: float
    redis_mb: float
    ingest_lag: int
    agent_lag: int
    probes: int
    probe_p50_ms: float | None
    probe_p99_ms: float | None
    probe_max_ms: float | None
    api_requests: int = 0
    api_errors: int = 0
    api_p50_ms: float | None = None
    api_p99_ms: float | None = None


@dataclass
class Probes:
    """Dispatches to probe contacts and when each was first seen counted in Redis."""

    org: str
    sent: list[tuple[str, int, float]] = field(default_factory=list)  # contact, expected, at
    seen: dict[int, float] = field(default_factory=dict)  # index in `sent` -> seen at
    done: list[float] = field(default_factory=list)  # latencies (ms), in the order seen
    counts: dict[str, int] = field(default_factory=dict)
    cursor: int = 0  # every probe before it has been seen

    def record(self, n: int) -> tuple[str, bytes, bytes]:
        contact = f"p{n % PROBES:04d}"
        self.counts[contact] = self.counts.get(contact, 0) + 1
        value = orjson.dumps(
            {
                "event_id": uuid.uuid4().hex,
                "org_id": self.org,
                "contact_id": contact,
                "channel": "sms",
                "message_id": f"probe-{n}",
                "dispatch_kind": "single",
                "occurred_at": datetime.now(UTC).isoformat(),
            }
        )
        self.sent.append((contact, self.counts[contact], time.perf_counter()))
        return contact, value, ks.record_key(self.org, contact)

    async def poll(self, redis: aioredis.Redis) -> None:
        pending = [i for i in range(self.cursor, len(self.sent)) if i not in self.seen][:2000]
        if not pending:
            return
        contacts = sorted({self.sent[i][0] for i in pending})
        raws = await redis.mget([ks.redis_snapshot_key(self.org, c) for c in contacts])
        now = time.perf_counter()
        counted = {
            c: orjson.loads(unpack_snapshot(raw))["dispatched"]["total"]
            for c, raw in zip(contacts, raws, strict=True)
            if raw is not None
        }
        for i in pending:
            contact, expected, _at = self.sent[i]
            if counted.get(contact, 0) >= expected:
                self.seen[i] = now
                self.done.append((now - self.sent[i][2]) * 1000)
        while self.cursor < len(self.sent) and self.cursor in self.seen:
            self.cursor += 1

    def latencies_ms(self, since: int = 0) -> list[float]:
        """Sorted latencies of the probes seen since the `since`-th one seen."""
        return sorted(self.done[since:])


async def _api_load(
    template: str, token: str, contacts: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    argv = python_module(
        "bench.apps.http_load", template, token, json.dumps(contacts), str(rate), str(seconds)
    )
    load = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await load.communicate()
    if load.returncode != 0:
        return {"requests": 0, "ok": 0, "error": err.decode()[-300:]}
    figures: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return figures


def _server_errors(figures: dict[str, Any]) -> int:
    """Requests answered 5xx or not at all. A 404 is a contact with no snapshot yet (the soak's
    contacts get their first event over the run), which is the API's right answer."""
    statuses: dict[str, int] = figures.get("statuses", {})
    if "error" in figures:
        return 1
    return sum(n for status, n in statuses.items() if not status.isdigit() or status >= "500")


def _round(x: float | None) -> float | None:
    return None if x is None or x != x else round(x, 1)  # NaN: nothing measured


async def run(cfg: SoakConfig, log: Any = print) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    unique = uuid.uuid4().hex[:8]
    prefix = f"soak{unique}."
    app_id = f"em-soak-{unique}"
    names = TopicNames(prefix)
    workdir = ROOT / "var" / "soak" / f"run-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    services = Services(
        bootstrap=os.environ.get("EM_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
        redis_url=os.environ.get("EM_REDIS_URL") or "redis://127.0.0.1:6379/0",
        partitions=cfg.partitions,
        workdir=workdir,
    )
    org_prefix = f"soak-{unique}"
    probes = Probes(org=f"{org_prefix}-probe")
    kafka = Kafka(services.bootstrap)
    await kafka.start()
    redis = aioredis.Redis.from_url(services.redis_url)

    worker_port = free_port()
    worker_env = services.worker_env(prefix, app_id, workdir / "worker", worker_port)
    worker = services.start_worker("worker", worker_env)
    # The API reads the contacts of one org with an agent token of that org.
    token = secrets.token_urlsafe(24)
    api_org = f"{org_prefix}-o0"
    tokens_file = workdir / "tokens.json"
    entry = {"org_id": api_org, "role": "agent", "name": "soak"}
    entry["sha256"] = hashlib.sha256(token.encode()).hexdigest()
    tokens_file.write_bytes(orjson.dumps([entry]))
    api_port = free_port()
    api_env = {
        **services.worker_env(prefix, app_id + "-api", workdir / "api", 0),
        "EM_WORKER_WEB_PORT": str(free_port()),
        "EM_API_HOST": "127.0.0.1",
        "EM_API_PORT": str(api_port),
        "EM_API_TOKENS_FILE": str(tokens_file),
    }
    api = Proc("api", python_module("bench.apps.api_server"), api_env, workdir / "api.log")
    api.start()
    api_contacts = [f"c{i:07d}" for i in range(0, min(cfg.contacts, 50_000), cfg.orgs)]
    template = (
        f"http://127.0.0.1:{api_port}/v1/orgs/{quote(api_org, safe='')}"
        "/contacts/{contact}/monitor"
    )

    samples: list[Sample] = []
    kept: list[bl.Record] = []  # the sampled contacts' records, for the exactness check
    sample_idx = set(range(0, cfg.contacts, max(1, cfg.contacts // SAMPLE)))
    contacts_list: list[tuple[str, str]] = []
    total = int(cfg.rate * cfg.minutes * 60)
    producer = AIOKafkaProducer(
        bootstrap_servers=services.bootstrap, linger_ms=5, acks="all", enable_idempotence=True
    )
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": asdict(cfg),
        "machine": machine(),
        "commit": commit(),
        "prefix": prefix,
    }
    try:
        await wait_healthy(worker, worker_port, timeout=120)
        await wait_healthy(api, api_port, timeout=60)
        await producer.start()

        chunk_events = int(cfg.rate * cfg.chunk_seconds)

        def make_chunk(n: int) -> bl.Backlog:
            spec = bl.BacklogSpec(
                events=chunk_events,
                contacts=cfg.contacts,
                orgs=cfg.orgs,
                seed=1000 + n,
                org_prefix=org_prefix,
                first_message=n * chunk_events * 2,
            )
            return bl.generate(spec)

        next_chunk = asyncio.create_task(asyncio.to_thread(make_chunk, 0))
        sent = 0
        chunk_no = 0
        producing = True
        start = time.perf_counter()
        api_task: asyncio.Task[dict[str, Any]] | None = None

        async def poll_probes() -> None:
            while producing or probes.cursor < len(probes.sent):
                await probes.poll(redis)
                await asyncio.sleep(0.005)

        poller = asyncio.create_task(poll_probes())
        last_row = (start, 0, 0, 0)  # time, events sent, probes sent, probes seen

        async def take_sample(now: float) -> None:
            nonlocal last_row, api_task
            api_figures: dict[str, Any] = {}
            if api_task is not None and api_task.done():
                api_figures = api_task.result()
                api_task = None
            # Committed offsets first: an end offset read after them is never below them.
            ingest = await kafka.committed(f"{app_id}-ingest")
            agent = await kafka.committed(app_id)
            ends = await kafka.end_offsets([*names.inputs, names.envelopes])
            env_tps = [tp for tp in ends if tp.topic == names.envelopes]
            in_tps = [tp for tp in ends if tp.topic != names.envelopes]
            lat = probes.latencies_ms(last_row[3])  # the probes seen since the last row
            memory = await redis.info("memory")
            row = Sample(
                t=round(now - start, 1),
                events_sent=sent,
                offered_rate=round((sent - last_row[1]) / max(1e-9, now - last_row[0])),
                worker_rss_mb=tree_rss_mb(worker.pid),
                api_rss_mb=tree_rss_mb(api.pid),
                redis_mb=round(int(memory["used_memory"]) / 2**20, 1),
                ingest_lag=sum(ends[tp] - ingest.get(tp, 0) for tp in in_tps),
                agent_lag=sum(ends[tp] - agent.get(tp, 0) for tp in env_tps),
                probes=len(probes.sent) - last_row[2],
                probe_p50_ms=_round(percentile(lat, 50)) if lat else None,
                probe_p99_ms=_round(percentile(lat, 99)) if lat else None,
                probe_max_ms=_round(lat[-1]) if lat else None,
                api_requests=int(api_figures.get("requests", 0)),
                api_errors=_server_errors(api_figures),
                api_p50_ms=_round(api_figures.get("p50_ms")),
                api_p99_ms=_round(api_figures.get("p99_ms")),
            )
            samples.append(row)
            log(
                f"[{row.t:7.0f}s] sent {row.events_sent:>9,} ({row.offered_rate:>6,}/s)  "
                f"worker {row.worker_rss_mb:6.0f} MB  api {row.api_rss_mb:5.0f} MB  "
                f"redis {row.redis_mb:6.0f} MB  lag {row.ingest_lag:>6,}/{row.agent_lag:>4,}  "
                f"probe p99 {row.probe_p99_ms} ms  api p99 {row.api_p99_ms} ms "
                f"({row.api_errors} errors)"
            )
            last_row = (now, sent, len(probes.sent), len(probes.done))
            if producing:
                api_task = asyncio.create_task(
                    _api_load(template, token, api_contacts, cfg.api_rate, cfg.interval - 3)
                )

        await take_sample(time.perf_counter())
        next_sample = start + cfg.interval
        while sent < total:
            chunk = await next_chunk
            if not contacts_list:
                contacts_list = chunk.contacts
            chunk_no += 1
            next_chunk = asyncio.create_task(asyncio.to_thread(make_chunk, chunk_no))
            records = iter(chunk.records)
            exhausted = False
            while sent < total and not exhausted:
                due = min(total, int((time.perf_counter() - start) * cfg.rate))
                while sent < due:
                    if sent % cfg.probe_every == 0:
                        _contact, value, key = probes.record(sent)
                        await producer.send(names.full("dispatch"), value, key=key)
                    else:
                        record = next(records, None)
                        if record is None:
                            exhausted = True
                            break
                        await producer.send(names.full(record.topic), record.value, key=record.key)
                        if record.contact in sample_idx:
                            kept.append(record)  # only what was sent is in the reference
                    sent += 1
                now = time.perf_counter()
                if now >= next_sample:
                    await take_sample(now)
                    next_sample += cfg.interval
                if not worker.alive() or not api.alive():
                    raise RuntimeError(
                        f"a process died: worker {worker.tail()[-1500:]}\napi {api.tail()[-1500:]}"
                    )
                await asyncio.sleep(0.002)
        await producer.flush()
        producing = False
        next_chunk.cancel()
        produced_seconds = time.perf_counter() - start
        log(f"offered {sent:,} events in {produced_seconds:,.0f} s; draining")
        # Drain: both groups caught up and every probe seen.
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            # Committed offsets first: an end offset read after them is never below them.
            ingest = await kafka.committed(f"{app_id}-ingest")
            agent = await kafka.committed(app_id)
            ends = await kafka.end_offsets([*names.inputs, names.envelopes])
            lag = sum(
                ends[tp] - (agent if tp.topic == names.envelopes else ingest).get(tp, 0)
                for tp in ends
            )
            if lag == 0 and probes.cursor == len(probes.sent):
                break
            await asyncio.sleep(1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poller, 30)
        await take_sample(time.perf_counter())
        result["drained_after_seconds"] = round(time.perf_counter() - start - produced_seconds, 1)
        result["exact"] = await _check_exact(redis, kept, contacts_list, sample_idx)
    finally:
        producing = False
        with contextlib.suppress(Exception):
            await producer.stop()
        api.stop()
        worker.stop()
        await kafka.close()
        await redis.aclose()
    result["samples"] = [asdict(s) for s in samples]
    result["probes"] = {"sent": len(probes.sent), "seen": len(probes.seen)}
    all_lat = probes.latencies_ms()
    result["probe_latency_ms"] = {
        "p50": _round(percentile(all_lat, 50)),
        "p99": _round(percentile(all_lat, 99)),
        "max": _round(all_lat[-1]) if all_lat else None,
    }
    result["verdict"] = judge(cfg, samples, result)
    out = ROOT / "var" / "soak" / f"soak-{stamp}.json"
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    result["report"] = str(out.relative_to(ROOT))
    return result


async def _check_exact(
    redis: aioredis.Redis,
    kept: list[bl.Record],
    contacts: Sequence[tuple[str, str]],
    sample_idx: set[int],
) -> dict[str, Any]:
    expected = bl.reference(kept, contacts, sample_idx, CountingConfig())
    keys = list(expected)
    raws = await redis.mget([ks.redis_snapshot_key(org, c) for org, c in keys])
    wrong = [
        f"{org}/{c}"
        for (org, c), raw in zip(keys, raws, strict=True)
        if bl.figures(orjson.loads(unpack_snapshot(raw)) if raw else None)
        != bl.figures(expected[(org, c)])
    ]
    return {"checked": len(keys), "wrong": len(wrong), "examples": wrong[:5]}


def judge(cfg: SoakConfig, samples: list[Sample], result: dict[str, Any]) -> dict[str, Any]:
    """Memory levels off, lag stays bounded, nothing is lost; each with the figures behind it."""
    running = samples[1:-1]  # the first row is before traffic, the last after the drain
    verdict: dict[str, Any] = {}
    if len(running) >= 6:
        third = len(running) // 3
        for name in ("worker_rss_mb", "api_rss_mb"):
            first = getattr(running[third], name) - getattr(running[0], name)
            late = getattr(running[-1], name) - getattr(running[-third - 1], name)
            verdict[name] = {
                "growth_first_third_mb": round(first, 1),
                "growth_last_third_mb": round(late, 1),
                "levels_off": late <= cfg.max_late_growth_mb and late <= max(first / 3, 8.0),
            }
    warm = running[2:]
    worst = max((s.ingest_lag + s.agent_lag for s in warm), default=0)
    verdict["lag"] = {"max_after_warmup": worst, "bounded": worst <= cfg.rate * 10}
    probes = result["probes"]
    exact = result.get("exact", {})
    api_errors = sum(s.api_errors for s in samples)
    verdict["nothing_lost"] = {
        "probes_seen": f"{probes['seen']}/{probes['sent']}",
        "sampled_contacts_wrong": exact.get("wrong"),
        "api_errors": api_errors,
        "ok": probes["seen"] == probes["sent"] and exact.get("wrong") == 0 and api_errors == 0,
    }
    verdict["ok"] = (
        all(v["levels_off"] for k, v in verdict.items() if k.endswith("_rss_mb"))
        and verdict["lag"]["bounded"]
        and verdict["nothing_lost"]["ok"]
        and len(running) >= 6
    )
    return verdict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    defaults = SoakConfig()
    parser.add_argument("--minutes", type=float, default=defaults.minutes)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="offered events/s")
    parser.add_argument("--contacts", type=int, default=defaults.contacts)
    parser.add_argument("--api-rate", type=float, default=defaults.api_rate, help="GETs/s")
    parser.add_argument("--interval", type=float, default=defaults.interval, help="seconds per row")
    args = parser.parse_args(argv)
    cfg = SoakConfig(
        minutes=args.minutes,
        rate=args.rate,
        contacts=args.contacts,
        api_rate=args.api_rate,
        interval=args.interval,
    )
    result = asyncio.run(run(cfg, log=lambda m: print(m, flush=True)))
    print(
        json.dumps(
            {k: result[k] for k in ("verdict", "probe_latency_ms", "exact", "report")}, indent=2
        )
    )
    return 0 if result["verdict"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
