"""Envelopes the agent has committed are deleted, as Kafka Streams purges its repartition topics.

An envelope is read by exactly one consumer group, the agent's, and is worth nothing once that
group committed past it: a crash replays from the committed offset, never before it. So, every
`EM_ENVELOPE_PURGE_SECONDS`, each worker deletes the records below the committed offset of the
envelope partitions it owns (Kafka's DeleteRecords, as Kafka Streams does right after a commit:
KAFKA-6150, KIP-284). The topic also has a retention (`ENVELOPE_RETENTION_MS`), so envelopes
never pile up even with the purge turned off (`EM_ENVELOPE_PURGE_SECONDS=0`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import KafkaError

log = logging.getLogger("engagement_monitor.purge")

ENVELOPE_RETENTION_MS = 7 * 24 * 3600 * 1000  # a week: far longer than any replay needs


class EnvelopePurger:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin: AIOKafkaAdminClient | None = None
        self.purged: dict[TopicPartition, int] = {}  # the offset everything before is gone
        self.deleted = 0  # records deleted so far (metrics)

    async def purge(self, committed: Mapping[TopicPartition, int]) -> int:
        """Delete what lies before each committed offset that moved; the partitions purged."""
        todo = {
            tp: RecordsToDelete(before_offset=offset)
            for tp, offset in committed.items()
            if offset > self.purged.get(tp, 0)
        }
        if not todo:
            return 0
        try:
            if self.admin is None:
                self.admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap, request_timeout_ms=30000
                )
                await self.admin.start()
            await self.admin.delete_records(todo, timeout_ms=30000)
        except KafkaError as exc:
            # Nothing depends on it: the next round tries again, retention is the safety net.
            log.warning("purging consumed envelopes failed (%s); will try again", exc)
            await self.close()
            return 0
        for tp, records in todo.items():
            self.deleted += records.before_offset - self.purged.get(tp, 0)
            self.purged[tp] = records.before_offset
        return len(todo)

    async def close(self) -> None:
        if self.admin is not None:
            admin, self.admin = self.admin, None
            await admin.close()
