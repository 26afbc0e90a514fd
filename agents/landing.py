"""The order in which a processed batch reaches Kafka and Redis before it may be acked.

1. **Outputs first** (tier changes, dispatch statuses, dead letters, re-keyed records), and wait
   until the broker has acknowledged every one.
2. **Then, if this worker still owns the batch's partitions, the contact states**: table
   writes (one changelog record per touched contact) and the Redis snapshots, and wait until
   the broker has acknowledged the changelog records.
3. Only then does the caller return, and Faust ack the batch (and later commit its offsets).

Why this order: a worker that dies between 1 and 2 has published a tier change but not the state
that records it as published; the batch is read again, applied to the old state, and the change
is published again (at least once; never lost). A worker that dies after 2 is read again and
applied to a state that already holds the batch, which changes nothing (every transition is
idempotent). And whatever happens, no offset is committed whose effect is not in the changelog,
which is what the next owner of the partition recovers from.

Faust's own guarantee is weaker (its pre-commit `producer.flush()` gives up when the buffer makes
no progress for 0.1 s), so the worker does not rely on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from agents.processor import Outbound, RedisOp


class Outputs(Protocol):
    def send(self, items: Sequence[Outbound]) -> Sequence[Awaitable[Any]]:
        """Hand the records to the producer; one future per record, done once acknowledged."""
        ...


class HeldStates(Protocol):
    def flush(self) -> Sequence[Awaitable[Any]]:
        """Write the held states; the futures of their changelog records."""
        ...

    def drop(self) -> None:
        """Forget the held states without writing them."""
        ...


class Snapshots(Protocol):
    async def apply(self, ops: Sequence[RedisOp]) -> None: ...


async def confirmed(sent: Sequence[Awaitable[Any]]) -> float:
    """Wait until every send is acknowledged (a failed send raises); the seconds waited."""
    if not sent:
        return 0.0
    started = time.perf_counter()
    await asyncio.gather(*sent)
    return time.perf_counter() - started


async def land(
    publish: Sequence[Outbound],
    redis: Sequence[RedisOp],
    outputs: Outputs,
    states: HeldStates,
    snapshots: Snapshots,
    still_owner: Callable[[], bool],
    crash: Callable[[str], None] = lambda _step: None,
) -> tuple[bool, float]:
    """Steps 1 and 2 above: (states written?, seconds spent waiting for acknowledgements).

    `still_owner` is asked once the outputs are in: a worker that is stopping, or has lost one
    of the batch's partitions meanwhile, must not write states any more (the next owner may
    already have recovered them from the changelog; a late write would land after its own).
    The batch is then abandoned: its states are dropped, and the caller must not count its
    records as handled, so they are read again by whoever owns them.
    """
    waited = await confirmed(outputs.send(publish))
    crash("landing-after-outputs")
    if not still_owner():
        states.drop()
        return False, waited
    changelog = states.flush()
    started = time.perf_counter()
    await asyncio.gather(snapshots.apply(redis), confirmed(changelog))
    crash("landing-after-states")
    return True, waited + (time.perf_counter() - started)
