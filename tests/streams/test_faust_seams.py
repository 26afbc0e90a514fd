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


async def test_the_consumer_stops_only_once_the_landing_batch_is_done(tmp_path: Any) -> None:
    app = WorkerApp("em-test-order", broker="emkafka://localhost:9092", web_enabled=False)
    order: list[str] = []
    app.landing_idle.clear()  # a batch is landing

    async def finish_landing() -> None:
        await asyncio.sleep(0.05)
        order.append("landed")
        app.landing_idle.set()

    task = asyncio.create_task(finish_landing())
    await app._stop_consumer()  # no consumer was built: Faust's part has nothing to do
    order.append("consumer stopped")
    await task
    assert order == ["landed", "consumer stopped"]
