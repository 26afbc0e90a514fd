"""A checkpoint's Redis side in a process of its own, so that it gets a core of its own.

Per written contact a checkpoint does two kinds of work. What must happen in the worker (its
tiers, tier changes, history rows, version and table value: `EngagementProcessor._change`) and
what Redis alone needs: the snapshot built from the state, its JSON and compression, the
history array, the org indexes, the script's arguments and the round trip. The second kind
was ~60 % of a checkpoint's time per contact (BENCHMARKS.md, session 15), and a backlog's last
checkpoint ran on the worker's core while the other one, its ingest done, stood idle.

So `engagement-monitor worker` starts `EM_SNAPSHOT_PROCESSES` children (default 2, taking a
checkpoint's parts in turn; 0 renders and writes in the worker), each `python -m
agents.snapshot_process`. The worker sends one each part's `RedisJob`s (table value, version
and time: everything the snapshot is built from), and the child renders them
(`agents.processor.render_job`, the function a worker without children runs) and writes them
with the same sink (`agents.redis_sink`). The worker
awaits the child's answer exactly where it awaited Redis before: the checkpoint's step order
does not change (Redis written before the envelopes are acknowledged).

* Rendering starts as soon as a part is built (`prepare`), while the worker lands the part's
  changelog and store writes and builds the next part; the write to Redis itself waits for
  the part's step 4 (`write`). So the two cores work on a large checkpoint together: measured
  on the benchmark's backlog, rendering only once the part was landed left the child starting
  a second late and finishing two seconds after the worker.
* The child reads frames as they come and renders parts in chunks, and the pipe to it holds a
  whole part (`widen_pipe`), so "write part N" never waits behind the parts sent after N: with
  a 64 KiB pipe and a child that read its next frame only after rendering the last, Redis was
  written only once the whole checkpoint was built (`ChildRequests`; BENCHMARKS.md, session 17).
* Frames on the child's stdin and stdout (big-endian), each tagged with a request id, so parts
  can be in flight together and answered in any order:

      request := u32 length, u64 id, u8 kind, [u32 n_jobs, job*]
                 kind 0: render the jobs and write them (answered)
                 kind 1: render the jobs and keep them (not answered)
                 kind 2: write what request `id` rendered (answered; no jobs)
                 kind 3: forget what request `id` rendered (not answered; no jobs)
      job     := u32 len, org utf-8, u32 len, contact utf-8, u64 version, i64 time (µs),
                 u8 shown, i32 value length (-1: none), value
      answer  := u32 length, u64 id, u8 status (0 ok, 1 Redis failed, 2 render failed), text

* A Redis failure in the child comes back as a `redis.exceptions.ConnectionError` with the
  child's reason, so the worker's outage handling (`agents.redis_outage`) is unchanged: it
  counts on, holds deletions, probes and rebuilds. A child that exits fails its requests the
  same way and is started again on the next write (at most once a second).
* The child stops when its stdin closes (the worker stopped, or was killed) and when its
  parent process changes; its logs go to the worker's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from agents.processor import RedisJob

log = logging.getLogger("engagement_monitor.snapshots")

_FRAME = struct.Struct(">IQ")  # body length (after this header), request id
_COUNT = struct.Struct(">I")
_LEN = struct.Struct(">I")
_JOB = struct.Struct(">QqBi")  # version, time (µs), shown, value length (-1: none)
_STATUS = struct.Struct(">B")

OK, REDIS_FAILED, RENDER_FAILED = 0, 1, 2
RENDER_WRITE, RENDER, WRITE, DROP = 0, 1, 2, 3
RESTART_SECONDS = 1.0  # a child that exited is started again at most this often
STOP_GRACE_SECONDS = 10.0
PARENT_CHECK_SECONDS = 1.0
MAX_RENDERED = 1_000  # parts rendered and not yet written or dropped, at most


class FrameError(ValueError):
    """Bytes that are not a frame of this protocol."""


# ------------------------------------------------------------------------------ framing
def encode_request(request_id: int, jobs: Sequence[RedisJob], kind: int = RENDER_WRITE) -> bytes:
    """A request of kind `RENDER_WRITE` or `RENDER`, carrying its jobs."""
    parts: list[bytes] = [_STATUS.pack(kind), _COUNT.pack(len(jobs))]
    for job in jobs:
        org, contact = job.org_id.encode(), job.contact_id.encode()
        value = job.value
        parts.append(_LEN.pack(len(org)))
        parts.append(org)
        parts.append(_LEN.pack(len(contact)))
        parts.append(contact)
        parts.append(
            _JOB.pack(job.version, job.now_us, job.shown, -1 if value is None else len(value))
        )
        if value is not None:
            parts.append(value)
    body = b"".join(parts)
    return _FRAME.pack(len(body), request_id) + body


def encode_control(request_id: int, kind: int) -> bytes:
    """A request of kind `WRITE` or `DROP`, about what request `request_id` rendered."""
    return _FRAME.pack(_STATUS.size, request_id) + _STATUS.pack(kind)


def request_kind(body: bytes) -> int:
    if not body or body[0] > DROP:
        raise FrameError("not a snapshot request")
    return body[0]


def decode_jobs(body: bytes) -> list[RedisJob]:
    """The jobs of a request's body (after its frame header and kind)."""
    try:
        (count,) = _COUNT.unpack_from(body, _STATUS.size)
        at = _STATUS.size + _COUNT.size
        jobs: list[RedisJob] = []
        for _ in range(count):
            (n,) = _LEN.unpack_from(body, at)
            at += _LEN.size
            org = body[at : at + n].decode()
            at += n
            (n,) = _LEN.unpack_from(body, at)
            at += _LEN.size
            contact = body[at : at + n].decode()
            at += n
            version, now_us, shown, length = _JOB.unpack_from(body, at)
            at += _JOB.size
            value: bytes | None = None
            if length >= 0:
                value = body[at : at + length]
                if len(value) != length:
                    raise FrameError("a job's value is cut short")
                at += length
            jobs.append(RedisJob(org, contact, version, value, now_us, bool(shown)))
    except (struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"not a snapshot request: {exc}") from exc
    if at != len(body):
        raise FrameError(f"{len(body) - at} byte(s) after the last job")
    return jobs


