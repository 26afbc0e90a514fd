"""When the org's audience interacts, and how its tiers moved lately (issue 15's landing view),
read from what the worker keeps beside every snapshot (agents/org_index.py).

The heatmaps are the contacts' own hour-of-week histograms (those their best send times come
from): per contact in its membership hash, and summed per org by the worker's script, which
adds only differences, so the org's figure is exact and never a scan. Tier changes of the
last 7 days sit in sorted sets per scope and direction whose members start with the change's
epoch second, so "how many since t" is one ZLEXCOUNT.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any

from agents.org_index import CHANGES_HORIZON_SECONDS, DIRECTIONS, parse_heat_field
from engagement_monitor import keyspace as ks
from engagement_monitor.redis_layout import HEAT_FIELD
from read_api.store import SnapshotStore

DAY = 86400
RECENT = 10


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now() -> tuple[datetime, str]:
    now = datetime.now(UTC)
    return now, now.isoformat().replace("+00:00", "Z")


def heat_grid(
    hours: dict[str, dict[int, int]], channels: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Per channel, 7 rows (Monday first) of 24 hourly counts and their total."""
    out: dict[str, dict[str, Any]] = {}
    for channel in channels:
        counts = hours.get(channel, {})
        grid = [[counts.get(day * 24 + hour, 0) for hour in range(24)] for day in range(7)]
        out[channel] = {"total": sum(counts.values()), "hours": grid}
    return out


async def org_heatmap(
    store: SnapshotStore, org_id: str, channels: tuple[str, ...]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """(as_of, grids) of the org: one HGETALL of the hash the worker keeps summed."""
    fields = await store.client.hgetall(ks.redis_heat_key(org_id))
    _, as_of = _now()
    text = ";".join(f"{_text(k)}={_text(v)}" for k, v in fields.items())
    return as_of, heat_grid(parse_heat_field(text), channels)


async def contact_heatmap(
    store: SnapshotStore, org_id: str, contact_id: str, channels: tuple[str, ...]
) -> tuple[str, dict[str, dict[str, Any]]]:
    raw = await store.client.hget(ks.redis_membership_key(org_id, contact_id), HEAT_FIELD)
    _, as_of = _now()
    return as_of, heat_grid(parse_heat_field(_text(raw) if raw else ""), channels)


def _since(now: datetime, seconds: int) -> str:
    return f"[{int(now.timestamp()) - seconds:010d}"


async def tier_changes(store: SnapshotStore, org_id: str) -> dict[str, Any]:
    """Counts of overall tier changes per direction in the last 24 h and 7 days, and the most
    recent ones with the contact's name: one transaction, then one MGET."""
    now, as_of = _now()
    pipe = store.client.pipeline(transaction=True)
    for since in (DAY, CHANGES_HORIZON_SECONDS):
        low = _since(now, since)
        for direction in DIRECTIONS:
            pipe.zlexcount(ks.redis_changes_key(org_id, direction), low, "+")
    week = _since(now, CHANGES_HORIZON_SECONDS)
    for direction in DIRECTIONS:
        pipe.zrevrangebylex(ks.redis_changes_key(org_id, direction), "+", week, start=0, num=RECENT)
    results = iter(await pipe.execute())
    periods = {
        period: {direction: int(next(results)) for direction in DIRECTIONS}
        for period in ("last_24h", "last_7d")
    }
    newest = heapq.nlargest(RECENT, (_text(member) for _ in DIRECTIONS for member in next(results)))
    parsed = [member.split("|", 3) for member in newest]
    contacts = [ks.parse_contact_member(contact) for _, _, _, contact in parsed]
    registrations = await store.registrations(org_id, contacts)
    recent = [
        {
            "changed_at": datetime.fromtimestamp(int(seconds), UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "contact_id": contact_id,
            "name": registration["name"] if registration else None,
            "previous_tier": None if previous == "-" else previous,
            "tier": None if tier == "-" else tier,
        }
        for (seconds, previous, tier, _), contact_id, registration in zip(
            parsed, contacts, registrations, strict=True
        )
    ]
    return {"as_of": as_of, **periods, "recent": recent}
