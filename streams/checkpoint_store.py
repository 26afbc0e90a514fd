"""Faust table stores that land a whole checkpoint at once.

Faust writes a table key by key: ``table[key] = value`` goes through ``on_key_set`` ->
``send_changelog`` -> one ``FutureMessage`` -> the producer buffer, and once the broker answers,
one RocksDB put of the changelog offset per record (150-250 µs a key, see
``../shared/design/faust-cost-map.md``). A checkpoint (``agents.checkpoint``) instead produces
one changelog record per dirty contact in bulk, and then hands each partition's values to
``write_checkpoint`` with the offset of the last changelog record: one RocksDB ``WriteBatch``
holding the values *and* Faust's changelog offset (``offset_key``), so the local store never runs
ahead of the changelog, and Faust's own recovery (which replays the changelog from that offset)
and standbys work unchanged on what is written.

The classes are Faust stores, given to Faust through its ``faust.stores`` entry point
(``pyproject.toml``): the table's store URL is ``emrocksdb://`` or ``emmemory://``. They add
a few methods and change nothing Faust calls. ``check_store`` (run at start-up by
``streams.faust_seams.check_app``) verifies that the internals they use are there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb

from streams.changelog_preload import preload_changelog

ROCKSDB_SCHEME = "emrocksdb"
MEMORY_SCHEME = "emmemory"

# What the subclasses use of Faust's stores (checked at start-up on the table's store).
ROCKSDB_INTERNALS = (
    "_db_for_partition",
    "_key_index",
    "offset_key",
    "persisted_offset",
    "on_rebalance",
    "table",
)
MEMORY_INTERNALS = ("data", "_key_partition")

# RocksDB properties of the memory a database holds, by the kind the metric names.
ROCKSDB_MEMORY = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "block_cache": "rocksdb.block-cache-usage",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}

Write = tuple[bytes, bytes | None]  # key, value (None: delete)


class CheckpointStore:
    """What a checkpoint needs of the table's store (both classes below provide it)."""

    def get_in_partition(self, partition: int, key: bytes) -> bytes | None:
        raise NotImplementedError

    def write_checkpoint(
        self, partition: int, writes: Sequence[Write], changelog_offset: int
    ) -> None:
        raise NotImplementedError

    def items_in_partitions(self, partitions: frozenset[int]) -> Iterator[tuple[bytes, bytes]]:
        raise NotImplementedError

    def memory_bytes(self) -> dict[str, int]:
        """Native memory the store holds outside Python's heap, by kind (metrics)."""
        return {}


class RocksDBCheckpointStore(CheckpointStore, faust_rocksdb.Store):
    """Faust's RocksDB store (one database per partition) with a batched checkpoint write."""

    _db_for_partition: Any
    _key_index: Any
    _dbs: Any
    use_rocksdict: bool

    def get_in_partition(self, partition: int, key: bytes) -> bytes | None:
        """One lookup in the partition's own database (Faust's `_get` may scan all of them)."""
        value: bytes | None = self._db_for_partition(partition).get(key)
        return value

    def write_checkpoint(
        self, partition: int, writes: Sequence[Write], changelog_offset: int
    ) -> None:
        """Values and the changelog offset in one atomic write (what `apply_changelog_batch`
        does for recovery, with the offset inside the same batch)."""
        self._write_with_offset(partition, writes, changelog_offset)
        index = self._key_index
        for key, value in writes:
            if value is None:
                index.pop(key, None)
            else:
                index[key] = partition

    def load_changelog(self, partition: int, records: Sequence[Write], last_offset: int) -> None:
        """Changelog records as Faust's `apply_changelog_batch` writes them, with Faust's
        offset key in the same batch (`streams.changelog_preload`)."""
        self._write_with_offset(partition, records, last_offset)

    def discard_partition(self, partition: int) -> int:
        """Delete every key of the partition's database, Faust's offset key included, so it
        is rebuilt from the changelog (`streams.changelog_preload`: a store ahead of its
        changelog). Returns the keys deleted."""
        db = self._db_for_partition(partition)
        batch = _write_batch(self.use_rocksdict)
        deleted = 0
        for key in db.keys():  # noqa: SIM118 - an Rdict, not a dict
            batch.delete(key)
            deleted += 1
        db.write(batch)
        index = self._key_index
        for key in [k for k, p in list(index.items()) if p == partition]:
            index.pop(key, None)
        return deleted

    def _write_with_offset(self, partition: int, writes: Sequence[Write], offset: int) -> None:
        """Puts and deletes plus Faust's changelog offset key, in one RocksDB `WriteBatch`."""
        batch = _write_batch(self.use_rocksdict)
        for key, value in writes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self.offset_key, str(offset).encode())
        self._db_for_partition(partition).write(batch)

    async def on_rebalance(
        self,
        assigned: set[Any],
        revoked: set[Any],
        newly_assigned: set[Any],
        generation_id: int = 0,
    ) -> None:
        """Faust's own rebalance (databases of revoked partitions closed, new ones opened),
        then the newly assigned changelog partitions loaded in bulk before Faust's recovery
        reads their persisted offsets (`streams.changelog_preload`)."""
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        topics = self.table.changelog_topic.topics
        changelogs = [
            TopicPartition(tp.topic, tp.partition) for tp in newly_assigned if tp.topic in topics
        ]
        if changelogs:
            conf = self.table.app.conf
            bootstrap = ",".join(f"{url.host}:{url.port}" for url in conf.broker)
            await preload_changelog(self, bootstrap, changelogs)

    def memory_bytes(self) -> dict[str, int]:
        """Memtables, block cache and table readers summed over the partitions' databases
        (bounded per partition by `EM_ROCKSDB_*`)."""
        totals = dict.fromkeys(ROCKSDB_MEMORY, 0)
        if not self.use_rocksdict:
            return totals  # pragma: no cover - python-rocksdb
        for db in list(self._dbs.values()):
            for kind, prop in ROCKSDB_MEMORY.items():
                totals[kind] += db.property_int_value(prop) or 0
        return totals

    def items_in_partitions(self, partitions: frozenset[int]) -> Iterator[tuple[bytes, bytes]]:
        for partition in sorted(partitions):
            db = self._dbs.get(partition)
            if db is None:
                continue
            yield from self._visible_items(db)


