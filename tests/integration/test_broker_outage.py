"""A broker outage costs nothing but time: the same worker and API processes ride it out.

The test runs its own broker (`tests.integration.kafka_server`), stops it for 30 s under
traffic and starts it again, as an operator restarting Kafka would. The worker must neither
exit nor lose or double-count a record; the API keeps serving reads from Redis, answers writes
with 503 while Kafka cannot confirm them, and accepts them again afterwards, in the same
process. A write retried after its 503 with the same Idempotency-Key is one command, whether
or not Kafka took the first attempt once it was back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from counting import CountingConfig
from read_api.app import create_app
from read_api.commands import KafkaPublisher
from tests.integration.harness import Pipeline
from tests.integration.kafka_server import KafkaServer
from tests.integration.streamgen import engagement_stream, reference
from tests.integration.test_pipeline_exactness import _assert_exact
from tests.read_api.support import make_settings, make_tokens

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30


@pytest.fixture
async def own_kafka(pipeline: Pipeline, tmp_path: Path) -> AsyncIterator[KafkaServer]:
    server = KafkaServer(tmp_path / "kafka")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        # The workers first, while their broker is up: a worker asked to stop with its broker
        # gone waits out its shutdown timeouts (60 s of the suite).
        await asyncio.to_thread(pipeline.stop_all)
        await asyncio.to_thread(server.stop, kill=True)


async def _send_requests(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        found = []
        for _ in range(6):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [orjson.loads(r.value) for r in records]
        return found
    finally:
        await consumer.stop()


async def test_broker_stopped_then_restarted_under_traffic(
    pipeline: Pipeline, own_kafka: KafkaServer, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    pipeline.bootstrap = own_kafka.bootstrap
    pipeline.store = "rocksdb"
    org = f"broker-{pipeline.unique}"
    records = engagement_stream(org, contacts=120, messages=5, seed=31)
    half = len(records) // 2

    settings = make_settings(
        tmp_path,
        kafka_bootstrap=own_kafka.bootstrap,
        redis_url=pipeline.redis_url,
        topic_prefix=pipeline.prefix,
    )
    tokens = make_tokens(settings, org)
    publisher = KafkaPublisher(own_kafka.bootstrap, timeout_s=3.0)
    api = create_app(settings, producer=publisher)
    monitor = f"/v1/orgs/{org}/contacts/c0000/monitor"
    send = f"/v1/orgs/{org}/contacts/c0000/messages"
    body = {"channel": "sms", "text": "hello"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as http:
        worker = await pipeline.start_worker()
        await pipeline.produce(records[:half])
        await _assert_exact(redis_client, reference(records[:half], CountingConfig()))
        accepted = await http.post(send, json=body, headers=tokens.header("operator"))
        assert accepted.status_code == 202, accepted.text

        await asyncio.to_thread(own_kafka.stop)
        stopped = time.monotonic()
        # Reads come from Redis: unaffected. Writes cannot be accepted: 503, nothing published.
        assert (await http.get(monitor, headers=tokens.header("agent"))).status_code == 200
        retry_key = {"Idempotency-Key": f"send-{pipeline.unique}"}
        refused = await http.post(
            send, json=body, headers={**tokens.header("operator"), **retry_key}
        )
        assert refused.status_code == 503, refused.text
        assert "Idempotency-Key" in refused.json()["detail"]

        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        await asyncio.to_thread(own_kafka.start)

        await pipeline.produce(records[half:])
        await _assert_exact(redis_client, reference(records, CountingConfig()), timeout=180)
        assert worker.proc.poll() is None, worker.tail()  # the same process throughout

        again = await http.post(send, json=body, headers={**tokens.header("operator"), **retry_key})
        assert again.status_code == 202, again.text  # the same API process, once Kafka is back
        requests = await _send_requests(own_kafka.bootstrap, pipeline.topic("send-requests"))
        # Two commands: the first, and the retried one (once or twice on the topic, one id).
        assert {r["request_id"] for r in requests} == {
            accepted.json()["request_id"],
            again.json()["request_id"],
        }
    await publisher.stop()
