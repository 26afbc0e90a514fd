"""Where the worker extends Faust, all through seams Faust supports, and the start-up check.

* **The consumer** is `GuardedConsumer`: Faust's aiokafka consumer with the delivery guard
  (`streams.delivery_guard`) mixed in. Faust takes it from a transport class, and a transport is
  found by the broker URL's scheme through the `faust.transports` entry point (registered in
  `pyproject.toml`): brokers are `emkafka://host:port`.
* **The shutdown order** is `WorkerApp`, an `App` subclass: Faust stops the consumer (tables
  closed, group left) before the agents, so the app waits for a batch that is landing first
  (see `agents.landing`).
* **`check_faust`**, run before the app is built (and `check_app` after), verifies that the
  installed faust-streaming is the pinned version, that the entry point resolves to this
  module, and that every internal name the guard and the app override or read exists, and
  fails naming the one that does not.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import faust
from faust.transport import by_url
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.delivery_guard import CONSUMER_METHODS, CONSUMER_STATE, DeliveryGuard

log = logging.getLogger("engagement_monitor.faust")

FAUST_VERSION = "0.15.3"  # the one pinned in pyproject.toml; internals checked below
TRANSPORT_SCHEME = "emkafka"
LANDING_GRACE_SECONDS = 30.0


class FaustSeamError(RuntimeError):
    """The installed Faust is not the one the worker was built against."""


class GuardedConsumer(DeliveryGuard, faust_aiokafka.Consumer):
    """Faust's aiokafka consumer that commits only what the agent handled."""


class GuardedTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with `GuardedConsumer` (the producer is Faust's own)."""

    Consumer = GuardedConsumer


def broker_urls(bootstrap: str) -> list[str]:
    """`host:port,host:port` as broker URLs of the guarded transport."""
    return [f"{TRANSPORT_SCHEME}://{server.strip()}" for server in bootstrap.split(",")]


class WorkerApp(faust.App):
    """`faust.App` that lets a landing batch finish before the consumer stops.

    A batch caught between its outputs and its states when Faust closes the tables and leaves
    the group would write states after the next owner recovered them. The agent starts no new
    batch once stopping, and the one in flight either drops its states (`still_owner`) or
    finishes writing them while this waits.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.landing_idle = asyncio.Event()
        self.landing_idle.set()

    async def _stop_consumer(self) -> None:
        try:
            await asyncio.wait_for(self.landing_idle.wait(), timeout=LANDING_GRACE_SECONDS)
        except TimeoutError:
            log.warning("stopping with a batch still landing after %.0f s", LANDING_GRACE_SECONDS)
        await super()._stop_consumer()


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
    for name in CONSUMER_METHODS:
        if not callable(getattr(base, name, None)):
            raise FaustSeamError(f"faust's aiokafka Consumer has no method {name}")
    if not callable(getattr(faust.App, "_stop_consumer", None)):
        raise FaustSeamError("faust.App has no _stop_consumer (WorkerApp's shutdown order)")


def check_app(app: Any) -> None:
    """The built app's consumer is guarded and has the state the guard reads (no connection is
    made: Faust's consumer connects when it starts)."""
    consumer = app.consumer
    if not isinstance(consumer, GuardedConsumer):
        raise FaustSeamError(
            f"the app's consumer is {type(consumer).__name__}, not GuardedConsumer: its brokers "
            f"must be {TRANSPORT_SCHEME}:// URLs"
        )
    for name in CONSUMER_STATE:
        if not hasattr(consumer, name):
            raise FaustSeamError(f"faust's Consumer has no attribute {name}")
