"""Where the worker extends Faust, all through seams Faust supports, and the start-up check.

* **The consumer** is `GuardedConsumer`: Faust's aiokafka consumer with the delivery guard
  (`streams.delivery_guard`) mixed in. Faust takes it from a transport class, and a transport is
  found by the broker URL's scheme through the `faust.transports` entry point (registered in
  `pyproject.toml`): brokers are `emkafka://host:port`.
* **The table's store** is a `streams.checkpoint_store` class, found by the store URL's scheme
  through the `faust.stores` entry point: `emrocksdb://` or `emmemory://`.
* **The rebalance and shutdown order** is `WorkerApp`, an `App` subclass: before Faust revokes
  partitions, and before it stops the consumer (tables closed, group left, which it does before
  the agents), the app lets the worker land what it holds in one last checkpoint
  (`agents.checkpoint`), while it still owns every partition of it. It also starts what the
  worker asks to start before anything of Faust's (`early_starts`: the snapshot processes).
* **`check_faust`**, run before the app is built (and `check_app` after), verifies that the
  installed faust-streaming is the pinned version, that the entry point resolves to this
  module, and that every internal name the guard and the app override or read exists, and
  fails naming the one that does not.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faust import stores as faust_stores
from faust.exceptions import ImproperlyConfigured
from faust.transport import by_url
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.checkpoint_store import (
    MEMORY_SCHEME,
    ROCKSDB_SCHEME,
    MemoryCheckpointStore,
    RocksDBCheckpointStore,
    check_store,
)
from streams.delivery_guard import CONSUMER_METHODS, CONSUMER_STATE, DeliveryGuard
from streams.fetching import FETCH_MAX_WAIT_MS

log = logging.getLogger("engagement_monitor.faust")

FAUST_VERSION = "0.15.3"  # the one pinned in pyproject.toml; internals checked below
TRANSPORT_SCHEME = "emkafka"
LANDING_GRACE_SECONDS = 30.0


class FaustSeamError(RuntimeError):
    """The installed Faust is not the one the worker was built against."""


_TAKES_API_VERSION = "api_version" in inspect.signature(AIOKafkaConsumer.__init__).parameters


class ResponsiveConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a short fetch wait (`streams.fetching`).

    Faust builds its aiokafka consumer in `_create_worker_consumer` with the wait hard-coded,
    so this override is that method of faust-streaming 0.15.3 (pinned, checked at start-up)
    with the one value changed; everything else comes from the app's settings, as there.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        conf = self.app.conf
        isolation_level = "read_committed" if self.consumer.in_transaction else "read_uncommitted"
        has_changelog_tables = bool(self.app.tables.changelog_topics)
        self._assignor = (
            self.app.assignor
            if conf.table_standby_replicas > 0 or has_changelog_tables
            else RoundRobinPartitionAssignor
        )
        auth_settings = faust_aiokafka.credentials_to_aiokafka_auth(
            conf.broker_credentials, conf.ssl_context
        )
        max_poll_interval = conf.broker_max_poll_interval or 0
        request_timeout = conf.broker_request_timeout
        session_timeout = conf.broker_session_timeout
        if session_timeout > request_timeout:
            raise ImproperlyConfigured(
                f"Setting broker_session_timeout={session_timeout} cannot be greater than "
                f"broker_request_timeout={request_timeout}"
            )
        versioned: dict[str, Any] = (
            {"api_version": conf.consumer_api_version} if _TAKES_API_VERSION else {}
        )
        return AIOKafkaConsumer(
            **versioned,
            client_id=conf.broker_client_id,
            group_id=conf.id,
            group_instance_id=conf.consumer_group_instance_id,
            bootstrap_servers=faust_aiokafka.server_list(transport.url, transport.default_port),
            partition_assignment_strategy=[self._assignor],
            enable_auto_commit=False,
            auto_offset_reset=conf.consumer_auto_offset_reset,
            max_poll_records=conf.broker_max_poll_records,
            max_poll_interval_ms=int(max_poll_interval * 1000.0),
            max_partition_fetch_bytes=conf.consumer_max_fetch_size,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            request_timeout_ms=int(request_timeout * 1000.0),
            check_crcs=conf.broker_check_crcs,
            session_timeout_ms=int(session_timeout * 1000.0),
            rebalance_timeout_ms=int(conf.broker_rebalance_timeout * 1000.0),
            heartbeat_interval_ms=int(conf.broker_heartbeat_interval * 1000.0),
            isolation_level=isolation_level,
            metadata_max_age_ms=conf.consumer_metadata_max_age_ms,
            connections_max_idle_ms=conf.consumer_connections_max_idle_ms,
            **auth_settings,
        )


class GuardedConsumer(DeliveryGuard, faust_aiokafka.Consumer):
    """Faust's aiokafka consumer that commits only what the agent handled, read through a
    `ResponsiveConsumerThread`."""

    def _new_consumer_thread(self) -> ResponsiveConsumerThread:
        return ResponsiveConsumerThread(self, loop=self.loop, beacon=self.beacon)


class GuardedTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with `GuardedConsumer` (the producer is Faust's own)."""

    Consumer = GuardedConsumer


def broker_urls(bootstrap: str) -> list[str]:
    """`host:port,host:port` as broker URLs of the guarded transport."""
    return [f"{TRANSPORT_SCHEME}://{server.strip()}" for server in bootstrap.split(",")]


