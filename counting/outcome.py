"""What happened to an event, for metrics and tests (see ``ApplyOutcome``)."""

from __future__ import annotations

from typing import Literal

Outcome = Literal["applied", "unchanged", "pending", "duplicate", "too_old", "dropped_deleted"]
