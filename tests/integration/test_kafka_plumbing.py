"""The broker started by the project really stores and serves records (produce → consume)."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


async def test_produce_then_consume_in_a_group(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, unique: str
) -> None:
    topic = f"plumbing-{unique}"
    await kafka_admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(300):
            await producer.send(topic, f"value-{i}".encode(), key=f"key-{i % 7}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"plumbing-{unique}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[bytes] = []
    try:
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                seen.extend(r.value for r in records if r.value is not None)
            if len(seen) >= 300:
                break
        await consumer.commit()
    finally:
        await consumer.stop()

    assert sorted(seen) == sorted(f"value-{i}".encode() for i in range(300))
    description = await kafka_admin.describe_topics([topic])
    assert len(description[0]["partitions"]) == 3
