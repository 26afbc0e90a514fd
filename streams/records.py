"""One record the worker writes to Kafka (`streams.record_writer`): its own module so that it is
compiled with the hot modules (`engagement_monitor.native`), as a checkpoint makes one per
written contact and per output, and a dataclass's generated `__init__` runs interpreted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Headers = Sequence[tuple[str, bytes]]


@dataclass(slots=True, init=False)
class Record:
    """One record to write; without a partition, keyed records go where Kafka's default
    partitioner would put them (murmur2 of the key), keyless ones round-robin."""

    topic: str  # full name
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers = field(default_factory=list)

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.partition = partition
        self.headers = [] if headers is None else headers
