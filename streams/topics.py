"""Every topic the worker reads or writes, with the configured prefix (SPEC §2, §4, §5).

Kept in one place so that the worker, the API, the simulator and the tests agree on names, and so
that the worker can create all of them before it reports healthy.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGAGEMENT_TOPICS: tuple[str, ...] = (
    "dispatch",
    "delivery",
    "open",
    "click",
    "reply",
    "bounce",  # SPEC §7.2
    "complaint",
    "unsubscribe",
)
INPUT_TOPICS: tuple[str, ...] = (*ENGAGEMENT_TOPICS, "contact")
OUTPUT_TOPICS: tuple[str, ...] = (
    "tier-changes",
    "dead-letters",
    "dispatch-status",
    "send-requests",
    "audit",  # written by the API: who asked for each write (read_api.routes.publish)
)
# Envelopes (streams.envelope): the ingest stage writes every input record, framed with many
# others, to the partition of this topic that owns its contact; the Faust agent reads only this
# topic, which is co-partitioned with the contact table. Expiry ticks travel the same way.
ENVELOPE_TOPIC = "internal.envelopes"


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Full (prefixed) topic names, and the way back from a full name to its short name."""

    prefix: str

    def full(self, short: str) -> str:
        return f"{self.prefix}{short}"

    def short(self, full: str) -> str:
        return full.removeprefix(self.prefix)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.full(t) for t in INPUT_TOPICS)

    @property
    def envelopes(self) -> str:
        return self.full(ENVELOPE_TOPIC)

    @property
    def consumed(self) -> tuple[str, ...]:
        """What the engagement agent subscribes to (co-partitioned with the table)."""
        return (self.envelopes,)

    @property
    def all(self) -> tuple[str, ...]:
        """Every topic the worker creates at start-up."""
        return (*self.inputs, self.envelopes, *(self.full(t) for t in OUTPUT_TOPICS))
