"""Which process held the machine's cores, five times a second, during a benchmark run.

A drain's rate says how long the pipeline took; on the 2-core benchmark machine, where the
worker, its ingest and snapshot processes, the broker and Redis share two cores, it does not say
what bound it. This sampler reads every process's user + system time from /proc, sorts the
processes into the pipeline's parts (`CLASSES`), and reports cores used per part over time, and
over a window: CPU-seconds and µs per event of each part, and the core-seconds left idle.
That is how BENCHMARKS.md (session 19) found a third of a drain with one core idle while the
worker applied envelopes alone, its ingest done.

    python -m bench.cpu_timeline record /tmp/cpu.json &     # until SIGINT / SIGTERM
    python -m bench --only pipeline --no-record
    kill -INT %1
    python -m bench.cpu_timeline report /tmp/cpu.json --events 200000

`report` finds the drain itself (from the first interval with the ingest busy to the last with
any pipeline part busy) unless `--start` / `--end` (seconds since the first sample) say.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

CLASSES = ("broker", "ingest", "worker", "snapshots", "redis", "harness")
PIPELINE = ("broker", "ingest", "worker", "snapshots", "redis")  # what a drain runs on
BUSY_CORES = 0.3  # a part using more than this is at work (the drain's edges)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def classify(cmdline: str) -> str | None:
    """The pipeline part a process belongs to, from its command line (None: not ours)."""
    if "bench.cpu_timeline" in cmdline:
        return None  # the sampler itself
    if "java" in cmdline and "kafka.Kafka" in cmdline:
        return "broker"
    if "redis-server" in cmdline:
        return "redis"
    if "snapshot_process" in cmdline:
        return "snapshots"
    if "ingest_process" in cmdline:
        return "ingest"
    if "worker" in cmdline and (
        "engagement_monitor.cli" in cmdline or "engagement-monitor" in cmdline
    ):
        return "worker"
    if "-m bench" in cmdline:
        return "harness"
    return None


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    cpu: dict[str, float]  # "part:pid" -> that process's CPU-seconds so far


def read_sample() -> Sample:
    """Every classified process's CPU-seconds now."""
    cpu: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        part = classify(raw.replace(b"\0", b" ").decode(errors="replace"))
        if part is None:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name: state is field 3
        cpu[f"{part}:{entry}"] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return Sample(time.monotonic(), cpu)


def record(path: Path, interval: float = 0.2, seconds: float | None = None) -> int:
    """Sample until SIGINT / SIGTERM (or `seconds`), then write the samples; their count."""
    stop = False

    def stopping(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, stopping)
    signal.signal(signal.SIGTERM, stopping)
    samples: list[Sample] = []
    deadline = None if seconds is None else time.monotonic() + seconds
    while not stop and (deadline is None or time.monotonic() < deadline):
        samples.append(read_sample())
        time.sleep(interval)
    samples.append(read_sample())
    path.write_text(json.dumps([[s.at, s.cpu] for s in samples]))
    return len(samples)


def load(path: Path) -> list[Sample]:
    return [
        Sample(float(at), {k: float(v) for k, v in cpu.items()})
        for at, cpu in json.loads(path.read_text())
    ]


def used(before: Sample, after: Sample) -> dict[str, float]:
    """CPU-seconds per part between two samples (a process alive in both: one that started in
    between is counted from the next interval on, one that ended is not counted)."""
    out = dict.fromkeys(CLASSES, 0.0)
    for key, seconds in after.cpu.items():
        part = key.split(":", 1)[0]
        if key in before.cpu and part in out:
            out[part] += max(0.0, seconds - before.cpu[key])
    return out


@dataclass(frozen=True)
class Interval:
    start: float  # seconds since the first sample
    end: float
    cores: dict[str, float]  # part -> cores used on average


def timeline(samples: Sequence[Sample], step: int = 1) -> list[Interval]:
    """Cores used per part, every `step` samples."""
    if not samples:
        return []
    origin = samples[0].at
    out: list[Interval] = []
    for i in range(0, len(samples) - step, step):
        a, b = samples[i], samples[i + step]
        span = b.at - a.at
        if span <= 0:
            continue
        out.append(
            Interval(a.at - origin, b.at - origin, {k: v / span for k, v in used(a, b).items()})
        )
    return out


def drain_window(intervals: Sequence[Interval], gap: int = 1) -> tuple[float, float] | None:
    """From the first interval with the ingest busy, through the intervals with a pipeline part
    other than the broker busy (the broker also works while the harness produces), until more
    than `gap` intervals in a row have none: the worker's stop, later, is not the drain."""
    busy = [
        any(iv.cores[p] > BUSY_CORES for p in ("ingest", "worker", "snapshots", "redis"))
        for iv in intervals
    ]
    first = next((i for i, iv in enumerate(intervals) if iv.cores["ingest"] > BUSY_CORES), None)
    if first is None:
        return None
    last = first
    quiet = 0
    for i in range(first, len(intervals)):
        if busy[i]:
            last, quiet = i, 0
        else:
            quiet += 1
            if quiet > gap:
                break
    return intervals[first].start, intervals[last].end


