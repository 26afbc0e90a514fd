"""The ingest's pure half: a fetch of input records in, one envelope per owning partition out.

Compiled with the worker's hot modules (`engagement_monitor.native`): every input record passes
through `route` and `frame` once, in the ingest process, whose CPU the 2-core benchmark machine
shares with the worker, the broker and Redis (interpreted, framing cost ~5 µs a record of the
ingest's ~13). `streams.ingest` runs the loop around it (fetch, send, commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from counting.reading import validated
from streams.envelope import KIND_RECORD, KIND_VALIDATED, VALIDATED_HEADER, EnvelopeWriter
from streams.partitioning import contact_partition


def route(value: bytes | None, source_partition: int, partitions: int) -> int:
    """The partition that owns the record's contact, from the ids in its value.

    A record without readable ids stays on its source partition's number (mod `partitions`):
    it is a dead letter either way, and the processor says why.
    """
    return read(value, source_partition, partitions, None, ())[0]


def read(
    value: bytes | None,
    source_partition: int,
    partitions: int,
    topic: str | None,
    channels: tuple[str, ...],
) -> tuple[int, bytes | None]:
    """`route`, and the encoded event (`counting.event_codec`) when `topic` (unprefixed) is an
    engagement topic and the record passes `counting.reading`'s fast path: the JSON is parsed
    once for both."""
    if value:
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            org_id, contact_id = data.get("org_id"), data.get("contact_id")
            if isinstance(org_id, str) and isinstance(contact_id, str):
                owner = contact_partition(org_id, contact_id, partitions)
                return owner, None if topic is None else validated(topic, data, channels)
    return source_partition % partitions, None


@dataclass(slots=True)
class Routed:
    """One fetch, framed: envelopes per owning partition, oversize records, offsets to commit."""

    envelopes: list[tuple[int, bytes, int]]  # (partition, envelope, entries)
    oversize: list[ConsumerRecord[bytes, bytes]]
    offsets: dict[TopicPartition, int]  # next offset to read, per input partition
    records: int


def frame(
    fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    partitions: int,
    max_record_bytes: int,
    max_envelope_bytes: int,
    shorts: Mapping[str, str] | None = None,
    channels: tuple[str, ...] = (),
) -> Routed:
    """Pure: a fetch in, the envelopes to send out (tested without a broker).

    `shorts` (input topic -> its unprefixed name) and `channels`: validate the records of the
    engagement topics here (`read`), so the worker need not (`KIND_VALIDATED`); without them,
    every record goes as read (`KIND_RECORD`)."""
    writers: dict[int, EnvelopeWriter] = {}
    envelopes: list[tuple[int, bytes, int]] = []
    oversize: list[ConsumerRecord[bytes, bytes]] = []
    offsets: dict[TopicPartition, int] = {}
    n = 0
    for tp, records in fetched.items():
        if not records:
            continue
        for record in records:
            n += 1
            value = record.value or b""
            if len(value) > max_record_bytes:
                oversize.append(record)
                continue
            short = shorts.get(record.topic) if shorts is not None else None
            owner, event = read(value, record.partition, partitions, short, channels)
            writer = writers.get(owner)
            if writer is None:
                writer = writers[owner] = EnvelopeWriter()
            elif (
                writer.size
                + len(value)
                + len(record.key or b"")
                + (0 if event is None else len(event) + 32)
                + 64
                > max_envelope_bytes
            ):
                envelopes.append((owner, writer.finish(), writer.count))
                writer = writers[owner] = EnvelopeWriter()
            headers = [(k, v) for k, v in record.headers] if record.headers else []
            if event is not None:
                headers.insert(0, (VALIDATED_HEADER, event))
            writer.add(
                KIND_RECORD if event is None else KIND_VALIDATED,
                record.topic,
                record.partition,
                record.offset,
                record.key,
                value,
                headers,
            )
        offsets[tp] = records[-1].offset + 1
    for owner, writer in writers.items():
        envelopes.append((owner, writer.finish(), writer.count))
    return Routed(envelopes, oversize, offsets, n)
