"""The ingest stage in processes of its own, so that reading and framing get a core of their own.

`engagement-monitor worker` starts `EM_INGEST_PROCESSES` children (default 1; 0 runs the ingest
inside the worker's own event loop instead), each `python -m streams.ingest_process`: the same
`streams.ingest.Ingest`, in the same consumer group (`<app id>-ingest`), so Kafka spreads the
input partitions over them. The ingest keeps no state, so a child can die and be started again
at any time: what it framed and did not commit is framed again, and the counting core makes
the replay harmless.

* A child reports its counters and lag as one JSON line on stdout twice a second; the worker
  exports them (`em_ingest_*`). Its logs go to the worker's stderr.
* The worker restarts a child that exits (with a growing delay, 1 s to 30 s) and says so in its
  log and `em_ingest_restarts_total`.
* A child stops when asked (SIGTERM, from the worker's shutdown) and when the worker is gone
  (its parent process changed, or its stdout pipe broke), so a `kill -9` of the worker never
  leaves an ingest running.
* A crash point reached in a child (`EM_CRASH_AT=ingest-*`, tests only) kills the worker too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import TopicPartition
from mode import Service

from engagement_monitor.crash import CrashPoint
from engagement_monitor.gc_tuning import tune_gc
from engagement_monitor.settings import Settings, load_settings
from streams.ingest import Ingest
from streams.topics import TopicNames

log = logging.getLogger("engagement_monitor.ingest")

REPORT_SECONDS = 0.1  # the worker's checkpoints read the lag (agents.checkpoint_pace)
FIRST_RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0
STOP_GRACE_SECONDS = 30.0


def build_ingest(settings: Settings, crash: Any) -> Ingest:
    """The ingest stage for these settings (in the worker's loop or in a child)."""
    names = TopicNames(settings.topic_prefix)
    return Ingest(
        bootstrap=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-ingest",
        inputs=names.inputs,
        envelope_topic=names.envelopes,
        partitions=settings.partitions,
        max_records=settings.batch_max_records,
        max_wait_seconds=settings.batch_max_seconds,
        max_record_bytes=settings.max_record_bytes,
        max_envelope_bytes=settings.envelope_max_bytes,
        session_timeout_seconds=settings.session_timeout_seconds,
        dead_letter_topic=names.full("dead-letters"),
        shorts={full: names.short(full) for full in names.inputs},
        channels=settings.counting_config().channels,
        crash=crash,
    )


@dataclass
class IngestReport:
    """What the worker exports of its ingest stage, summed over the processes running it."""

    records: int = 0
    envelopes: int = 0
    oversize: int = 0
    commit_failures: int = 0
    lag: dict[TopicPartition, int] = field(default_factory=dict)
    # The last fetch of one of them was full: more records waited than the lag may show (it
    # knows only the partitions framed from since their assignment).
    full: bool = False


def report_of(ingest: Ingest) -> IngestReport:
    stats = ingest.stats
    return IngestReport(
        stats.records,
        stats.envelopes,
        stats.oversize,
        stats.commit_failures,
        ingest.lag(),
        stats.last_fetch_full,
    )


# ------------------------------------------------------------------------- the worker's side
@dataclass
class _Child:
    index: int
    proc: asyncio.subprocess.Process
    started: float
    # Cumulative counters of this child's current process, and what earlier ones had counted.
    latest: IngestReport = field(default_factory=IngestReport)
    carried: IngestReport = field(default_factory=IngestReport)
    reader: asyncio.Task[None] | None = None
    reported: bool = False


class IngestProcesses(Service):
    """Starts, watches and stops the ingest children of one worker."""

    def __init__(self, count: int, *, argv: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.count = count
        self.argv = argv or [sys.executable, "-m", "streams.ingest_process"]
        self.children: list[_Child] = []
        self.restarts = 0
        self.reported = False  # every child has reported once: the ingest is reading

    async def on_start(self) -> None:
        for index in range(self.count):
            self.children.append(await self._spawn(index, IngestReport()))
        self.add_future(self._supervise())

    async def _spawn(self, index: int, carried: IngestReport) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "EM_INGEST_CHILD": str(index)},
        )
        child = _Child(index, proc, time.monotonic(), carried=carried)
        child.reader = asyncio.ensure_future(self._read(child))
        log.info("ingest process %d started (pid %d)", index, proc.pid)
        return child

    async def _read(self, child: _Child) -> None:
        stream = child.proc.stdout
        assert stream is not None
        while True:
            line = await stream.readline()
            if not line:
                return
            try:
                data = orjson.loads(line)
                child.latest = IngestReport(
                    data["records"],
                    data["envelopes"],
                    data["oversize"],
                    data["commit_failures"],
                    {TopicPartition(t, p): lag for t, p, lag in data["lag"]},
                    bool(data["full"]),
                )
                child.reported = True
                if not self.reported and all(c.reported for c in self.children):
                    self.reported = True
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("ingest process %d wrote an unreadable report: %r", child.index, line)

    async def _supervise(self) -> None:
        delay = FIRST_RESTART_SECONDS
        while not self.should_stop:
            await self.sleep(1.0)
            for i, child in enumerate(self.children):
                code = child.proc.returncode
                if code is None or self.should_stop:
                    continue
                self.restarts += 1
                log.error(
                    "ingest process %d (pid %d) exited with %s; starting it again in %.0f s",
                    child.index,
                    child.proc.pid,
                    code,
                    delay,
                )
                await self.sleep(delay)
                if self.should_stop:
                    return
                carried = _sum([child.carried, child.latest])
                carried.lag = {}
                carried.full = False
                self.children[i] = await self._spawn(child.index, carried)
                # A child that then runs for a minute resets the delay.
                delay = min(delay * 2, MAX_RESTART_SECONDS)
            if all(time.monotonic() - c.started > 60 for c in self.children):
                delay = FIRST_RESTART_SECONDS

    async def on_stop(self) -> None:
        for child in self.children:
            if child.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                await asyncio.wait_for(child.proc.wait(), timeout=STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning("ingest process %d did not stop; killing it", child.index)
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                await child.proc.wait()
            if child.reader is not None:
                child.reader.cancel()

    def report(self) -> IngestReport:
        return _sum([r for c in self.children for r in (c.carried, c.latest)])


def _sum(reports: list[IngestReport]) -> IngestReport:
    total = IngestReport()
    for report in reports:
        total.records += report.records
        total.envelopes += report.envelopes
        total.oversize += report.oversize
        total.commit_failures += report.commit_failures
        total.lag.update(report.lag)
        total.full = total.full or report.full
    return total


# --------------------------------------------------------------------------- the child's side
async def _run_child(settings: Settings, parent: int) -> int:
    crash = CrashPoint(settings.crash_at, parent=parent)
    ingest = build_ingest(settings, crash)
    tune_gc()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await ingest.start()
    out = sys.stdout.buffer
    try:
        while not stopping.is_set() and not ingest.should_stop:
            if os.getppid() != parent:
                log.warning("the worker (pid %d) is gone; this ingest process stops", parent)
                break
            report = report_of(ingest)
            line = orjson.dumps(
                {
                    "records": report.records,
                    "envelopes": report.envelopes,
                    "oversize": report.oversize,
                    "commit_failures": report.commit_failures,
                    "lag": [[tp.topic, tp.partition, lag] for tp, lag in report.lag.items()],
                    "full": report.full,
                }
            )
            try:
                out.write(line + b"\n")
                out.flush()
            except BrokenPipeError:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=REPORT_SECONDS)
    finally:
        await ingest.stop()
    return 0 if stopping.is_set() or not ingest.crashed else 1


def main() -> int:
    """`python -m streams.ingest_process`: one ingest process, for `engagement-monitor worker`."""
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format=f"[%(asctime)s] [%(process)d] [%(levelname)s] [ingest {os.environ.get('EM_INGEST_CHILD', '')}] %(message)s",  # noqa: E501
    )
    parent = os.getppid()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    return int(runner(_run_child(settings, parent)))


if __name__ == "__main__":
    sys.exit(main())
