"""Which partition a contact key belongs to: the same murmur2 rule as Kafka's default partitioner.

The worker must know it to tell whether a record arrived on the partition that owns its contact
(the producer used the canonical key) or has to be re-keyed first; the same function is what the
Faust producer applies to the table's changelog when `use_partitioner=True`.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

from engagement_monitor.keyspace import record_key, split_state_key, state_key_has_plain_org


@lru_cache(maxsize=262_144)
def partition_for(key: bytes, partitions: int) -> int:
    """Cached: murmur2 in pure Python costs ~7 µs, and the same contacts come back all day."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def state_partition(key: bytes, partitions: int) -> int:
    """The partition of a table key: that of its contact's record key (SPEC §2)."""
    if state_key_has_plain_org(key):
        return partition_for(key, partitions)
    return partition_for(record_key(*split_state_key(key)), partitions)


def contact_partition(org_id: str, contact_id: str, partitions: int) -> int:
    """The partition that owns a contact: where its canonically keyed records land."""
    return partition_for(record_key(org_id, contact_id), partitions)
