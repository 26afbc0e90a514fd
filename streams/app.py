"""The Faust app built from settings: broker, store, partitions, the topics and the contact table.

Every record is read as raw bytes (`raw` codecs): decoding and validation happen in the batch
processor, so a record that is not valid JSON becomes a dead letter instead of crashing the
agent inside Faust's deserializer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from engagement_monitor.settings import MIB, Settings
from streams.contact_table import ContactTable
from streams.faust_seams import WorkerApp, broker_urls, check_app, check_faust, store_url
from streams.quiet_monitor import QuietMonitor
from streams.topics import ENVELOPE_TOPIC, OUTPUT_TOPICS, TopicNames


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """Bounded RocksDB memory per table partition: `RocksDBOptions` fields of Faust's store."""
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * MIB,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * MIB,
    }


RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


@dataclass(frozen=True)
class Streams:
    app: WorkerApp
    names: TopicNames
    source: Any  # faust topic of the envelopes (the agent's only input)
    outputs: dict[str, Any]  # short name -> faust topic
    contacts: ContactTable  # contact key -> packed StoredContact


def create_app(settings: Settings) -> Streams:
    check_faust()
    names = TopicNames(settings.topic_prefix)
    app = WorkerApp(
        settings.app_id,
        broker=broker_urls(settings.kafka_bootstrap),
        store=store_url(settings.store),
        datadir=str((settings.data_dir / "worker").resolve()),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        web_enabled=True,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        # A sixth of the session: after a member dies, the survivors learn of the rebalance at
        # their next heartbeat, so with a short session (fast fail-over) this is a share of it.
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 6),
        producer_linger_ms=5,
        producer_max_batch_size=262144,
        producer_acks=-1,
        stream_buffer_maxsize=max(4096, settings.batch_max_records * 2),
        table_standby_replicas=settings.standby_replicas,
        Monitor=QuietMonitor,
    )
    source = app.topic(*names.consumed, **RAW)
    outputs = {short: app.topic(names.full(short), **RAW) for short in OUTPUT_TOPICS}
    # Expiry ticks and the rare entry forwarded to its owner go out as envelopes too.
    outputs[ENVELOPE_TOPIC] = app.topic(names.envelopes, **RAW)
    contacts = ContactTable(
        app,
        name="contacts",
        default=None,
        beacon=app.tables.beacon,
        partitions=settings.partitions,
        use_partitioner=True,
        # `bytes` types make Faust pick the raw codec for the store, the changelog topic and
        # recovery alike: the value is our own compact binary encoding.
        key_type=bytes,
        value_type=bytes,
        schema=faust.Schema(**RAW),
        # Given to the RocksDB store Faust opens per partition (ignored by the memory store).
        options=rocksdb_options(settings),
    )
    app.tables.add(contacts)
    check_app(app)
    return Streams(app, names, source, outputs, contacts)
