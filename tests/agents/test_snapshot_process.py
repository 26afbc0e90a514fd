"""The frames between the worker and its snapshot process (`agents.snapshot_process`): every
job comes back as it was sent, and anything that is not a whole frame is refused, never
half-read."""

from __future__ import annotations

import asyncio

import pytest

from agents.processor import RedisJob
from agents.snapshot_process import (
    DROP,
    OK,
    REDIS_FAILED,
    RENDER,
    RENDER_WRITE,
    WRITE,
    FrameError,
    decode_answer,
    decode_jobs,
    encode_answer,
    encode_control,
    encode_request,
    read_frame,
    request_kind,
)

JOBS = [
    RedisJob(
        "org-1", "contact-1", 1_764_000_000_123, b"\x02value\x00bytes", 1_764_000_000_123_456, True
    ),
    RedisJob("org:ü", "c|é 🙂", 7, None, -5, False),  # ids of any characters; a removal
    RedisJob("o", "", 2**63 - 1, b"", 0, False),  # an empty value is not a missing one
]


def _fields(job: RedisJob) -> tuple[object, ...]:
    return (job.org_id, job.contact_id, job.version, job.value, job.now_us, job.shown)


async def _frames(data: bytes) -> list[tuple[int, bytes]]:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    out = []
    while (frame := await read_frame(stream)) is not None:
        out.append(frame)
    return out


async def test_a_request_carries_its_kind_and_every_job_as_it_was() -> None:
    data = (
        encode_request(41, JOBS)
        + encode_request(42, [], RENDER)
        + encode_control(42, WRITE)
        + encode_control(43, DROP)
    )
    frames = await _frames(data)
    assert [request_id for request_id, _ in frames] == [41, 42, 42, 43]
    assert [request_kind(body) for _, body in frames] == [RENDER_WRITE, RENDER, WRITE, DROP]
    assert [_fields(j) for j in decode_jobs(frames[0][1])] == [_fields(j) for j in JOBS]
    assert decode_jobs(frames[1][1]) == []
    with pytest.raises(FrameError):
        request_kind(b"\x09")


async def test_answers_carry_their_status_and_reason() -> None:
    frames = await _frames(encode_answer(3, OK) + encode_answer(4, REDIS_FAILED, "Timeout: é"))
    assert [(i, decode_answer(body)) for i, body in frames] == [
        (3, (OK, "")),
        (4, (REDIS_FAILED, "Timeout: é")),
    ]


@pytest.mark.parametrize("cut", [1, 11, 12, 20, -1])
async def test_a_stream_cut_inside_a_frame_is_refused(cut: int) -> None:
    data = encode_request(1, JOBS)
    with pytest.raises(FrameError):
        await _frames(data[:cut])


def test_a_body_that_is_not_jobs_is_refused() -> None:
    body = encode_request(1, JOBS)[12:]  # past the frame header: kind, count, jobs
    with pytest.raises(FrameError):
        decode_jobs(body[:-3])  # the last value cut short
    with pytest.raises(FrameError):
        decode_jobs(body + b"extra")
    with pytest.raises(FrameError):
        decode_jobs(b"\x00\x00\x00\x01\xff")