class Landing(Protocol):
    """What the app asks of the worker around a rebalance and at shutdown."""

    async def before_revoke(self, revoked: set[Any]) -> None:
        """Land what is pending while every partition is still owned; forget the revoked."""
        ...

    async def before_stop(self) -> None:
        """Land what is pending (a last checkpoint) before the consumer stops."""
        ...


class WorkerApp(faust.App):
    """`faust.App` that lets the worker land its pending checkpoint before Faust revokes
    partitions or stops the consumer.

    Faust closes the tables and leaves the group before it stops the agents, and a revocation
    hands partitions to another worker that recovers them from the changelog: a checkpoint
    written after either would land behind the next owner's writes. So the worker lands what it
    holds first (`Landing`), and a checkpoint that finds its partitions gone writes no state.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.landing: Landing | None = None  # set by the worker (agents.engagement)
        # Started when the app first starts, before its consumer, tables and recovery: Faust
        # starts `App.service`s only once the tables are recovered, when the drain begins.
        self.early_starts: list[Callable[[], Awaitable[None]]] = []

    async def on_first_start(self) -> None:
        await super().on_first_start()
        for start in self.early_starts:
            await start()

    async def _on_partitions_revoked(self, revoked: set[Any]) -> None:
        if self.landing is not None and not self.should_stop:
            try:
                await asyncio.wait_for(
                    self.landing.before_revoke(revoked), timeout=LANDING_GRACE_SECONDS
                )
            except TimeoutError:
                log.warning(
                    "rebalance: pending checkpoint not landed after %.0f s; its records will be "
                    "read again",
                    LANDING_GRACE_SECONDS,
                )
        await super()._on_partitions_revoked(revoked)

    async def _stop_consumer(self) -> None:
        if self.landing is not None:
            try:
                await asyncio.wait_for(self.landing.before_stop(), timeout=LANDING_GRACE_SECONDS)
            except TimeoutError:
                log.warning(
                    "stopping with a checkpoint not landed after %.0f s; its records will be "
                    "read again",
                    LANDING_GRACE_SECONDS,
                )
        await super()._stop_consumer()


def store_url(store: str) -> str:
    """The table store URL for `EM_STORE` (`rocksdb` or `memory`): a checkpoint store."""
    return f"{ROCKSDB_SCHEME if store == 'rocksdb' else MEMORY_SCHEME}://"


def check_faust() -> None:
    """Fail start-up, naming what is missing, unless Faust is the one these seams fit."""
    try:
        installed = version("faust-streaming")
    except PackageNotFoundError as exc:
        raise FaustSeamError("faust-streaming is not installed") from exc
    if installed != FAUST_VERSION:
        raise FaustSeamError(
            f"faust-streaming {installed} is installed; the worker is built against "
            f"{FAUST_VERSION} (pinned in pyproject.toml): its consumer internals may differ"
        )
    try:
        transport = by_url(f"{TRANSPORT_SCHEME}://localhost")
    except Exception as exc:
        raise FaustSeamError(
            f"no Faust transport '{TRANSPORT_SCHEME}': the 'faust.transports' entry point of "
            "this package is not installed (pip install -e .)"
        ) from exc
    if transport is not GuardedTransport:
        raise FaustSeamError(
            f"Faust transport '{TRANSPORT_SCHEME}' is {transport!r}, not {GuardedTransport!r}"
        )
    base = faust_aiokafka.Consumer
    for name in (*CONSUMER_METHODS, "_new_consumer_thread"):
        if not callable(getattr(base, name, None)):
            raise FaustSeamError(f"faust's aiokafka Consumer has no method {name}")
    if not callable(
        getattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", None)
    ):
        raise FaustSeamError("faust's AIOKafkaConsumerThread has no _create_worker_consumer")
    for method in ("_stop_consumer", "_on_partitions_revoked", "on_first_start"):
        if not callable(getattr(faust.App, method, None)):
            raise FaustSeamError(f"faust.App has no {method} (WorkerApp's landing order)")
    for scheme, expected in (
        (ROCKSDB_SCHEME, RocksDBCheckpointStore),
        (MEMORY_SCHEME, MemoryCheckpointStore),
    ):
        try:
            found = faust_stores.by_url(f"{scheme}://")
        except Exception as exc:
            raise FaustSeamError(
                f"no Faust store '{scheme}': the 'faust.stores' entry point of this package is "
                "not installed (pip install -e .)"
            ) from exc
        if found is not expected:
            raise FaustSeamError(f"Faust store '{scheme}' is {found!r}, not {expected!r}")


def check_app(app: Any) -> None:
    """The built app's consumer is guarded and has the state the guard reads, and its tables'
    stores take checkpoints (no connection is made, no database opened: Faust does both when
    it starts)."""
    consumer = app.consumer
    if not isinstance(consumer, GuardedConsumer):
        raise FaustSeamError(
            f"the app's consumer is {type(consumer).__name__}, not GuardedConsumer: its brokers "
            f"must be {TRANSPORT_SCHEME}:// URLs"
        )
    for name in CONSUMER_STATE:
        if not hasattr(consumer, name):
            raise FaustSeamError(f"faust's Consumer has no attribute {name}")
    for table in app.tables.values():
        missing = check_store(table.data, table.options)
        if missing:
            raise FaustSeamError(f"table {table.name}: its store has no {', '.join(missing)}")
