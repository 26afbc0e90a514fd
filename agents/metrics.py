"""Prometheus metrics of the worker (served on the worker's web port at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECORDS_IN = Counter(
    "em_records_in_total", "Records consumed, by short topic name", ["topic"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "em_dead_letters_total",
    "Records sent to dead-letters, by reason code",
    ["code"],
    registry=REGISTRY,
)
OUTCOMES = Counter(
    "em_event_outcomes_total",
    "What applying an event did (applied, duplicate, too_old, dropped_deleted, pending, ...)",
    ["outcome"],
    registry=REGISTRY,
)
TIER_CHANGES = Counter(
    "em_tier_changes_total", "Tier changes published, by cause", ["cause"], registry=REGISTRY
)
FORWARDED = Counter(
    "em_forwarded_total",
    "Entries that arrived on an envelope of another partition and were sent to their owner",
    registry=REGISTRY,
)
BAD_ENVELOPES = Counter(
    "em_bad_envelopes_total",
    "Records on the envelope topic that are not envelopes of this version (skipped)",
    registry=REGISTRY,
)
INGEST_RECORDS = Counter(
    "em_ingest_records_total", "Input records framed into envelopes", registry=REGISTRY
)
INGEST_ENVELOPES = Counter(
    "em_ingest_envelopes_total", "Envelopes written by the ingest stage", registry=REGISTRY
)
INGEST_COMMIT_FAILURES = Counter(
    "em_ingest_commit_failures_total",
    "Ingest offset commits refused after a rebalance (those records are read again)",
    registry=REGISTRY,
)
INGEST_LAG = Gauge(
    "em_ingest_lag",
    "Input records not yet framed into envelopes, per input topic partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "em_batch_records",
    "Records per processed batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "em_batch_seconds",
    "Time to process one batch (apply, table writes, Redis writes)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
CONFIRM_SECONDS = Histogram(
    "em_confirm_seconds",
    "Wait for the broker to acknowledge a batch's changelog and output records before its ack",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
BATCHES_ABANDONED = Counter(
    "em_batches_abandoned_total",
    "Batches whose partitions moved (or the worker stopped) before their states were written",
    registry=REGISTRY,
)
ACKS_REFUSED = Counter(
    "em_acks_refused_total",
    "Records Faust skipped (rebalance) without handing them to the agent: acks not counted",
    registry=REGISTRY,
)
REWINDS = Counter(
    "em_partition_rewinds_total",
    "Partitions sought back to a record that was skipped and never handled",
    registry=REGISTRY,
)
OFFSET_HOLES = Counter(
    "em_offset_holes_total",
    "Input offsets with no record (transaction markers) counted as done",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "em_consumer_lag",
    "Records behind the high-water mark, per topic partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
DUE_CONTACTS = Gauge(
    "em_expiry_index_contacts",
    "Contacts tracked for window expiry on this worker",
    registry=REGISTRY,
)
EXPIRY_TICKS = Counter(
    "em_expiry_ticks_total",
    "Contacts sent for re-evaluation by the expiry sweep",
    registry=REGISTRY,
)
SNAPSHOT_REBUILDS = Counter(
    "em_snapshot_rebuilds_total",
    "Snapshots rewritten to Redis from the tables",
    registry=REGISTRY,
)
REVOKED_SKIPPED = Counter(
    "em_revoked_records_skipped_total",
    "Records of a batch whose partition was revoked before processing (left to the new owner)",
    registry=REGISTRY,
)
LEGACY_KEYS_PURGED = Counter(
    "em_redis_legacy_keys_purged_total",
    "Keys of the Redis layout before the injective encoding (em:{...}, em:meta:...) deleted",
    registry=REGISTRY,
)
REDIS_UP = Gauge(
    "em_redis_up",
    "1 while Redis answers; 0 during an outage (counting goes on, snapshots wait)",
    registry=REGISTRY,
)
REDIS_OUTAGES = Counter(
    "em_redis_outages_total", "Times Redis stopped answering the worker", registry=REGISTRY
)
REDIS_WRITES_HELD = Counter(
    "em_redis_writes_held_total",
    "Snapshot writes skipped while Redis was down (rebuilt from the tables once it answers)",
    registry=REGISTRY,
)
REDIS_RECOVERY_SECONDS = Histogram(
    "em_redis_recovery_seconds",
    "Time to rewrite this worker's snapshots after a Redis outage",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