@dataclass(frozen=True)
class WindowUse:
    seconds: float
    cpu: dict[str, float]  # part -> CPU-seconds in the window
    cores: int

    @property
    def pipeline_cpu(self) -> float:
        return sum(self.cpu[p] for p in PIPELINE)

    @property
    def idle_core_seconds(self) -> float:
        """Core-seconds no process at all used (the harness counts as used)."""
        return max(0.0, self.seconds * self.cores - sum(self.cpu.values()))


def window_use(samples: Sequence[Sample], start: float, end: float, cores: int) -> WindowUse:
    """CPU per part over the sample intervals within [start, end] (seconds since the first
    sample), summed interval by interval, so a process that ends within the window counts up
    to its last sample."""
    origin = samples[0].at
    inside = [s for s in samples if start - 1e-9 <= s.at - origin <= end + 1e-9]
    cpu = dict.fromkeys(CLASSES, 0.0)
    for a, b in itertools.pairwise(inside):
        for part, seconds in used(a, b).items():
            cpu[part] += seconds
    seconds = inside[-1].at - inside[0].at if len(inside) > 1 else 0.0
    return WindowUse(seconds, cpu, cores)


PHASES = ("ingest and worker", "worker alone", "checkpoint", "other")


def phase_of(iv: Interval) -> str:
    """What the pipeline was doing in an interval of a backlog's drain."""
    busy = {p for p in PIPELINE if iv.cores[p] > BUSY_CORES}
    if "snapshots" in busy or "redis" in busy:
        return "checkpoint"  # snapshots rendered and written (the worker builds them)
    if "ingest" in busy and "worker" in busy:
        return "ingest and worker"
    if "worker" in busy:
        return "worker alone"
    return "other"


def phases(
    intervals: Sequence[Interval], start: float, end: float
) -> dict[str, tuple[float, float]]:
    """Per phase (`phase_of`) of the intervals within [start, end]: (seconds, cores used on
    average by the pipeline's parts)."""
    seconds = dict.fromkeys(PHASES, 0.0)
    core_seconds = dict.fromkeys(PHASES, 0.0)
    for iv in intervals:
        if iv.start < start - 1e-9 or iv.end > end + 1e-9:
            continue
        phase = phase_of(iv)
        span = iv.end - iv.start
        seconds[phase] += span
        core_seconds[phase] += span * sum(iv.cores[p] for p in PIPELINE)
    return {p: (seconds[p], core_seconds[p] / seconds[p] if seconds[p] else 0.0) for p in PHASES}


def render_timeline(intervals: Iterable[Interval]) -> list[str]:
    lines = ["     t  " + " ".join(f"{c:>9}" for c in CLASSES)]
    for iv in intervals:
        if any(iv.cores[p] > 0.05 for p in PIPELINE):
            lines.append(f"{iv.start:6.1f}  " + " ".join(f"{iv.cores[c]:9.2f}" for c in CLASSES))
    return lines


def render_window(use: WindowUse, events: int | None, label: str) -> list[str]:
    lines = [f"{label}: {use.seconds:.1f} s on {use.cores} cores"]
    rows: Mapping[str, float] = {**{c: use.cpu[c] for c in CLASSES}, "pipeline": use.pipeline_cpu}
    for part, seconds in rows.items():
        per_event = f"  {1e6 * seconds / events:6.1f} µs/event" if events else ""
        lines.append(
            f"  {part:<10} {seconds:6.2f} CPU-s  {seconds / use.seconds:5.2f} cores{per_event}"
        )
    lines.append(f"  {'idle':<10} {use.idle_core_seconds:6.2f} core-s")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cpu_timeline", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="sample until SIGINT / SIGTERM")
    rec.add_argument("out", type=Path)
    rec.add_argument("--interval", type=float, default=0.2)
    rec.add_argument("--seconds", type=float)
    rep = sub.add_parser("report", help="cores per part over time, and over the drain")
    rep.add_argument("samples", type=Path)
    rep.add_argument("--step", type=int, default=2, help="samples per line")
    rep.add_argument("--start", type=float)
    rep.add_argument("--end", type=float)
    rep.add_argument("--events", type=int, help="events drained (for µs per event)")
    rep.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.out, args.interval, args.seconds)
        return 0
    samples = load(args.samples)
    intervals = timeline(samples, args.step)
    print("\n".join(render_timeline(intervals)))
    found = drain_window(timeline(samples))
    start = args.start if args.start is not None else (found[0] if found else None)
    end = args.end if args.end is not None else (found[1] if found else None)
    if start is None or end is None:
        print("no drain found (the ingest never busy): give --start and --end")
        return 1
    use = window_use(samples, start, end, args.cores)
    print("\n".join(render_window(use, args.events, f"window {start:.1f}-{end:.1f} s")))
    for phase, (seconds, cores) in phases(timeline(samples), start, end).items():
        if seconds:
            print(f"  phase {phase:<18} {seconds:5.1f} s  {cores:4.2f} cores used by the pipeline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
