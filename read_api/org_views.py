"""The org at a glance and contact search (SPEC §7.4), read from the indexes the worker writes
beside every snapshot (agents/org_index.py, agents/redis_sink.py).

Counts are ZCARDs read in one MULTI, so the overview is one consistent moment of Redis: exact
at `as_of`, never a scan. Search walks lexicographic ranges of lower-cased values, in this
order: a contact whose id is the query, then names, e-mails and phones starting with it; a
contact found at an earlier step is not repeated at a later one. A cursor names the step and
the last member returned, so paging is stable while the worker writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from agents.org_index import phone_value, search_value
from engagement_monitor import keyspace as ks
from models.tiers import TIERS
from read_api.store import SnapshotStore

STATUSES = ("subscribed", "unsubscribed")
STEPS = ("id", "name", "email", "phone")


async def overview(store: SnapshotStore, org_id: str, channels: tuple[str, ...]) -> dict[str, Any]:
    """The org's counters and segment sizes, read in one MULTI: one consistent moment."""
    pipe = store.client.pipeline(transaction=True)
    pipe.hgetall(ks.redis_overview_key(org_id))
    for scope in (None, *channels):
        for tier in TIERS:
            pipe.zcard(ks.redis_segment_key(org_id, scope, tier))
    answers = await pipe.execute()
    as_of = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    held = {_text(k): int(v) for k, v in answers[0].items()}
    sizes = iter(answers[1:])
    contacts = held.get(ks.CONTACTS_COUNTER, 0)
    overall: dict[str, int] = {tier: int(next(sizes)) for tier in TIERS}
    overall["none"] = contacts - sum(overall.values())
    by_channel: dict[str, dict[str, int]] = {}
    subscriptions: dict[str, dict[str, int]] = {}
    for channel in channels:
        tiers: dict[str, int] = {tier: int(next(sizes)) for tier in TIERS}
        statuses = {
            status: held.get(ks.subscription_counter(channel, status), 0) for status in STATUSES
        }
        tiers["none"] = sum(statuses.values()) - sum(tiers.values())
        by_channel[channel] = tiers
        subscriptions[channel] = statuses
    return {
        "as_of": as_of,
        "contacts": contacts,
        "tiers": {"overall": overall, "by_channel": by_channel},
        "subscriptions": subscriptions,
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _item(contact_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    registration = snapshot.get("registration") or {}
    engagement = snapshot.get("engagement") or {}
    return {
        "contact_id": contact_id,
        "name": registration.get("name"),
        "email": registration.get("email"),
        "phone": registration.get("phone"),
        "tier": engagement.get("tier"),
        "rate": engagement.get("rate"),
    }


def _matches_earlier(step: str, snapshot: dict[str, Any], query: str, digits: str) -> bool:
    """Whether an earlier step already listed this contact (names before e-mails before
    phones), so that it is listed once."""
    registration = snapshot.get("registration") or {}
    earlier = STEPS[1 : STEPS.index(step)]
    for field in earlier:
        value = registration.get(field)
        if not isinstance(value, str):
            continue
        indexed = phone_value(value) if field == "phone" else search_value(value)
        wanted = digits if field == "phone" else query
        if wanted and indexed.startswith(wanted):
            return True
    return False


async def search(
    store: SnapshotStore, org_id: str, q: str, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    query, digits = search_value(q), phone_value(q)
    step_index, after = 0, None
    if cursor is not None:
        step_name, _, after = cursor.partition(":")
        step_index = STEPS.index(step_name)
    items: list[dict[str, Any]] = []
    exact: str | None = None
    raw = await store.snapshot_json(org_id, q)  # the id step: is the query a contact's id?
    if raw is not None:
        exact = q
        if step_index == 0:
            items.append(_item(q, orjson.loads(raw)))
    step_index = max(step_index, 1)
    while step_index < len(STEPS):
        step = STEPS[step_index]
        wanted = digits if step == "phone" else query
        if not wanted:
            step_index, after = step_index + 1, None
            continue
        room = limit - len(items)
        if room == 0:
            return items, f"{step}:{after or ''}"
        key = ks.redis_search_key(org_id, step)
        low = b"(" + after.encode() if after else b"[" + wanted.encode()
        high = b"[" + wanted.encode() + b"\xff"
        members = await store.client.zrangebylex(key, low, high, start=0, num=room + 1)
        texts = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        contacts = [ks.parse_search_member(m)[1] for m in texts]
        found_snapshots = await store.snapshots(org_id, contacts)
        for member, contact, snapshot in zip(texts, contacts, found_snapshots, strict=True):
            if len(items) == limit:  # one more than fits: a next page starts after `after`
                return items, f"{step}:{after or ''}"
            after = member
            if snapshot is None or contact == exact:
                continue  # a stale member, or the id match listed first
            if not _matches_earlier(step, snapshot, query, digits):
                items.append(_item(contact, snapshot))
        if len(texts) <= room:  # fewer than asked for: this step has no more
            step_index, after = step_index + 1, None
    return items, None
