"""`engagement-monitor worker`: create the topics, then run the Faust worker until stopped."""

from __future__ import annotations

import asyncio
import logging

from engagement_monitor.gc_tuning import tune_gc
from engagement_monitor.settings import Settings
from streams.admin import TopicLayoutError, ensure_topics
from streams.envelope_purge import ENVELOPE_RETENTION_MS

log = logging.getLogger("engagement_monitor.worker")


def run_worker(settings: Settings) -> int:
    import faust

    from agents.engagement import EngagementWorker
    from engagement_monitor.snapshot_codec import check_dictionaries
    from streams.app import create_app

    check_dictionaries()
    from engagement_monitor.native import verify

    log.info("hot modules: %s", verify().describe)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    streams = create_app(settings)
    worker_state = EngagementWorker(streams, settings)
    tune_gc()
    worker = faust.Worker(streams.app, loglevel=settings.log_level.lower(), quiet=True)
    # Faust's terminal spinner hooks a DEBUG-level handler onto the root logger when the level is
    # WARNING or above, which makes every library debug call build a log record (~5 % of the
    # worker's CPU in the profile). A service has no terminal to spin on.
    worker.spinner = None

    async def prepare() -> None:
        from aiokafka.errors import KafkaConnectionError

        for attempt in range(30):  # Kafka may still be starting: wait up to a minute
            try:
                created = await ensure_topics(
                    settings.kafka_bootstrap,
                    streams.names.all,
                    settings.partitions,
                    settings.replication_factor,
                    must_match=streams.names.consumed,
                    configs={
                        streams.names.envelopes: {
                            "cleanup.policy": "delete",
                            "retention.ms": str(ENVELOPE_RETENTION_MS),
                        }
                    },
                )
                break
            except KafkaConnectionError:
                if attempt == 29:
                    raise SystemExit(
                        f"engagement-monitor worker: no Kafka answers at "
                        f"EM_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}"
                    ) from None
                log.warning("Kafka at %s does not answer yet; retrying", settings.kafka_bootstrap)
                await asyncio.sleep(2)
        worker_state.topics_ready = True
        if created:
            log.info("created %d topic(s): %s", len(created), ", ".join(created))

    try:
        worker.loop.run_until_complete(prepare())
    except TopicLayoutError as exc:
        raise SystemExit(f"engagement-monitor worker: {exc}") from None
    worker.execute_from_commandline()
    return 0


async def request_resnapshot(settings: Settings) -> int:
    """Ask every worker to rewrite its snapshots: drop the per-partition sentinels in Redis.

    Workers check the sentinels every few seconds and rebuild the partitions whose sentinel is
    gone, from their tables, so this works with any number of workers. Keys of the layout before
    em:v2 are deleted first (see docs/operations.md, "Upgrading").
    """
    from agents.redis_sink import RedisSink

    sink = RedisSink(str(settings.redis_url), settings.app_id, cluster=settings.redis_cluster)
    try:
        purged = await sink.purge_legacy()
        if purged:
            log.info("deleted %d Redis key(s) of the layout before em:v2", purged)
        partitions = range(settings.partitions)
        await sink.drop_sentinels(partitions)
        for _ in range(300):
            await asyncio.sleep(0.5)
            if not await sink.missing_sentinels(partitions):
                return 0
        return 1
    finally:
        await sink.close()
