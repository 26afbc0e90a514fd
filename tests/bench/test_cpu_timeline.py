"""The CPU timeline of a benchmark run: processes sorted into the pipeline's parts, cores per
part over time, the drain found in it, and what each part used over the drain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cpu_timeline import (
    CLASSES,
    Sample,
    classify,
    drain_window,
    load,
    main,
    phases,
    timeline,
    window_use,
)


@pytest.mark.parametrize(
    ("cmdline", "part"),
    [
        ("java -Xmx1G -cp /x/kafka.jar kafka.Kafka /tmp/server.properties", "broker"),
        ("redis-server 127.0.0.1:6379", "redis"),
        ("/v/bin/python -m agents.snapshot_process", "snapshots"),
        ("/v/bin/python -m streams.ingest_process", "ingest"),
        ("/v/bin/python -m engagement_monitor.cli worker", "worker"),
        ("/v/bin/python /v/bin/engagement-monitor worker", "worker"),
        ("/v/bin/python -m bench --only pipeline", "harness"),
        ("/v/bin/python -m bench.cpu_timeline record /tmp/x.json", None),
        ("/v/bin/python -m engagement_monitor.cli api", None),
        ("bash", None),
    ],
)
def test_processes_are_sorted_into_the_pipeline_parts(cmdline: str, part: str | None) -> None:
    assert classify(cmdline) == part


def _samples(rows: list[dict[str, float]], every: float = 0.5) -> list[Sample]:
    """Cumulative CPU per process from per-interval CPU (`rows[i]`: what each process used in
    interval i). A process is alive from the first sample to the end of the last interval
    whose row names it."""
    total: dict[str, float] = {}
    out = [Sample(100.0, dict.fromkeys(rows[0], 0.0))]
    for i, row in enumerate(rows):
        for key, used in row.items():
            total[key] = total.get(key, 0.0) + used
        out.append(Sample(100.0 + every * (i + 1), {k: total[k] for k in row}))
    return out


# A drain in three phases on two cores, 0.5 s an interval: the harness producing (broker
# busy), ingest + worker, the worker alone, the checkpoint (snapshots and Redis), then the
# worker stopping 2 s later (not the drain). Every process is up from the start.
IDLE = {"harness:1": 0.0, "broker:2": 0.0, "worker:3": 0.0, "ingest:4": 0.0}
IDLE |= {"snapshots:5": 0.0, "redis:6": 0.0}
ROWS: list[dict[str, float]] = [
    IDLE | {"harness:1": 0.5, "broker:2": 0.3},
    IDLE | {"harness:1": 0.5, "broker:2": 0.3},
    IDLE | {"broker:2": 0.1, "worker:3": 0.45, "ingest:4": 0.4},
    IDLE | {"broker:2": 0.1, "worker:3": 0.45, "ingest:4": 0.4},
    IDLE | {"broker:2": 0.05, "worker:3": 0.5},
    IDLE | {"broker:2": 0.05, "worker:3": 0.5},
    IDLE | {"broker:2": 0.1, "worker:3": 0.3, "snapshots:5": 0.4, "redis:6": 0.1},
    IDLE | {"broker:2": 0.1, "worker:3": 0.3, "snapshots:5": 0.2, "redis:6": 0.4},
    IDLE,
    IDLE,
    IDLE,
    IDLE | {"worker:3": 0.5},  # stopping
]


def test_cores_per_part_over_time() -> None:
    intervals = timeline(_samples(ROWS))
    assert len(intervals) == len(ROWS)
    assert intervals[2].cores["worker"] == pytest.approx(0.9)
    assert intervals[2].cores["ingest"] == pytest.approx(0.8)
    assert intervals[6].cores["snapshots"] == pytest.approx(0.8)
    assert set(intervals[0].cores) == set(CLASSES)
    wider = timeline(_samples(ROWS), step=2)
    assert len(wider) == len(ROWS) // 2
    assert wider[1].cores["worker"] == pytest.approx(0.9)


def test_the_drain_is_found_and_the_worker_stopping_later_is_not_in_it() -> None:
    intervals = timeline(_samples(ROWS))
    assert drain_window(intervals) == pytest.approx((1.0, 4.0))
    assert drain_window(intervals[:2]) is None  # the ingest never busy


def test_phases_of_the_drain() -> None:
    got = phases(timeline(_samples(ROWS)), 1.0, 4.0)
    assert got["ingest and worker"] == pytest.approx((1.0, 1.9))
    assert got["worker alone"] == pytest.approx((1.0, 1.1))
    assert got["checkpoint"][0] == pytest.approx(1.0)
    assert got["other"] == (0.0, 0.0)


def test_what_each_part_used_over_the_drain_counts_a_process_that_ended_in_it() -> None:
    rows = [dict(r) for r in ROWS]
    for row in rows[4:]:
        row.pop("ingest:4", None)  # the ingest process exits after its work
    use = window_use(_samples(rows), 1.0, 4.0, cores=2)
    assert use.seconds == pytest.approx(3.0)
    assert use.cpu["ingest"] == pytest.approx(0.8)
    assert use.cpu["worker"] == pytest.approx(2.5)
    assert use.cpu["snapshots"] == pytest.approx(0.6)
    assert use.cpu["redis"] == pytest.approx(0.5)
    assert use.cpu["broker"] == pytest.approx(0.5)
    assert use.pipeline_cpu == pytest.approx(0.8 + 2.5 + 0.6 + 0.5 + 0.5)
    assert use.idle_core_seconds == pytest.approx(6.0 - use.pipeline_cpu)


def test_report_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps([[s.at, s.cpu] for s in _samples(ROWS)]))
    assert load(path)[3].cpu == _samples(ROWS)[3].cpu
    assert main(["report", str(path), "--events", "100000", "--cores", "2", "--step", "1"]) == 0
    out = capsys.readouterr().out
    assert "window 1.0-4.0 s: 3.0 s on 2 cores" in out
    assert "worker alone" in out
    assert "25.0 µs/event" in out  # the worker: 2.5 CPU-s over 100,000 events


def test_record_samples_this_machine_until_told(tmp_path: Path) -> None:
    path = tmp_path / "cpu.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.cpu_timeline", "record", str(path), "--seconds", "0.5"],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=30,
    )
    assert done.returncode == 0
    samples = load(path)
    assert len(samples) >= 2
    assert samples[-1].at > samples[0].at