def encode_answer(request_id: int, status: int, text: str = "") -> bytes:
    body = _STATUS.pack(status) + text.encode()
    return _FRAME.pack(len(body), request_id) + body


def decode_answer(body: bytes) -> tuple[int, str]:
    if not body:
        raise FrameError("an empty answer")
    return body[0], body[1:].decode(errors="replace")


async def read_frame(stream: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """(request id, body) of the next frame, None at the end of the stream."""
    try:
        head = await stream.readexactly(_FRAME.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("the stream ended inside a frame header") from exc
        return None
    length, request_id = _FRAME.unpack(head)
    try:
        return request_id, await stream.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("the stream ended inside a frame") from exc


# ------------------------------------------------------------------------ the worker's side
PIPE_BYTES = 1 << 20  # Linux's default most for an unprivileged process (fs.pipe-max-size)


def widen_pipe(stream: asyncio.StreamWriter | None) -> int:
    """Let the pipe to the child hold a whole part (~1 KB a contact) rather than 64 KiB.

    Through a 64 KiB pipe a part crosses in a dozen writes, one per turn of each side's event
    loop, and the short "write part N" request waits behind the parts sent before it: the
    child's Redis writes then lag the worker's landings by seconds. Returns the pipe's size
    (unchanged where the system refuses; 0 where there is no such call)."""
    if stream is None:
        return 0
    pipe = stream.transport.get_extra_info("pipe")
    if pipe is None:
        return 0
    if not hasattr(fcntl, "F_SETPIPE_SZ"):  # not Linux: the system's size stays
        return 0
    fd = pipe.fileno()
    try:
        return int(fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES))
    except OSError:  # a lower fs.pipe-max-size: keep what the system gives
        return int(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))


@dataclass(frozen=True, slots=True)
class Ticket:
    """A part's jobs being rendered by one child (`SnapshotProcess.prepare`)."""

    generation: int  # which child: a ticket of one that exited is worth nothing
    request_id: int


