"""The contact table: a Faust table that hands back the future of every changelog record it sends.

Faust acks a stream event once the agent is done with it and later commits the acked offsets,
after `producer.flush()`. That flush is not a barrier: it stops waiting when the producer's
buffer makes no progress for 0.1 s, and a stopping producer drops what is still in its buffer.
A source offset could therefore be committed while the changelog record carrying its effect had
not reached Kafka, and a worker that took the partition over (recovering from the changelog)
would never see that effect: one record lost per rebalance, now and then.

The worker closes that hole itself: every batch waits for its own changelog records (and its
output records) to be acknowledged by the broker before the batch is acked. This class only
collects the futures; `EngagementWorker.handle` awaits them.
"""

from __future__ import annotations

from typing import Any, TypeVar

import faust
from faust.types import FutureMessage

from streams.partitioning import state_partition

KT = TypeVar("KT")
VT = TypeVar("VT")


class ConfirmedTable(faust.Table[KT, VT]):
    """`faust.Table` that keeps each changelog send's future until `take_unconfirmed`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unconfirmed: list[FutureMessage] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        fut: FutureMessage = super().send_changelog(*args, **kwargs)
        self._unconfirmed.append(fut)
        return fut

    def take_unconfirmed(self) -> list[FutureMessage]:
        """The changelog sends since the last call; the caller awaits them."""
        taken, self._unconfirmed = self._unconfirmed, []
        return taken


class ContactTable(ConfirmedTable[bytes, bytes]):
    """The contact table: packed states under `state_key`s, changelogged on their own partition."""

    def partition_for_key(self, key: bytes) -> int:
        """The contact's own partition, whatever event is current (a batch mixes partitions)."""
        partitions: int = self.partitions or self.app.conf.topic_partitions
        return state_partition(key, partitions)
