"""Reads from the Redis layout the worker writes (``engagement_monitor.redis_layout``).

Every key is built from the org of the path, which the caller has already matched against the
token's org, so a request can only ever name keys of its own org.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from engagement_monitor import keyspace as ks
from engagement_monitor.snapshot_codec import unpack_snapshot


@dataclass(frozen=True, slots=True)
class SegmentSlice:
    items: list[tuple[str, float]]
    next_cursor: str | None


class SnapshotStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def snapshot_json(self, org_id: str, contact_id: str) -> bytes | None:
        """The snapshot's JSON exactly as the worker built it (served as is: no re-encoding)."""
        raw = await self.client.get(ks.redis_snapshot_key(org_id, contact_id))
        if raw is None:
            return None
        return unpack_snapshot(raw)

    async def snapshots(self, org_id: str, contact_ids: list[str]) -> list[dict[str, Any] | None]:
        """Several contacts' snapshots, parsed, in one round trip (None where there is none)."""
        if not contact_ids:
            return []
        raws = await self.client.mget([ks.redis_snapshot_key(org_id, c) for c in contact_ids])
        return [None if raw is None else orjson.loads(unpack_snapshot(raw)) for raw in raws]

    async def history_json(self, org_id: str, contact_id: str) -> bytes | None:
        """The contact's tier changes of the window as the worker stored them, newest first."""
        raw = await self.client.get(ks.redis_history_key(org_id, contact_id))
        return None if raw is None else unpack_snapshot(raw)

    async def has_snapshot(self, org_id: str, contact_id: str) -> bool:
        return bool(await self.client.exists(ks.redis_snapshot_key(org_id, contact_id)))

    async def segment(
        self, org_id: str, channel: str | None, tier: str, cursor: str | None, limit: int
    ) -> SegmentSlice:
        """One page of a segment, most engaged first.

        Members sort lexicographically (``<inverted rate>|<contact>``), so the cursor is the last
        member returned and the next page starts strictly after it: stable while the worker
        adds and removes members. One extra member is read to know whether a next page exists.
        """
        low = f"({cursor}" if cursor else "-"
        members = await self.client.zrangebylex(
            ks.redis_segment_key(org_id, channel, tier), low, "+", start=0, num=limit + 1
        )
        texts = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        page = texts[:limit]
        next_cursor = page[-1] if len(texts) > limit else None
        return SegmentSlice([ks.parse_member(m) for m in page], next_cursor)

    async def registrations(
        self, org_id: str, contact_ids: list[str]
    ) -> list[dict[str, str | None] | None]:
        """The `name`, `email` and `phone` of each contact's snapshot, in one round trip (None
        for a contact whose snapshot is gone: a segment member can outlive it briefly)."""
        out: list[dict[str, str | None] | None] = []
        for snapshot in await self.snapshots(org_id, contact_ids):
            if snapshot is None:
                out.append(None)
                continue
            registration = snapshot.get("registration") or {}
            out.append({k: registration.get(k) for k in ("name", "email", "phone")})
        return out

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except Exception:
            return False
