"""Create every topic before the worker consumes, so nothing is auto-created with a wrong count.

SPEC §6: producers that start after `/healthz` is 200 must find the topics already there with
`EM_PARTITIONS` partitions. An existing topic with another partition count is a configuration error
that would silently break co-partitioning, so it stops start-up instead.
"""

from __future__ import annotations

import logging
from contextlib import suppress

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


class TopicLayoutError(RuntimeError):
    """An existing topic does not have the partition count the worker needs."""


async def ensure_topics(
    bootstrap: str,
    topics: tuple[str, ...],
    partitions: int,
    replication_factor: int,
    *,
    must_match: tuple[str, ...] = (),
    configs: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the missing topics; return the names created.

    `must_match` lists topics whose partition count has to equal `partitions` (the co-partitioned
    inputs); for the others (outputs) any count is accepted. `configs`: topic configs to create
    a topic with, by name (an existing topic keeps its own).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            new = [
                NewTopic(
                    t,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=(configs or {}).get(t, {}),
                )
                for t in missing
            ]
            with suppress(TopicAlreadyExistsError):  # another worker won the race: fine
                await admin.create_topics(new)
            log.info("created topics %s with %d partitions", ", ".join(missing), partitions)
        check = [t for t in must_match if t in existing]
        if check:
            for description in await admin.describe_topics(check):
                count = len(description["partitions"])
                if count != partitions:
                    raise TopicLayoutError(
                        f"topic {description['topic']!r} has {count} partitions but "
                        f"EM_PARTITIONS={partitions}; co-partitioned topics must match "
                        "(recreate the topic or set EM_PARTITIONS to its count)"
                    )
        return missing
    finally:
        await admin.close()
