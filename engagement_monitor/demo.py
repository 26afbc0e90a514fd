"""`make demo`: the whole product on one machine, with a report a newcomer can read.

Starts the worker and the API as child processes (Kafka and Redis are started by
`scripts/services.sh` before this runs), creates a demo token, replays a simulated stream, waits
until the worker has caught up, prints what happened, and stays up until Ctrl-C, then stops
exactly what it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from agents.processor import TICK_TOPIC
from engagement_monitor import keyspace as ks
from engagement_monitor.redis_client import connect
from engagement_monitor.settings import Settings

TIERS = ("no_engagement", "low", "high", "very_high")
console = Console()


class Child:
    """A child process whose output goes to a log file under var/demo."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _wait_http(url: str, child: Child, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited; see {child.log}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{child.name} did not become healthy in {limit:.0f} s; see {child.log}")


def _metric_values(text: str, name: str) -> dict[str, float]:
    """`{label value: sample}` of one single-label Prometheus metric."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(rf'^{name}\{{\w+="([^"]*)"\}} ([0-9.e+]+)$', line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


async def _worker_metrics(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def _wait_caught_up(port: int, expected: int, limit: float = 600) -> float:
    """Wait until the worker has consumed `expected` input records; return seconds taken."""
    started = time.monotonic()
    last = -1.0
    stable = 0
    while time.monotonic() - started < limit:
        text = await _worker_metrics(port)
        counts = _metric_values(text, "em_records_in_total")
        seen = sum(v for k, v in counts.items() if k != TICK_TOPIC)
        lag = sum(_metric_values(text, "em_consumer_lag").values())
        if seen >= expected and lag == 0:
            return time.monotonic() - started
        stable = stable + 1 if seen == last else 0
        if stable >= 20 and lag == 0:  # nothing more is coming
            return time.monotonic() - started
        last = seen
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def report(
    settings: Settings, worker_port: int, orgs: list[str], seconds: float, produced: int
) -> None:
    client = connect(
        settings.redis_url, settings.redis_timeout_seconds, cluster=settings.redis_cluster
    )
    try:
        table = Table(title="Contacts per engagement tier (Redis segments)")
        table.add_column("org")
        table.add_column("scope")
        for tier in TIERS:
            table.add_column(tier, justify="right")
        for org in orgs:
            for scope in (None, *settings.channels):
                counts = [await client.zcard(ks.redis_segment_key(org, scope, t)) for t in TIERS]
                table.add_row(org, scope or "overall", *(str(c) for c in counts))
        console.print(table)
    finally:
        await client.aclose()
    text = await _worker_metrics(worker_port)
    changes = _metric_values(text, "em_tier_changes_total")
    dead = _metric_values(text, "em_dead_letters_total")
    outcomes = _metric_values(text, "em_event_outcomes_total")
    console.print(
        f"tier changes published: {int(sum(changes.values()))} "
        f"({', '.join(f'{int(v)} by {k}' for k, v in changes.items()) or 'none'})"
    )
    console.print(
        "dead letters: "
        + (", ".join(f"{int(v)} {k}" for k, v in Counter(dead).most_common()) or "none")
    )
    console.print(
        "event outcomes: " + ", ".join(f"{int(v)} {k}" for k, v in sorted(outcomes.items()))
    )
    if seconds > 0:
        console.print(
            f"throughput: {produced} records in {seconds:.1f} s "
            f"({produced / seconds:,.0f} records/s end to end)"
        )


def run_demo(settings: Settings, args: Any) -> int:
    """Entry point of `engagement-monitor demo` (what `make demo` runs)."""
    from read_api.tokens import create_token
    from simulator.cli import demo_records
    from simulator.world import org_timezones

    root = Path.cwd()
    logs = root / "var" / "demo"
    env = dict(os.environ)
    # Best send times are shown in each simulated org's own time zone.
    zones = {**org_timezones(getattr(args, "orgs", None) or 3), **settings.org_timezones}
    env["EM_ORG_TIMEZONES"] = json.dumps(zones)
    exe = [sys.executable, "-m", "engagement_monitor.cli"]
    children: list[Child] = []

    def _terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # stop the children the same way as on Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    try:
        console.rule("Engagement Monitor demo")
        worker = Child("worker", [*exe, "worker"], logs / "worker.log", env)
        children.append(worker)
        asyncio.run(_wait_http(f"http://127.0.0.1:{settings.worker_web_port}/healthz", worker))
        console.print(f"worker healthy on :{settings.worker_web_port} (log: {worker.log})")
        api = Child("api", [*exe, "api"], logs / "api.log", env)
        children.append(api)
        asyncio.run(_wait_http(f"http://{settings.api_host}:{settings.api_port}/healthz", api))
        console.print(f"API up on {settings.api_host}:{settings.api_port} (log: {api.log})")
        token = create_token(settings, "acme", "operator", "demo operator")
        agent_token = create_token(settings, "acme", "agent", "demo agent")

        orgs, produced = demo_records(settings, args)
        console.print("waiting for the worker to catch up ...")
        seconds = asyncio.run(_wait_caught_up(settings.worker_web_port, produced))
        asyncio.run(report(settings, settings.worker_web_port, orgs, seconds, produced))
        url = f"http://{settings.api_host}:{settings.api_port}/"
        console.rule("Look around")
        console.print(f"monitor page: {url}")
        console.print(f"operator token (org acme): {token}")
        console.print(f"agent token (org acme, read only): {agent_token}")
        console.print("Ctrl-C stops the worker and the API.")
        while all(c.alive() for c in children):
            time.sleep(1)
        console.print("[red]a child process exited[/red]; see var/demo/*.log")
        return 1
    except KeyboardInterrupt:
        console.print("\nstopping ...")
        return 0
    finally:
        for child in reversed(children):
            child.stop()
