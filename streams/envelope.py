"""Envelopes: many input records in one Kafka record, so Faust's per-record cost is paid per batch.

The ingest stage (``streams.ingest``) reads the input topics with a plain aiokafka consumer and
writes, per fetch and owning partition, one envelope to ``{prefix}internal.envelopes`` on that
partition (the partition of the contact table that owns every contact in it). The Faust agent
reads envelopes, so ~1 Faust record carries hundreds of events (Kafka Streams' repartition
topic, with batched records).

Each entry keeps what the worker needs of its record as read: source topic (full name), partition,
offset, key, value and headers, so a dead letter made from it later names its true origin. An
entry can also be an expiry tick for one contact (its table key in ``key``, no value).

Binary, versioned framing (big-endian), because values may be anything a producer sent (not
always JSON), and framing must cost less than a microsecond per entry:

    envelope := b"EMv1" u16 n_topics { u16 len, utf-8 name }* u32 n_entries entry*
    entry    := u8 kind, u16 topic index, i32 partition, i64 offset,
                i32 key length (-1: no key), u32 value length, u16 n_headers,
                key, value, { u16 name length, u32 value length, name, value }*

An entry of kind `KIND_VALIDATED` carries the event the ingest validated as its first header
(name `VALIDATED_HEADER`); the record's own headers follow it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAGIC = b"EMv1"
KIND_RECORD = 0  # an input record, as read
KIND_TICK = 1  # an expiry tick for the contact whose table key is the entry's key
KIND_FORWARDED = 2  # an input record the processor sent on to its owner (at most one hop)
# An input record, as read, that the ingest validated: its first header is the ingest's (the
# encoded event, `counting.event_codec`), the record's own headers follow. Laid out as a
# record, so a worker of an earlier release reads it as one (and would only pass that header
# on to a dead letter); this one reads the event from the header and drops the header from the
# record it hands on (`EnvelopeReader.entry`).
KIND_VALIDATED = 3

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_ENTRY = struct.Struct(">BHiqiIH")
VALIDATED_HEADER = "em-event"
_HEADER = struct.Struct(">HI")

Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """Bytes that are not an envelope of a version this worker reads."""


@dataclass(slots=True, init=False)
class Entry:
    kind: int
    topic: str  # full name as read ("engagement.open"); "" for a tick
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`), and it runs once per event.
    def __init__(
        self,
        kind: int,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
    ) -> None:
        self.kind = kind
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = [] if headers is None else headers


def tick_entry(key: bytes) -> Entry:
    return Entry(KIND_TICK, "", -1, -1, key, b"")


class EnvelopeWriter:
    """Builds one envelope; ``size`` is the bytes so far, to keep envelopes under a limit."""

    __slots__ = ("_parts", "_topics", "count", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._topics: dict[str, int] = {}
        self.count = 0
        self.size = 16

    def add(
        self,
        kind: int,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        index = self._topics.get(topic)
        if index is None:
            index = self._topics[topic] = len(self._topics)
            self.size += 2 + len(topic.encode())
        parts = self._parts
        parts.append(
            _ENTRY.pack(
                kind,
                index,
                partition,
                offset,
                -1 if key is None else len(key),
                len(value),
                len(headers),
            )
        )
        if key:
            parts.append(key)
        parts.append(value)
        size = _ENTRY.size + len(value) + (len(key) if key else 0)
        for name, header_value in headers:
            raw_name = name.encode()
            parts.append(_HEADER.pack(len(raw_name), len(header_value)))
            parts.append(raw_name)
            parts.append(header_value)
            size += _HEADER.size + len(raw_name) + len(header_value)
        self.size += size
        self.count += 1

    def add_entry(self, entry: Entry) -> None:
        self.add(
            entry.kind,
            entry.topic,
            entry.partition,
            entry.offset,
            entry.key,
            entry.value,
            entry.headers,
        )

    def finish(self) -> bytes:
        head = [MAGIC, _U16.pack(len(self._topics))]
        for name in self._topics:  # dicts keep insertion order: index order
            raw = name.encode()
            head.append(_U16.pack(len(raw)))
            head.append(raw)
        head.append(_U32.pack(self.count))
        return b"".join(head + self._parts)


def encode(entries: Iterable[Entry]) -> bytes:
    writer = EnvelopeWriter()
    for entry in entries:
        writer.add_entry(entry)
    return writer.finish()


def decode(data: bytes) -> list[Entry]:
    """The entries of one envelope, in order; ``EnvelopeError`` if it is not one."""
    reader = EnvelopeReader(data)
    entries: list[Entry] = []
    while reader.next():
        entries.append(reader.entry())
    return entries


class EnvelopeReader:
    """Walks one envelope's entries in place, taking out per entry only what the worker reads
    of every one (kind, topic, value); the key and the rest on demand (``key``, ``entry``).

    The worker reads ~35,000 entries a second on one core: building an ``Entry`` with its own
    copies of key, value and headers for each cost ~1.5 µs, of which a walk that reads each
    entry's fixed header and slices its value keeps about a third. A dead letter or a forward
    (rare) takes the whole entry with ``entry``.

    ``next`` moves to the next entry (False after the last); it raises ``EnvelopeError`` where
    the bytes stop being an envelope (so the entries before the damage have been read).
    """

    def __init__(self, data: bytes) -> None:
        if data[:4] != MAGIC:
            raise EnvelopeError(f"not an envelope (starts with {data[:4]!r}, expected {MAGIC!r})")
        self.data = data
        self.end = len(data)
        self.topics: list[str] = []
        try:
            (n_topics,) = _U16.unpack_from(data, 4)
            pos = 6
            for _ in range(n_topics):
                (length,) = _U16.unpack_from(data, pos)
                pos += 2
                if pos + length > self.end:
                    raise EnvelopeError("truncated envelope: its topic names run past the end")
                self.topics.append(data[pos : pos + length].decode())
                pos += length
            (self.remaining,) = _U32.unpack_from(data, pos)
        except (struct.error, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"truncated or corrupt envelope: {exc}") from None
        self.pos = pos + 4
        self.start = -1  # where the current entry starts
        self.kind = KIND_RECORD
        self.topic = ""
        self.value = b""
        self.validated = b""  # the encoded event of a `KIND_VALIDATED` entry
        self._key_at = 0
        self._key_len = -1

    def next(self) -> bool:
        data, start = self.data, self.pos
        if self.remaining == 0:
            if start != self.end:
                raise EnvelopeError(
                    f"corrupt envelope: {self.end - start} byte(s) after the last entry"
                )
            return False
        try:
            kind, index, _partition, _offset, key_len, value_len, n_headers = _ENTRY.unpack_from(
                data, start
            )
            pos = start + _ENTRY.size
            self._key_at = pos
            self._key_len = key_len
            if key_len > 0:
                pos += key_len
            value_end = pos + value_len
            self.value = data[pos:value_end]
            pos = value_end
            self.validated = b""
            if kind == KIND_VALIDATED and n_headers:  # the ingest's header comes first
                name_len, header_len = _HEADER.unpack_from(data, pos)
                at = pos + _HEADER.size + name_len
                self.validated = data[at : at + header_len]
            for _ in range(n_headers):
                name_len, header_len = _HEADER.unpack_from(data, pos)
                pos += _HEADER.size + name_len + header_len
            self.topic = self.topics[index]
        except (struct.error, IndexError) as exc:
            raise EnvelopeError(f"truncated or corrupt envelope: {exc}") from None
        if pos > self.end:
            raise EnvelopeError("truncated envelope: an entry runs past the end")
        self.kind = kind
        self.start = start
        self.pos = pos
        self.remaining -= 1
        return True

    def key(self) -> bytes | None:
        """The current entry's key."""
        if self._key_len < 0:
            return None
        return self.data[self._key_at : self._key_at + self._key_len]

    def entry(self) -> Entry:
        """The current entry, whole (its header names and values decoded here)."""
        data = self.data
        _kind, _index, partition, offset, _key_len, _value_len, n_headers = _ENTRY.unpack_from(
            data, self.start
        )
        pos = self._key_at + max(self._key_len, 0) + len(self.value)
        headers: Headers = []
        try:
            for _ in range(n_headers):
                name_len, header_len = _HEADER.unpack_from(data, pos)
                pos += _HEADER.size
                name = data[pos : pos + name_len].decode()
                pos += name_len
                headers.append((name, data[pos : pos + header_len]))
                pos += header_len
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"corrupt envelope: {exc}") from None
        kind = self.kind
        if kind == KIND_VALIDATED:  # the record as read: without the ingest's header
            kind = KIND_RECORD
            headers = headers[1:]
        return Entry(kind, self.topic, partition, offset, self.key(), self.value, headers)
