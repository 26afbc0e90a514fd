"""The contact table: a Faust table whose changelog partition is the contact's own.

The worker never writes it key by key: a checkpoint produces its changelog records in bulk and
writes its store in one batch per partition (`agents.checkpoint`, `streams.checkpoint_store`).
Faust still owns everything else about it: the changelog topic, recovery from it on assignment,
standby replicas and the store's lifecycle.
"""

from __future__ import annotations

import faust

from streams.partitioning import state_partition


class ContactTable(faust.Table[bytes, bytes]):
    """The contact table: packed states under `state_key`s, changelogged on their own partition."""

    def partition_for_key(self, key: bytes) -> int:
        """The contact's own partition, whatever event is current (a batch mixes partitions)."""
        partitions: int = self.partitions or self.app.conf.topic_partitions
        return state_partition(key, partitions)
