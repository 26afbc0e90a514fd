"""Fast recovery of a table partition from its changelog (issue 14): read it with a plain
aiokafka loop and write it to the partition's RocksDB database in batches, before Faust's own
recovery starts, so that Faust finds its persisted offset at (or near) the end and replays only
what was written since.

Why: Faust replays a changelog through its per-record consumer path (the conductor, an `Event`
per record, the recovery buffer): ~10,000 records/s here, 100 s for a million contacts. The
same records through `getmany` and one RocksDB `WriteBatch` per fetch go several times faster.
What is written is exactly what Faust's `apply_changelog_batch` writes (the record's key and
value bytes, a delete for a tombstone) plus Faust's own offset key in the same batch, so Faust's
recovery, standbys and later checkpoints carry on from it unchanged. A crash mid-load leaves a
consistent prefix (each batch holds its records and their offset) that the next start resumes.

A store whose persisted offset lies beyond the changelog's end (its topic deleted and created
again, or records lost) is discarded and rebuilt from the changelog, as Kafka Streams does with a
store its changelog cannot account for, instead of stopping the worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

FETCH_BYTES = 32 * 1024 * 1024
PARTITION_FETCH_BYTES = 8 * 1024 * 1024
POLL_RECORDS = 20_000


class ChangelogTarget(Protocol):
    """What the loader needs of the store (`streams.checkpoint_store.RocksDBCheckpointStore`)."""

    def persisted_offset(self, tp: Any) -> int | None: ...

    def load_changelog(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]], last_offset: int
    ) -> None: ...

    def discard_partition(self, partition: int) -> int: ...


async def preload_changelog(
    store: ChangelogTarget, bootstrap: str, partitions: Collection[TopicPartition]
) -> int:
    """Load each changelog partition from the store's persisted offset to the partition's end
    offset at the time of the call. Returns the records loaded."""
    if not partitions:
        return 0
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=FETCH_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        max_poll_records=POLL_RECORDS,
    )
    await consumer.start()
    loaded = 0
    try:
        tps = list(partitions)
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        todo: dict[TopicPartition, int] = {}
        for tp in tps:
            persisted = store.persisted_offset(tp)
            if persisted is not None and persisted >= ends[tp]:
                # The store holds an offset the changelog never reached: the topic was deleted
                # and created again, or lost records. The changelog is the truth (Faust would
                # stop with a ConsistencyError; Kafka Streams wipes such a store): rebuild.
                deleted = store.discard_partition(tp.partition)
                log.warning(
                    "the local store of %s was ahead of its changelog (offset %d, changelog "
                    "ends at %d): discarded its %d keys, rebuilding it from the changelog",
                    tp,
                    persisted,
                    ends[tp],
                    deleted,
                )
                persisted = None
            start = 0 if persisted is None else persisted + 1
            if start < ends[tp]:
                consumer.seek(tp, start)
                todo[tp] = ends[tp]
            else:
                consumer.pause(tp)  # already up to date
        while todo:
            fetched = await consumer.getmany(timeout_ms=1000)
            for tp, records in fetched.items():
                if records:
                    store.load_changelog(
                        tp.partition, [(r.key, r.value) for r in records], records[-1].offset
                    )
                    loaded += len(records)
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    if loaded:
        log.info(
            "loaded %d changelog records of %d partition(s) into the store in %.1f s "
            "(Faust's recovery replays only what follows)",
            loaded,
            len(partitions),
            time.monotonic() - started,
        )
    return loaded