class MemoryCheckpointStore(CheckpointStore, faust_memory.Store):  # type: ignore[type-arg]
    """Faust's in-memory store (single worker, tests) with the same checkpoint write."""

    data: Any
    _key_partition: Any

    def get_in_partition(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self.data.get(key)
        return value

    def write_checkpoint(
        self, partition: int, writes: Sequence[Write], changelog_offset: int
    ) -> None:
        # The memory store keeps no offsets: a restarted worker replays the whole changelog.
        data, where = self.data, self._key_partition
        for key, value in writes:
            if value is None:
                data.pop(key, None)
                where.pop(key, None)
            else:
                data[key] = value
                where[key] = partition

    def items_in_partitions(self, partitions: frozenset[int]) -> Iterator[tuple[bytes, bytes]]:
        where = self._key_partition
        return iter([(k, v) for k, v in list(self.data.items()) if where.get(k) in partitions])

    def forget_partitions(self, partitions: frozenset[int]) -> int:
        """Drop the contacts of these partitions (revoked: another worker now writes them)."""
        where = self._key_partition
        stale = [key for key, partition in where.items() if partition in partitions]
        for key in stale:
            self.data.pop(key, None)
            where.pop(key, None)
        return len(stale)


def _write_batch(use_rocksdict: bool) -> Any:
    if use_rocksdict:
        import rocksdict

        return rocksdict.WriteBatch(raw_mode=True)
    import rocksdb  # type: ignore[import-not-found]  # pragma: no cover - python-rocksdb

    return rocksdb.WriteBatch()  # pragma: no cover


def check_store(store: Any, options: Mapping[str, Any] | None = None) -> list[str]:
    """The Faust store internals this module relies on that the table's store lacks, and (for
    RocksDB) the table `options` its `RocksDBOptions` did not take: a Faust that stopped
    passing them on would silently open databases with its defaults (gigabytes of cache)."""
    if isinstance(store, RocksDBCheckpointStore):
        names: tuple[str, ...] = (
            *ROCKSDB_INTERNALS,
            "_dbs",
            "_visible_items",
            "use_rocksdict",
            "rocksdb_options",
        )
    elif isinstance(store, MemoryCheckpointStore):
        names = MEMORY_INTERNALS
    else:
        return [f"a checkpoint store (the table's store is {type(store).__name__})"]
    missing = [f"{type(store).__name__}.{name}" for name in names if not hasattr(store, name)]
    if isinstance(store, RocksDBCheckpointStore) and not missing:
        taken = store.rocksdb_options
        missing += [
            f"RocksDBOptions.{key} = {value}"
            for key, value in (options or {}).items()
            if getattr(taken, key, None) != value
        ]
    return missing
