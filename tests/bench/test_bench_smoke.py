"""The benchmark harness runs end to end on a tiny backlog against the real Kafka and Redis.

Only the fast scenarios run (raw loop, pipeline with its exactness check, footprint, a short
latency run): the point is that `make bench` cannot rot unnoticed — every figure the JSON
promises is there, and the pipeline's snapshots equal the reference for every contact.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = ("raw", "pipeline", "footprint", "latency")

EXPECTED: dict[str, tuple[str, ...]] = {
    "raw": ("events_per_second", "events", "records_seen_by_app"),
    "pipeline": ("events_per_second", "events", "seconds_to_drained", "exact"),
    "footprint": (
        "redis_bytes_per_contact",
        "redis_snapshot_bytes",
        "redis_membership_bytes",
        "redis_segment_bytes_per_contact",
        "table_value_bytes",
        "table_disk_bytes_per_contact",
    ),
    "latency": ("p50_ms", "p95_ms", "p99_ms", "probes", "probes_seen"),
}


def test_bench_harness_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "EM_KAFKA_BOOTSTRAP": os.environ.get("EM_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
        "EM_REDIS_URL": os.environ.get("EM_REDIS_URL") or "redis://127.0.0.1:6379/0",
    }
    args = [
        *("--events", "3000", "--contacts", "300", "--orgs", "3"),
        *("--only", ",".join(FAST), "--check-sample", "0"),
        *("--latency-rate", "300", "--latency-seconds", "3", "--latency-warmup", "1"),
        *("--json", str(out), "--no-record", "--workdir", str(tmp_path / "work")),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.exists(), f"no JSON written:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    doc = orjson.loads(out.read_bytes())
    scenarios = doc["scenarios"]
    for name, keys in EXPECTED.items():
        assert scenarios[name].get("status") == "ok", (name, scenarios[name])
        missing = [k for k in keys if scenarios[name].get(k) is None]
        assert not missing, (name, missing, scenarios[name])
        assert all(v for k, v in scenarios[name].items() if k.endswith("per_second")), name
    exact = scenarios["pipeline"]["exact"]
    assert exact["passed"] and exact["mismatches"] == 0, exact
    assert exact["checked"] >= 250  # every touched contact, not a sample
    assert scenarios["pipeline"]["events"] == doc["backlog"]["events"] == 3000
    assert scenarios["raw"]["records_seen_by_app"] >= 3000
    assert doc["ratios"]["pipeline_over_raw"] is not None
    # The latency figures are those after the warm-up, whose own are reported apart.
    latency = scenarios["latency"]
    assert latency["warmup"]["probes"] == 15 and latency["probes"] == 45, latency
    assert sum(b["probes"] for b in latency["by_second"]) == 60
    # The harness's own stalls are reported, and the run's heap was frozen before it.
    assert latency["harness"]["heap_frozen"] > 0, latency["harness"]
    assert latency["harness"]["poll_gap_max_ms"] >= 5, latency["harness"]
    # Each scenario's own topics are gone once it is done (the backlog's stay to the end).
    assert scenarios["pipeline"]["topics_dropped"] > 0
    assert scenarios["latency"]["topics_dropped"] > 0
    for name in ("empty", "naive", "api", "recovery"):
        assert scenarios[name]["status"] == "not selected"
    assert {"commit", "date", "machine", "config", "backlog"} <= doc.keys()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_the_peers_and_the_webhook_scenario_start_count_and_stop(tmp_path: Path) -> None:
    """quixstreams (its own virtualenv) and Kafka Streams (built with Maven) on a tiny backlog,
    and a few signed webhook batches: so the comparison of `make bench` cannot rot."""
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "EM_KAFKA_BOOTSTRAP": os.environ.get("EM_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
        "EM_REDIS_URL": os.environ.get("EM_REDIS_URL") or "redis://127.0.0.1:6379/0",
    }
    args = [
        *("--events", "3000", "--contacts", "300", "--orgs", "3"),
        *("--only", "quixstreams,kstreams,webhooks", "--webhook-batches", "4"),
        *("--json", str(out), "--no-record", "--workdir", str(tmp_path / "work")),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.exists(), f"no JSON written:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    scenarios = orjson.loads(out.read_bytes())["scenarios"]
    for name in ("quixstreams", "kstreams"):
        peer = scenarios[name]
        assert peer.get("status") == "ok", (name, peer)
        assert peer["events"] == 3000 and peer["events_per_second"] > 0, peer
        assert peer["results_written"] > 1000, peer  # it counted: a result per counted event
    assert scenarios["quixstreams"]["records_seen_by_app"] >= 3000
    webhooks = scenarios["webhooks"]
    assert webhooks.get("status") == "ok", webhooks
    assert webhooks["events"] == 3000 and webhooks["events_per_second"] > 0, webhooks
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
