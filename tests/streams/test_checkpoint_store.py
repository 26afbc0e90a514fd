"""The table stores a checkpoint writes: one batch per partition, values and changelog offset
together, and exactly what Faust's own recovery would have written from the same changelog.

Real Faust stores (RocksDB through rocksdict, and memory) on a temporary directory; no broker.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from engagement_monitor.settings import Settings
from streams.app import create_app
from streams.checkpoint_store import CheckpointStore, MemoryCheckpointStore


def _store(tmp_path: Path, kind: str) -> tuple[CheckpointStore, str]:
    streams = create_app(Settings(data_dir=tmp_path, store=kind, partitions=4))
    table = streams.contacts
    store: CheckpointStore = table.data
    return store, table.changelog_topic.get_topic_name()


def _changelog_events(topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> Any:
    """What Faust's recovery hands a store: events whose message is a changelog record."""
    return [
        SimpleNamespace(
            key=key,
            value=value,
            message=SimpleNamespace(
                tp=TP(topic, partition), offset=offset, partition=partition, key=key, value=value
            ),
        )
        for offset, (key, value) in enumerate(records)
    ]


def test_rocksdb_checkpoint_holds_values_deletions_and_the_changelog_offset(
    tmp_path: Path,
) -> None:
    store, changelog = _store(tmp_path, "rocksdb")
    store.write_checkpoint(3, [(b"o:a", b"A1"), (b"o:b", b"B1")], changelog_offset=7)
    store.write_checkpoint(3, [(b"o:a", b"A2"), (b"o:b", None)], changelog_offset=9)

    assert store.get_in_partition(3, b"o:a") == b"A2"
    assert store.get_in_partition(3, b"o:b") is None
    assert store.persisted_offset(TP(changelog, 3)) == 9  # type: ignore[attr-defined]
    assert store.persisted_offset(TP(changelog, 1)) is None  # type: ignore[attr-defined]
    assert list(store.items_in_partitions(frozenset({3}))) == [(b"o:a", b"A2")]
    assert list(store.items_in_partitions(frozenset({0, 1, 2}))) == []


def test_rocksdb_checkpoint_equals_what_recovery_rebuilds_from_the_changelog(
    tmp_path: Path,
) -> None:
    """A wiped store recovered from the changelog must hold the same bytes and offset."""
    written, changelog = _store(tmp_path / "written", "rocksdb")
    records: list[tuple[bytes, bytes | None]] = [
        (b"o:a", b"A1"),
        (b"o:b", b"B1"),
        (b"o:a", b"A2"),
        (b"o:b", None),
        (b"o:c", b"C1"),
    ]
    # Two checkpoints: offsets 0-1, then 2-4 (the last changelog offset of each).
    written.write_checkpoint(2, records[:2], changelog_offset=1)
    written.write_checkpoint(2, records[2:], changelog_offset=4)

    recovered, _ = _store(tmp_path / "recovered", "rocksdb")
    recovered.apply_changelog_batch(  # type: ignore[attr-defined]
        _changelog_events(changelog, 2, records), lambda k: k, lambda v: v
    )
    assert list(written.items_in_partitions(frozenset({2}))) == list(
        recovered.items_in_partitions(frozenset({2}))
    )
    assert written.persisted_offset(TP(changelog, 2)) == recovered.persisted_offset(  # type: ignore[attr-defined]
        TP(changelog, 2)
    )


@pytest.mark.parametrize("kind", ["rocksdb", "memory"])
def test_a_checkpoint_written_store_reads_back_per_partition(tmp_path: Path, kind: str) -> None:
    store, _ = _store(tmp_path, kind)
    store.write_checkpoint(0, [(b"o:x", b"X")], changelog_offset=0)
    store.write_checkpoint(1, [(b"o:y", b"Y")], changelog_offset=0)
    assert store.get_in_partition(0, b"o:x") == b"X"
    assert dict(store.items_in_partitions(frozenset({0, 1}))) == {b"o:x": b"X", b"o:y": b"Y"}
    assert dict(store.items_in_partitions(frozenset({1}))) == {b"o:y": b"Y"}


def test_the_memory_store_forgets_partitions_owned_elsewhere(tmp_path: Path) -> None:
    store, _ = _store(tmp_path, "memory")
    assert isinstance(store, MemoryCheckpointStore)
    store.write_checkpoint(0, [(b"o:x", b"X")], changelog_offset=0)
    store.write_checkpoint(1, [(b"o:y", b"Y")], changelog_offset=0)
    assert store.forget_partitions(frozenset({1})) == 1
    assert dict(store.items_in_partitions(frozenset({0, 1}))) == {b"o:x": b"X"}


def test_a_discarded_partition_is_empty_and_forgets_its_offset(tmp_path: Path) -> None:
    """What the changelog loader does to a store that is ahead of its changelog."""
    store, changelog = _store(tmp_path, "rocksdb")
    store.write_checkpoint(2, [(b"o:a", b"A"), (b"o:b", b"B")], changelog_offset=40)
    store.write_checkpoint(1, [(b"o:c", b"C")], changelog_offset=5)

    assert store.discard_partition(2) == 3  # type: ignore[attr-defined]  # two keys + offset

    assert list(store.items_in_partitions(frozenset({2}))) == []
    assert store.persisted_offset(TP(changelog, 2)) is None  # type: ignore[attr-defined]
    assert store.get_in_partition(1, b"o:c") == b"C"  # other partitions untouched
    assert store.persisted_offset(TP(changelog, 1)) == 5  # type: ignore[attr-defined]
