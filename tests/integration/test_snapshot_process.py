"""The snapshot process (`agents.snapshot_process`) against the project's Redis: it writes,
key for key, what the worker writes without it; a Redis it cannot reach and a child killed
with -9 come back to the worker as Redis errors (its outage handling takes over), and a new
child is started for the next write."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from agents import snapshot_process as sp
from agents.processor import RedisJob, render_jobs
from agents.redis_sink import RedisSink
from agents.stored import StoredContact, pack
from counting import apply_event, current_tiers, next_expiry
from counting.timeutil import to_us
from engagement_monitor import keyspace as ks
from engagement_monitor.settings import load_settings
from tests.unit import factories as f

pytestmark = pytest.mark.integration


def _jobs(org: str) -> list[RedisJob]:
    """Three contacts as a checkpoint leaves them: engaged on two channels, with tier history;
    only dispatched; and one whose entry is gone."""
    cfg = load_settings().counting_config()
    now = f.NOW
    jobs = []
    streams: dict[str, list[Any]] = {
        "engaged": [
            f.dispatch("m1", f.ago(days=3), "email"),
            f.delivery("m1", f.ago(days=3), "email"),
            f.opened("m1", f.ago(days=2), "email"),
            f.dispatch("m2", f.ago(days=1), "sms"),
            f.delivery("m2", f.ago(days=1), "sms"),
        ],
        "dispatched": [f.dispatch("m3", f.ago(hours=5), "whatsapp")],
    }
    for contact, events in streams.items():
        state = None
        for event in events:
            state = apply_event(state, event, now, cfg).state
        assert state is not None
        tiers = current_tiers(org, state, now, cfg)
        history = [
            [(now - timedelta(days=1)).isoformat(), None, None, "high", 50.0, "event"],
            [now.isoformat(), "sms", None, "very_high", 100.0, "event"],
        ]
        stored = StoredContact(state, tiers, 1_000 + len(jobs), history)
        value = pack(stored, next_expiry(state, cfg))
        jobs.append(RedisJob(org, contact, stored.version, value, to_us(now), bool(tiers)))
    jobs.append(RedisJob(org, "gone", 5_000, None, to_us(now), False))
    return jobs


async def _contents(client: aioredis.Redis, org: str) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    async for key in client.scan_iter(match=ks.redis_org_prefix_pattern(org), count=1000):
        kind = await client.type(key)
        if kind == b"string":
            out[key] = await client.get(key)
        elif kind == b"hash":
            out[key] = await client.hgetall(key)
        elif kind == b"zset":
            out[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            out[key] = sorted(await client.smembers(key))
        else:
            out[key] = kind
    return out


async def _clear(client: aioredis.Redis, org: str) -> None:
    keys = [k async for k in client.scan_iter(match=ks.redis_org_prefix_pattern(org), count=1000)]
    if keys:
        await client.unlink(*keys)


@pytest.fixture
def child_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, unique: str) -> str:
    """The settings the child reads (it inherits the environment); the app id."""
    app_id = f"snap-{unique}"
    monkeypatch.setenv("EM_REDIS_URL", redis_url)
    monkeypatch.setenv("EM_APP_ID", app_id)
    monkeypatch.setenv("EM_LOG_LEVEL", "WARNING")
    return app_id


async def test_the_child_writes_what_the_worker_writes_without_it(
    child_env: str, redis_client: aioredis.Redis, redis_url: str, unique: str
) -> None:
    org = f"org-{unique}"
    jobs = _jobs(org)
    child = sp.SnapshotProcess()
    try:
        await child.write(jobs)
        by_child = await _contents(redis_client, org)
    finally:
        await child.stop()
    assert child.proc is not None and child.proc.returncode == 0  # stopped, not killed
    snapshot_key = ks.redis_contact_keys(org, "engaged")[0].encode()
    assert snapshot_key in by_child and len(by_child) > 5

    await _clear(redis_client, org)
    sink = RedisSink(redis_url, child_env)
    try:
        await sink.apply(render_jobs(jobs, load_settings().counting_config()))
    finally:
        await sink.close()
    assert await _contents(redis_client, org) == by_child
    await _clear(redis_client, org)


async def test_parts_rendered_ahead_are_written_when_asked_and_dropped_ones_never(
    child_env: str, redis_client: aioredis.Redis, unique: str
) -> None:
    """A checkpoint has its parts rendered as soon as they are built (`prepare`) and written
    once landed (`write` with the ticket); a part abandoned in between is dropped, and a
    ticket of a child that has since exited is rendered again."""
    org, other = f"org-{unique}", f"other-{unique}"
    child = sp.SnapshotProcess()
    try:
        await child.start()
        kept = child.prepare(_jobs(org))
        dropped = child.prepare(_jobs(other))
        assert kept is not None and dropped is not None
        child.drop(dropped)
        await child.write(_jobs(org), kept)
        assert await _contents(redis_client, org)
        assert await _contents(redis_client, other) == {}  # never written
        await _clear(redis_client, org)
        stale = sp.Ticket(child.generation - 1, kept.request_id)  # an earlier child's
        await child.write(_jobs(org), stale)
        assert await _contents(redis_client, org)
    finally:
        await child.stop()
        await _clear(redis_client, org)


async def test_redis_out_of_reach_comes_back_as_a_redis_error(
    child_env: str, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    monkeypatch.setenv("EM_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    monkeypatch.setenv("EM_REDIS_TIMEOUT_SECONDS", "1")
    child = sp.SnapshotProcess()
    try:
        with pytest.raises(RedisConnectionError):
            await child.write(_jobs(f"org-{unique}"))
        assert child.alive  # a Redis failure is not the child's: it stays
    finally:
        await child.stop()


async def test_a_child_killed_fails_its_write_and_a_new_one_takes_the_next(
    child_env: str, redis_client: aioredis.Redis, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = f"org-{unique}"
    monkeypatch.setattr(sp, "RESTART_SECONDS", 0.2)
    child = sp.SnapshotProcess()
    try:
        await child.start()
        assert child.proc is not None
        first = child.proc.pid
        os.kill(first, signal.SIGSTOP)  # caught mid-request: the write is in flight
        writing = asyncio.ensure_future(child.write(_jobs(org)))
        await asyncio.sleep(0.2)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(RedisConnectionError, match="exited"):
            await asyncio.wait_for(writing, 10)
        with pytest.raises(RedisConnectionError, match="again soon"):
            await child.write(_jobs(org))  # at most one start a RESTART_SECONDS
        await asyncio.sleep(0.3)
        await child.write(_jobs(org))
        assert child.proc.pid != first and child.starts == 2
        snapshot_key = ks.redis_contact_keys(org, "engaged")[0]
        assert await redis_client.get(snapshot_key) is not None
    finally:
        await child.stop()
        await _clear(redis_client, org)


async def test_the_children_take_the_parts_in_turn(
    child_env: str, redis_client: aioredis.Redis, unique: str
) -> None:
    orgs = [f"org{i}-{unique}" for i in range(4)]
    pool = sp.SnapshotProcesses(2)
    try:
        await pool.start()
        prepared = [pool.prepare(_jobs(org)) for org in orgs]
        assert [p[0] for p in prepared if p is not None] == [1, 0, 1, 0]
        await asyncio.gather(
            *(pool.write(_jobs(o), p) for o, p in zip(orgs, prepared, strict=True))
        )
        await pool.write(_jobs(orgs[0]))  # not prepared: rendered by the next in turn
        for org in orgs:
            assert await _contents(redis_client, org)
        pids = {child.proc.pid for child in pool.children if child.proc is not None}
        assert len(pids) == 2
    finally:
        await pool.stop()
        for org in orgs:
            await _clear(redis_client, org)
