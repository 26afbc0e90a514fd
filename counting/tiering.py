"""Tier maps and the tier-change records published when a scope's tier moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from counting.timeutil import iso, to_us
from models.tiers import Tier

Scope = str | None  # None is the overall engagement
TierMap = dict[Scope, tuple[Tier | None, float | None]]

_NOTHING: tuple[Tier | None, float | None] = (None, None)


def tiers(snapshot: dict[str, Any] | None) -> TierMap:
    """Tier and rate per scope; a contact without a snapshot has no scopes."""
    if snapshot is None:
        return {}
    engagement = snapshot["engagement"]
    result: TierMap = {None: (engagement["tier"], engagement["rate"])}
    for channel, figures in snapshot["channels"].items():
        result[channel] = (figures["engagement"]["tier"], figures["engagement"]["rate"])
    return result


def tier_changes(
    org_id: str,
    contact_id: str,
    before: TierMap | None,
    after: TierMap | None,
    cause: Literal["event", "expiry"],
    changed_at: datetime,
) -> list[dict[str, Any]]:
    """One record per scope whose tier differs; a rate change within a tier is no change.

    Moving from or to ``None`` is a change: the first delivery gives a contact a tier that
    segments must learn about, and expiry of all deliveries takes it away again.
    """
    before = before or {}
    after = after or {}
    if before.keys() == after.keys() and all(
        before[scope][0] == tier for scope, (tier, _) in after.items()
    ):
        return []  # the common case: rates moved, tiers did not
    scopes: list[Scope] = [None] if None in before or None in after else []
    scopes += sorted({s for s in (*before, *after) if s is not None})
    stamp = iso(to_us(changed_at))
    changes: list[dict[str, Any]] = []
    for scope in scopes:
        previous, _ = before.get(scope, _NOTHING)
        tier, rate = after.get(scope, _NOTHING)
        if previous != tier:
            changes.append(
                {
                    "org_id": org_id,
                    "contact_id": contact_id,
                    "channel": scope,
                    "previous_tier": previous,
                    "tier": tier,
                    "rate": rate,
                    "changed_at": stamp,
                    "cause": cause,
                }
            )
    return changes
