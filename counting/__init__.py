"""The pure counting core: events in, contact state, snapshots and tier changes out.

No Kafka, Faust or Redis here, so every rule can be tested and benchmarked in isolation.
"""

from engagement_monitor.native import verify as _verify_native

_verify_native()  # compiled modules of this package must match their sources

# ruff: noqa: E402
from counting.apply import ApplyOutcome, apply_event
from counting.codec import decode, encode
from counting.config import CountingConfig
from counting.expiry import expire, next_expiry
from counting.snapshot import build_snapshot, current_tiers
from counting.state import ContactState, MessageRecord
from counting.tiering import TierMap, tier_changes, tiers

__all__ = [
    "ApplyOutcome",
    "ContactState",
    "CountingConfig",
    "MessageRecord",
    "TierMap",
    "apply_event",
    "build_snapshot",
    "current_tiers",
    "decode",
    "encode",
    "expire",
    "next_expiry",
    "tier_changes",
    "tiers",
]
