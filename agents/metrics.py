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
ENVELOPES_PURGED = Counter(
    "em_envelopes_purged_total",
    "Envelopes deleted from the envelope topic once committed (Kafka DeleteRecords)",
    registry=REGISTRY,
)
INGEST_RESTARTS = Counter(
    "em_ingest_restarts_total",
    "Ingest processes that exited and were started again (EM_INGEST_PROCESSES)",
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
    "Envelope entries applied per batch of envelopes",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 25000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "em_batch_seconds",
    "Time to apply one batch of envelopes to the cached contacts",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
CHECKPOINT_ENTRIES = Histogram(
    "em_checkpoint_entries",
    "Envelope entries landed per checkpoint (large under a backlog, small when traffic is light)",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000),
    registry=REGISTRY,
)
CHECKPOINT_CONTACTS = Histogram(
    "em_checkpoint_contacts",
    "Contacts written per checkpoint (one changelog record, one Redis write each)",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000),
    registry=REGISTRY,
)
CHECKPOINT_SECONDS = Histogram(
    "em_checkpoint_seconds",
    "Time to land one checkpoint: outputs, changelog, table store and Redis, acknowledged",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
CHECKPOINT_STEP_SECONDS = Histogram(
    "em_checkpoint_step_seconds",
    "Time spent in each step of a checkpoint's part: waiting for the part before it to land its "
    "states (wait), outputs, changelog, table store, Redis (agents/checkpoint.py)",
    ["step"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
ENVELOPE_WAIT_SECONDS = Histogram(
    "em_envelope_wait_seconds",
    "Time from an envelope's writing by the ingest to its applying by the agent (the Kafka "
    "record's timestamp against the worker's clock): Faust's fetch and batching",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
CHECKPOINT_NEW_CONTACT_SHARE = Gauge(
    "em_checkpoint_new_contact_share",
    "Share of the pending checkpoint's latest entries that made a new contact dirty: at most "
    "0.25 under a backlog, it waits past EM_CHECKPOINT_MAX_SECONDS (agents/checkpoint_pace.py)",
    registry=REGISTRY,
)
CHECKPOINT_RETRIES = Counter(
    "em_checkpoint_retries_total",
    "Checkpoint writes to Kafka that failed and were retried, by step",
    ["step"],
    registry=REGISTRY,
)
CHECKPOINTS_ABANDONED = Counter(
    "em_checkpoints_abandoned_total",
    "Checkpoints whose partitions moved (or the worker stopped) before their states were "
    "written; their envelopes are read again",
    registry=REGISTRY,
)
STATE_CACHE_CONTACTS = Gauge(
    "em_state_cache_contacts",
    "Decoded contacts held in memory between checkpoints",
    registry=REGISTRY,
)
STATE_CACHE_BYTES = Gauge(
    "em_state_cache_bytes",
    "Estimated memory of the decoded contacts held (bounded by EM_STATE_CACHE_MB)",
    registry=REGISTRY,
)
STORE_MEMORY_BYTES = Gauge(
    "em_store_memory_bytes",
    "Native memory of the table store, by kind (RocksDB: memtables, block_cache, table_readers)",
    ["kind"],
    registry=REGISTRY,
)
STATE_CACHE_LOADS = Counter(
    "em_state_cache_loads_total",
    "Contacts read from the table store because they were not cached",
    registry=REGISTRY,
)
ACKS_REFUSED = Counter(
    "em_acks_refused_total",
    "Acks of records not (yet) handled: skipped by Faust around a rebalance, or waiting for "
    "their checkpoint; they count only once the record is handled",
    registry=REGISTRY,
)
ACKS_DEFERRED = Counter(
    "em_acks_deferred_total",
    "Acks refused at first that counted once their checkpoint landed",
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
