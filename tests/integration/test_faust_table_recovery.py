"""A Faust table survives a worker restart by replaying its changelog from the real broker.

Both stores the worker can use are checked, written the way a checkpoint writes them (bulk
changelog records, then one store write holding the changelog offset): RocksDB (through
rocksdict) and memory. The local store directory is wiped between runs, so the second worker can
only know the counts from the changelog topic.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["a", "b", "c", "d", "e"]


async def _produce(bootstrap: str, topic: str, first: int, per_key: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(first, first + per_key):
            for key in KEYS:
                await producer.send(topic, str(i).encode(), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _wait_counts(
    client: aioredis.Redis, topic: str, expected: int, proc: subprocess.Popen[bytes], log: Path
) -> dict[str, int]:
    deadline = time.monotonic() + 90
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        values = await client.mget([f"{topic}:{k}" for k in KEYS])
        counts = {k: int(v) for k, v in zip(KEYS, values, strict=True) if v is not None}
        if len(counts) == len(KEYS) and all(v >= expected for v in counts.values()):
            return counts
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.3)
    pytest.fail(f"counts stuck at {counts}, expected {expected}:\n{log.read_text()[-3000:]}")


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.apps.counter_app", "worker", "-l", "info"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("store", ["emrocksdb://", "emmemory://"])
async def test_table_is_recovered_from_changelog_after_restart(
    store: str,
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    redis_client: aioredis.Redis,
    redis_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    topic = f"smoke-{unique}"
    await kafka_admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    datadir = tmp_path / "data"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "SMOKE_APP_ID": f"smoke-{unique}",
        "SMOKE_BOOTSTRAP": kafka_bootstrap,
        "SMOKE_STORE": store,
        "SMOKE_DATADIR": str(datadir),
        "SMOKE_TOPIC": topic,
        "SMOKE_REDIS_URL": redis_url,
    }

    await _produce(kafka_bootstrap, topic, first=0, per_key=10)
    proc = _start(env, log)
    try:
        assert await _wait_counts(redis_client, topic, 10, proc, log) == dict.fromkeys(KEYS, 10)
    finally:
        _stop(proc)
    shutil.rmtree(datadir, ignore_errors=True)  # only the changelog can bring the counts back

    await _produce(kafka_bootstrap, topic, first=10, per_key=10)
    proc = _start(env, log)
    try:
        assert await _wait_counts(redis_client, topic, 20, proc, log) == dict.fromkeys(KEYS, 20)
    finally:
        _stop(proc)
    if store.startswith("emrocksdb"):
        assert any(datadir.rglob("*")), "the RocksDB store wrote nothing to its data directory"
