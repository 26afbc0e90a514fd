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
    "unsubscribe",
)
INPUT_TOPICS: tuple[str, ...] = (*ENGAGEMENT_TOPICS, "contact")
OUTPUT_TOPICS: tuple[str, ...] = (
    "tier-changes",
    "dead-letters",
    "dispatch-status",
    "send-requests",
)
# Records whose key is not the canonical "{org_id}:{contact_id}" (or that arrived on the partition
# that key does not hash to) are re-published here with the canonical key, so that every record
# of a contact is applied by the one worker that owns the contact's table partition. Expiry ticks
# travel the same way. The name carries the prefix like every other topic.
REKEY_TOPIC = "internal.rekey"


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
    def rekey(self) -> str:
        return self.full(REKEY_TOPIC)

    @property
    def consumed(self) -> tuple[str, ...]:
        """What the engagement agent subscribes to."""
        return (*self.inputs, self.rekey)

    @property
    def all(self) -> tuple[str, ...]:
        """Every topic the worker creates at start-up."""
        return (*self.consumed, *(self.full(t) for t in OUTPUT_TOPICS))
