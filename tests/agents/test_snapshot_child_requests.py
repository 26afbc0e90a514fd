"""The snapshot child's request handling (`agents.snapshot_process.ChildRequests`), without a
process or Redis: a part's write starts as soon as the worker asks for it and the part is
rendered, even while later parts are still being rendered; dropped parts are never written;
a failed render is answered as one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.processor import RedisJob
from agents.snapshot_process import (
    DROP,
    PIPE_BYTES,
    RENDER,
    RENDER_CHUNK,
    RENDER_FAILED,
    RENDER_WRITE,
    WRITE,
    ChildRequests,
    encode_control,
    encode_request,
    read_requests,
    widen_pipe,
)


def _jobs(n: int, org: str = "org") -> list[RedisJob]:
    return [RedisJob(org, f"c{i}", i + 1, b"v", 1_000, True) for i in range(n)]


class Recorder:
    """Renders each job to its contact id, and records renders, writes and answers in order."""

    def __init__(self, fail_org: str | None = None) -> None:
        self.fail_org = fail_org
        self.events: list[tuple[str, Any]] = []

    def render(self, jobs: list[RedisJob]) -> list[Any]:
        if self.fail_org is not None and jobs and jobs[0].org_id == self.fail_org:
            raise ValueError("cannot read this value")
        self.events.append(("render", jobs[0].org_id))
        return [job.contact_id for job in jobs]

    def start_write(self, request_id: int, writes: list[Any]) -> None:
        self.events.append(("write", (request_id, len(writes))))

    def answer(self, request_id: int, status: int, text: str = "") -> None:
        self.events.append(("answer", (request_id, status, text)))

    def requests(self) -> ChildRequests:
        return ChildRequests(self.render, self.start_write, self.answer)


def _body(frame: bytes) -> bytes:
    return frame[12:]  # after the u32 length and u64 id


def _receive(requests: ChildRequests, request_id: int, frame: bytes) -> None:
    requests.receive(request_id, _body(frame))


async def _render_after(requests: ChildRequests, *frames: tuple[int, bytes]) -> None:
    """Receive these frames, the pipe closes, and everything queued is rendered."""
    for request_id, frame in frames:
        _receive(requests, request_id, frame)
    requests.close()
    await requests.render_all()


async def test_a_write_asked_while_its_part_is_queued_starts_once_it_is_rendered() -> None:
    rec = Recorder()
    requests = rec.requests()
    await _render_after(
        requests,
        (1, encode_request(1, _jobs(3, "a"), RENDER)),
        (2, encode_request(2, _jobs(3, "b"), RENDER)),
        (1, encode_control(1, WRITE)),  # asked before anything was rendered
    )
    assert rec.events == [("render", "a"), ("write", (1, 3)), ("render", "b")]
    assert requests.rendered.keys() == {2}  # kept until asked for


async def test_a_part_rendered_already_is_written_at_once_and_kept_ones_on_request() -> None:
    rec = Recorder()
    requests = rec.requests()
    await _render_after(requests, (1, encode_request(1, _jobs(2), RENDER)))
    assert rec.events == [("render", "org")]
    _receive(requests, 1, encode_control(1, WRITE))
    assert rec.events[-1] == ("write", (1, 2))
    assert not requests.rendered


async def test_frames_are_read_between_chunks_so_a_write_does_not_wait_for_later_parts() -> None:
    """The worker asks for part 1's write while part 2 (ten chunks) is being rendered: the
    write starts before part 2 is done, because frames are read between chunks."""
    rec = Recorder()
    requests = rec.requests()
    reader = asyncio.StreamReader()
    reader.feed_data(encode_request(1, _jobs(RENDER_CHUNK, "first"), RENDER))
    reader.feed_data(encode_request(2, _jobs(10 * RENDER_CHUNK, "second"), RENDER))
    reading = asyncio.ensure_future(read_requests(reader, requests))
    rendering = asyncio.ensure_future(requests.render_all())
    for _ in range(1000):  # turns of the loop until part 1 is rendered
        if 1 in requests.rendered:
            break
        await asyncio.sleep(0)
    assert 1 in requests.rendered
    reader.feed_data(encode_control(1, WRITE))
    reader.feed_eof()
    await asyncio.gather(reading, rendering)
    write_at = rec.events.index(("write", (1, RENDER_CHUNK)))
    later_chunks = [e for e in rec.events[write_at:] if e == ("render", "second")]
    assert later_chunks, f"part 1 was written only after part 2 was rendered: {rec.events}"
    assert rec.events.count(("render", "second")) == 10
    assert requests.rendered.keys() == {2}


async def test_a_dropped_part_is_never_written_even_if_dropped_mid_render() -> None:
    rec = Recorder()
    requests = rec.requests()
    await _render_after(
        requests,
        (1, encode_request(1, _jobs(2), RENDER)),
        (2, encode_request(2, _jobs(2), RENDER)),
        (1, encode_control(1, WRITE)),
        (1, encode_control(1, DROP)),  # the checkpoint was abandoned meanwhile
        (2, encode_control(2, DROP)),
    )
    assert [e for e in rec.events if e[0] != "render"] == []
    assert not requests.rendered and not requests.unrendered and not requests.dropped


async def test_render_and_write_requests_are_written_without_being_asked() -> None:
    rec = Recorder()
    requests = rec.requests()
    await _render_after(requests, (5, encode_request(5, _jobs(4), RENDER_WRITE)))
    assert rec.events[-1] == ("write", (5, 4))


async def test_a_failed_render_is_answered_when_its_write_is_asked() -> None:
    rec = Recorder(fail_org="bad")
    requests = rec.requests()
    await _render_after(
        requests,
        (1, encode_request(1, _jobs(2, "bad"), RENDER)),
        (2, encode_request(2, _jobs(2, "bad"), RENDER)),
        (2, encode_control(2, WRITE)),  # asked before its render failed
    )
    assert rec.events == [("answer", (2, RENDER_FAILED, "ValueError: cannot read this value"))]
    _receive(requests, 1, encode_control(1, WRITE))  # asked after
    assert rec.events[-1] == ("answer", (1, RENDER_FAILED, "ValueError: cannot read this value"))
    _receive(requests, 9, encode_control(9, WRITE))  # never sent
    assert rec.events[-1] == ("answer", (9, RENDER_FAILED, "nothing rendered for it"))


async def test_the_pipe_to_the_child_holds_a_whole_part() -> None:
    most = int(Path("/proc/sys/fs/pipe-max-size").read_text()) if sys.platform == "linux" else 0
    if most < PIPE_BYTES:
        pytest.skip(f"this system allows pipes of {most} bytes at most")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=subprocess.PIPE
    )
    try:
        assert widen_pipe(proc.stdin) == PIPE_BYTES
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        await proc.wait()
