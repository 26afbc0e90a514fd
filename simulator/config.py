"""What a simulation run is asked to produce, and the unit it yields.

Kept free of any Kafka import so that tests, the schema checks and ``--dry-run`` can use the
generator on a machine with no broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

RecordKind = Literal["good", "duplicate", "malformed"]
KINDS: tuple[RecordKind, ...] = ("good", "duplicate", "malformed")


def _now() -> datetime:
    # Millisecond precision: every timestamp the simulator writes has milliseconds, so "now"
    # itself can be written back exactly.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of one run; the same config (with the same ``now``) always yields the same bytes.

    Shares are fractions of the whole stream (``malformed_share``, ``duplicate_share``,
    ``late_share``) or of a population (``old_share`` of messages, ``delete_share`` of contacts,
    the key shares of records).
    """

    orgs: int = 3
    contacts_per_org: int = 200
    messages_per_contact: float = 20.0
    seed: int = 1
    days: int = 90
    window_days: int = 90
    now: datetime = field(default_factory=_now)
    malformed_share: float = 0.01
    duplicate_share: float = 0.02
    late_share: float = 0.005
    old_share: float = 0.01
    delete_share: float = 0.005
    none_key_share: float = 0.03
    foreign_key_share: float = 0.01
    shuffle_window: int = 16
    chunk_contacts: int = 500
    max_record_bytes: int = 65_536  # the worker's EM_MAX_RECORD_BYTES, for oversize records

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self.orgs < 1 or self.orgs > 1000:
            raise ValueError("orgs must be between 1 and 1000")
        if self.contacts_per_org < 1:
            raise ValueError("contacts_per_org must be at least 1")
        if self.messages_per_contact < 0:
            raise ValueError("messages_per_contact must not be negative")
        if not 1 <= self.days <= 3000 or not 1 <= self.window_days <= 3000:
            raise ValueError("days and window_days must be between 1 and 3000")
        shares = {
            "malformed_share": self.malformed_share,
            "duplicate_share": self.duplicate_share,
            "late_share": self.late_share,
            "old_share": self.old_share,
            "delete_share": self.delete_share,
            "none_key_share": self.none_key_share,
            "foreign_key_share": self.foreign_key_share,
        }
        for name, value in shares.items():
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.malformed_share + self.duplicate_share >= 0.9:
            raise ValueError("malformed_share + duplicate_share must stay below 0.9")
        if self.none_key_share + self.foreign_key_share >= 1.0:
            raise ValueError("none_key_share + foreign_key_share must stay below 1")
        if self.max_record_bytes < 256:
            raise ValueError("max_record_bytes must be at least 256")
        if self.shuffle_window < 1 or self.chunk_contacts < 1:
            raise ValueError("shuffle_window and chunk_contacts must be at least 1")
        object.__setattr__(self, "now", self.now.astimezone(UTC))

    @property
    def now_ms(self) -> int:
        """``now`` as integer epoch milliseconds, the simulator's internal clock unit."""
        return int(self.now.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One record to produce.

    ``topic`` is the SHORT topic name (no prefix). ``expected_code`` is the rejection code the
    worker must give a malformed record (``models.events.REJECTION_CODES``), None otherwise.
    """

    topic: str
    key: bytes | None
    value: bytes
    kind: RecordKind
    expected_code: str | None = None
