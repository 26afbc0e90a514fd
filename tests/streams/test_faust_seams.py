"""The worker's Faust extensions come in through Faust's own seams, and start-up checks them."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.transport import by_url

from engagement_monitor.settings import Settings
from streams import faust_seams
from streams.app import create_app
from streams.checkpoint_store import MemoryCheckpointStore, RocksDBCheckpointStore
from streams.delivery_guard import CONSUMER_STATE
from streams.faust_seams import (
    FaustSeamError,
    GuardedConsumer,
    GuardedTransport,
    WorkerApp,
    check_app,
    check_faust,
)


def test_the_entry_point_gives_faust_the_guarded_transport() -> None:
    assert by_url("emkafka://localhost:9092") is GuardedTransport
    check_faust()


def test_the_worker_app_is_built_on_the_seams(tmp_path: Any) -> None:
    streams = create_app(Settings(data_dir=tmp_path, store="memory"))
    assert isinstance(streams.app, WorkerApp)
    consumer = streams.app.consumer
    assert isinstance(consumer, GuardedConsumer)
    # The guard's overrides are the consumer's own methods, not patched onto the instance.
    for name in ("ack", "_new_offset", "_reset_state", "getmany", "perform_seek"):
        assert name not in vars(consumer), name
    assert type(consumer._read_offset).__name__ == "_NeverRead"
    for name in CONSUMER_STATE:
        assert hasattr(consumer, name)


def test_a_plain_kafka_broker_url_is_refused_naming_the_scheme() -> None:
    app = faust.App("em-test-plain", broker="kafka://localhost:9092", web_enabled=False)
    with pytest.raises(FaustSeamError, match="emkafka://"):
        check_app(app)


def test_another_faust_version_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust_seams, "version", lambda _name: "0.16.0")
    with pytest.raises(FaustSeamError, match=r"faust-streaming 0\.16\.0 is installed.*0\.15\.3"):
        check_faust()


def test_a_missing_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust_seams, "CONSUMER_METHODS", ("_no_such_method",))
    with pytest.raises(FaustSeamError, match="_no_such_method"):
        check_faust()


class Landing:
    """Records when the app asks the worker to land what it holds."""

    def __init__(self, order: list[str]) -> None:
        self.order = order

    async def before_revoke(self, revoked: set[Any]) -> None:
        await asyncio.sleep(0.05)  # a checkpoint landing takes a while
        self.order.append(f"landed before revoking {sorted(revoked)}")

    async def before_stop(self) -> None:
        await asyncio.sleep(0.05)
        self.order.append("landed before stopping")


async def test_the_consumer_stops_only_once_the_pending_checkpoint_landed() -> None:
    app = WorkerApp("em-test-order", broker="emkafka://localhost:9092", web_enabled=False)
    order: list[str] = []
    app.landing = Landing(order)
    await app._stop_consumer()  # no consumer was built: Faust's part has nothing to do
    order.append("consumer stopped")
    assert order == ["landed before stopping", "consumer stopped"]


async def test_partitions_are_revoked_only_once_the_pending_checkpoint_landed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = WorkerApp("em-test-revoke", broker="emkafka://localhost:9092", web_enabled=False)
    order: list[str] = []
    app.landing = Landing(order)

    async def faust_revokes(self: Any, revoked: set[Any]) -> None:
        order.append("faust revoked")

    # Stand in for Faust's own revocation (it needs a running consumer) on the base class:
    # the test checks the order in which WorkerApp calls the two.
    monkeypatch.setattr(faust.App, "_on_partitions_revoked", faust_revokes)
    await app._on_partitions_revoked({"p1"})
    assert order == ["landed before revoking ['p1']", "faust revoked"]


async def test_what_the_worker_asks_starts_when_the_app_first_starts(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = WorkerApp(
        "em-test-early", broker="emkafka://localhost:9092", web_enabled=False, datadir=tmp_path
    )
    order: list[str] = []

    async def faust_first_start(self: Any) -> None:
        order.append("faust's first start")

    async def snapshot_processes() -> None:
        order.append("snapshot processes started")

    # Faust's own hook stands in for itself on the base class: the test checks that WorkerApp
    # calls it, then what the worker registered, before anything else of the app starts.
    monkeypatch.setattr(faust.App, "on_first_start", faust_first_start)
    app.early_starts.append(snapshot_processes)
    await app.on_first_start()
    assert order == ["faust's first start", "snapshot processes started"]


def test_a_faust_without_the_first_start_hook_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faust.App, "on_first_start", None)
    with pytest.raises(FaustSeamError, match="on_first_start"):
        check_faust()


def test_the_tables_take_checkpoints_on_either_store(tmp_path: Any) -> None:
    for store, kind in (("rocksdb", RocksDBCheckpointStore), ("memory", MemoryCheckpointStore)):
        streams = create_app(Settings(data_dir=tmp_path / store, store=store))
        assert isinstance(streams.contacts.data, kind)


def test_a_table_on_a_plain_faust_store_is_refused_naming_it(tmp_path: Any) -> None:
    app = WorkerApp(
        "em-test-plain-store",
        broker="emkafka://localhost:9092",
        store="rocksdb://",
        datadir=str(tmp_path),
        web_enabled=False,
    )
    app.Table("t", default=None, partitions=1)  # added to the app's tables
    with pytest.raises(FaustSeamError, match="checkpoint store"):
        check_app(app)


def test_the_rocksdb_store_takes_the_bounded_memory_settings(tmp_path: Any) -> None:
    settings = Settings(
        data_dir=tmp_path, store="rocksdb", rocksdb_write_buffer_mb=4, rocksdb_block_cache_mb=8
    )
    store = create_app(settings).contacts.data
    assert isinstance(store, RocksDBCheckpointStore)
    options = store.rocksdb_options
    assert options.write_buffer_size == 4 * 1024 * 1024
    assert options.max_write_buffer_number == 2
    assert options.block_cache_size == 8 * 1024 * 1024
    # Faust's defaults would be 64 MiB memtables (three) and a 2 GiB block cache per partition.
    db = options.open(tmp_path / "probe.db")
    db[b"k"] = b"v"
    assert db[b"k"] == b"v"
    db.close()


def test_a_store_that_dropped_the_table_options_is_refused_naming_them(tmp_path: Any) -> None:
    streams = create_app(Settings(data_dir=tmp_path, store="rocksdb"))
    store = streams.contacts.data
    store.rocksdb_options.block_cache_size = 2 * 1024**3  # what Faust's defaults would give
    with pytest.raises(FaustSeamError, match=r"RocksDBOptions\.block_cache_size = 16777216"):
        check_app(streams.app)


def test_the_rocksdb_store_reports_the_native_memory_it_holds(tmp_path: Any) -> None:
    store = create_app(Settings(data_dir=tmp_path, store="rocksdb")).contacts.data
    assert isinstance(store, RocksDBCheckpointStore)
    assert store.memory_bytes() == {"memtables": 0, "block_cache": 0, "table_readers": 0}
    store.write_checkpoint(3, [(b"k%d" % i, b"v" * 1000) for i in range(100)], 41)
    assert store.get_in_partition(3, b"k7") == b"v" * 1000
    held = store.memory_bytes()
    assert held["memtables"] > 100 * 1000  # the values written sit in the memtable
    assert set(held) == {"memtables", "block_cache", "table_readers"}
    for db in store._dbs.values():
        db.close()