class SnapshotProcess:
    """The worker's handle on its snapshot child: `prepare` a part's jobs as soon as it is
    built, `write` them once it has landed, and await the answer."""

    def __init__(self, *, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "agents.snapshot_process"]
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[None]] = {}
        self.next_id = 0
        self.generation = 0
        self.exited_at = 0.0  # monotonic: when the last child exited
        self.starts = 0
        self.stopping = False
        self._spawning = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        async with self._spawning:
            if self.alive or self.stopping:
                return
            if self.starts and time.monotonic() - self.exited_at < RESTART_SECONDS:
                raise RedisConnectionError("the snapshot process exited; starting it again soon")
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "EM_SNAPSHOT_PARENT": str(os.getpid())},
            )
            widen_pipe(self.proc.stdin)
            self.starts += 1
            self.generation += 1
            if self.starts > 1:
                log.error("snapshot process started again (pid %d)", self.proc.pid)
            else:
                log.info("snapshot process started (pid %d)", self.proc.pid)
            self.reader = asyncio.ensure_future(self._read(self.proc))

    def _send(self, frame: bytes) -> bool:
        proc = self.proc
        if proc is None or proc.stdin is None or not self.alive:
            return False
        try:
            proc.stdin.write(frame)
        except (ConnectionError, OSError, RuntimeError):
            return False
        return True

    def prepare(self, jobs: Sequence[RedisJob]) -> Ticket | None:
        """Have the child start rendering these jobs now (nothing is awaited); None when no
        child is running, and then `write` renders them."""
        if not jobs or self.stopping:
            return None
        self.next_id += 1
        if not self._send(encode_request(self.next_id, jobs, RENDER)):
            return None
        return Ticket(self.generation, self.next_id)

    def drop(self, ticket: Ticket | None) -> None:
        """The part will not be written (its checkpoint was abandoned): the child forgets it."""
        if ticket is not None and ticket.generation == self.generation:
            self._send(encode_control(ticket.request_id, DROP))

    async def write(self, jobs: Sequence[RedisJob], ticket: Ticket | None = None) -> None:
        """Write these jobs (rendered under `ticket` if the same child is still running, else
        rendered now) to Redis in the child; raises a Redis `ConnectionError` when Redis or
        the child failed (the worker's outage handling takes it from there)."""
        if not jobs:
            self.drop(ticket)
            return
        await self.start()
        proc = self.proc
        if proc is None or proc.stdin is None:
            raise RedisConnectionError("the snapshot process is not running")
        if ticket is not None and ticket.generation == self.generation:
            request_id = ticket.request_id
            frame = encode_control(request_id, WRITE)
        else:
            self.next_id += 1
            request_id = self.next_id
            frame = encode_request(request_id, jobs)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = done
        try:
            proc.stdin.write(frame)
            await proc.stdin.drain()
        except (ConnectionError, OSError) as exc:
            self.pending.pop(request_id, None)
            raise RedisConnectionError(f"the snapshot process is gone: {exc}") from exc
        await done

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        stream = proc.stdout
        assert stream is not None
        reason = "exited"
        try:
            while True:
                frame = await read_frame(stream)
                if frame is None:
                    break
                request_id, body = frame
                status, text = decode_answer(body)
                done = self.pending.pop(request_id, None)
                if done is None or done.done():
                    continue
                if status == OK:
                    done.set_result(None)
                elif status == REDIS_FAILED:
                    done.set_exception(RedisConnectionError(text))
                else:
                    done.set_exception(RuntimeError(f"snapshot process: {text}"))
        except FrameError as exc:
            reason = f"wrote an unreadable answer ({exc})"
            log.error("snapshot process %s; stopping it", reason)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        code = await proc.wait()
        self.exited_at = time.monotonic()
        if not self.stopping:
            log.error("snapshot process (pid %d) %s with %s", proc.pid, reason, code)
        failure = RedisConnectionError(f"the snapshot process {reason} (code {code})")
        for request_id in [r for r, f in self.pending.items() if not f.done()]:
            self.pending.pop(request_id).set_exception(failure)

    async def stop(self) -> None:
        self.stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the child finishes what it has and exits
        try:
            await asyncio.wait_for(proc.wait(), timeout=STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("snapshot process did not stop; killing it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


class SnapshotProcesses:
    """`EM_SNAPSHOT_PROCESSES` children taking the parts in turn (a checkpoint's parts are
    independent: Redis keeps the higher version of a contact)."""

    def __init__(self, count: int, *, argv: list[str] | None = None) -> None:
        self.children = [SnapshotProcess(argv=argv) for _ in range(count)]
        self.turn = 0

    def _next(self) -> int:
        self.turn = (self.turn + 1) % len(self.children)
        return self.turn

    async def start(self) -> None:
        for child in self.children:
            await child.start()

    async def stop(self) -> None:
        await asyncio.gather(*(child.stop() for child in self.children))

    def prepare(self, jobs: Sequence[RedisJob]) -> tuple[int, Ticket] | None:
        index = self._next()
        ticket = self.children[index].prepare(jobs)
        return None if ticket is None else (index, ticket)

    def drop(self, prepared: tuple[int, Ticket] | None) -> None:
        if prepared is not None:
            self.children[prepared[0]].drop(prepared[1])

    async def write(
        self, jobs: Sequence[RedisJob], prepared: tuple[int, Ticket] | None = None
    ) -> None:
        if prepared is not None:
            await self.children[prepared[0]].write(jobs, prepared[1])
        else:
            await self.children[self._next()].write(jobs)


# --------------------------------------------------------------------------- the child's side
RENDER_CHUNK = 100  # jobs rendered between turns of the child's event loop (~10 ms)


class ChildRequests:
    """The child's side of the protocol: requests in, renders in turn, writes when asked.

    Frames are read as they come (`receive`), while parts are rendered one after the other in
    chunks of `RENDER_CHUNK` jobs (`render_all`), so a part's write (kind 2) starts as soon as
    the worker asks for it, not after every part queued behind it in the pipe has been
    rendered: measured on the benchmark's backlog, a child that read its next frame only
    after rendering the one before wrote nothing to Redis until the worker had built the whole
    checkpoint, and the last checkpoint's Redis writes then ran alone, a second after the rest.
    """

    def __init__(
        self,
        render: Callable[[list[RedisJob]], list[Any]],
        start_write: Callable[[int, list[Any]], None],
        answer: Callable[[int, int, str], None],
    ) -> None:
        self.render = render
        self.start_write = start_write
        self.answer = answer
        self.queue: deque[tuple[int, int, bytes]] = deque()  # (request id, kind, body)
        self.unrendered: set[int] = set()  # queued or being rendered
        self.write_asked: set[int] = set()  # of those: written as soon as rendered
        self.dropped: set[int] = set()  # of those: forgotten as soon as rendered
        self.rendered: dict[int, list[Any] | str] = {}  # id -> its writes, or why they failed
        self.closed = False  # the worker closed the pipe: render what is queued, then stop
        self._queued = asyncio.Event()

    def receive(self, request_id: int, body: bytes) -> None:
        """One request from the worker (`FrameError` if its kind is unknown)."""
        kind = request_kind(body)
        if kind == WRITE:
            held = self.rendered.pop(request_id, None)
            if isinstance(held, list):
                self.start_write(request_id, held)
            elif held is None and request_id in self.unrendered:
                self.write_asked.add(request_id)
            else:
                self.answer(request_id, RENDER_FAILED, held or "nothing rendered for it")
        elif kind == DROP:
            self.rendered.pop(request_id, None)
            if request_id in self.unrendered:
                self.dropped.add(request_id)
        else:
            self.queue.append((request_id, kind, body))
            self.unrendered.add(request_id)
            self._queued.set()

    def close(self) -> None:
        self.closed = True
        self._queued.set()

    async def render_all(self) -> None:
        """Render the queued requests in order until the pipe is closed and nothing is left."""
        while True:
            if not self.queue:
                if self.closed:
                    return
                self._queued.clear()
                await self._queued.wait()
                continue
            request_id, kind, body = self.queue.popleft()
            try:
                outcome: list[Any] | str = await self._render(body)
            except Exception as exc:  # a bug or a value this release cannot read: say so
                log.exception("rendering snapshot request %d failed", request_id)
                outcome = f"{type(exc).__name__}: {exc}"
            self._rendered(request_id, kind, outcome)

    async def _render(self, body: bytes) -> list[Any]:
        jobs = decode_jobs(body)
        writes: list[Any] = []
        for start in range(0, len(jobs), RENDER_CHUNK):
            writes += self.render(jobs[start : start + RENDER_CHUNK])
            await asyncio.sleep(0)  # read the frames that came meanwhile; let writes run
        return writes

    def _rendered(self, request_id: int, kind: int, outcome: list[Any] | str) -> None:
        self.unrendered.discard(request_id)
        if request_id in self.dropped:
            self.dropped.discard(request_id)
            self.write_asked.discard(request_id)
            return
        if kind == RENDER_WRITE or request_id in self.write_asked:
            self.write_asked.discard(request_id)
            if isinstance(outcome, list):
                self.start_write(request_id, outcome)
            else:
                self.answer(request_id, RENDER_FAILED, outcome)
            return
        self.rendered[request_id] = outcome
        if len(self.rendered) > MAX_RENDERED:  # never asked for: a worker bug, not a leak
            oldest = next(iter(self.rendered))
            log.error("snapshot request %d was never written; forgetting it", oldest)
            del self.rendered[oldest]


async def read_requests(reader: asyncio.StreamReader, requests: ChildRequests) -> None:
    """Hand every frame to `requests` as it arrives; close them at the end of the stream."""
    try:
        while True:
            frame = await read_frame(reader)
            if frame is None:
                break
            requests.receive(*frame)
    finally:
        requests.close()


async def _serve(parent: int) -> int:
    from agents.processor import render_jobs
    from agents.redis_outage import REDIS_ERRORS
    from agents.redis_sink import RedisSink
    from engagement_monitor.gc_tuning import tune_gc
    from engagement_monitor.settings import load_settings
    from engagement_monitor.snapshot_codec import check_dictionaries

    settings = load_settings()
    cfg = settings.counting_config()
    check_dictionaries()
    tune_gc()
    sink = RedisSink(
        str(settings.redis_url),
        settings.app_id,
        settings.redis_timeout_seconds,
        cluster=settings.redis_cluster,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**31)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    tasks: set[asyncio.Task[None]] = set()

    def answer(request_id: int, status: int, text: str = "") -> None:
        out.write(encode_answer(request_id, status, text))
        out.flush()

    async def write(request_id: int, rendered: Sequence[Any]) -> None:
        try:
            await sink.apply(rendered)
        except REDIS_ERRORS as exc:
            answer(request_id, REDIS_FAILED, f"{type(exc).__name__}: {exc}")
        else:
            answer(request_id, OK)

    async def watch_parent() -> None:
        while True:
            await asyncio.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                break
        log.warning("the worker (pid %d) is gone; this snapshot process stops", parent)
        os._exit(0)

    def start_write(request_id: int, writes: list[Any]) -> None:
        task = asyncio.ensure_future(write(request_id, writes))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    requests = ChildRequests(lambda jobs: render_jobs(jobs, cfg), start_write, answer)

    watcher = asyncio.ensure_future(watch_parent())
    try:
        await asyncio.gather(read_requests(reader, requests), requests.render_all())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    except BrokenPipeError:
        return 0
    finally:
        watcher.cancel()
        await sink.close()
    return 0


def main() -> int:
    """`python -m agents.snapshot_process`: the snapshot child of `engagement-monitor worker`."""
    from engagement_monitor.settings import load_settings

    level = load_settings().log_level
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] [snapshots] %(message)s",
    )
    parent = int(os.environ.get("EM_SNAPSHOT_PARENT") or os.getppid())
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    return int(runner(_serve(parent)))


if __name__ == "__main__":
    sys.exit(main())
