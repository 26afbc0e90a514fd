"""A deliberately naive reference for SPEC §3, for the property tests.

It takes the SET of events (each event_id once), sorts them by event time and recomputes
every figure from scratch, with no buckets, no packing, no incremental state and no dedupe
ring. If the real core ever depends on arrival order or duplicates, the two disagree.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from counting import CountingConfig
from models.events import (
    BounceEvent,
    ClickEvent,
    ComplaintEvent,
    ContactDelete,
    ContactListAdded,
    ContactListRemoved,
    ContactSubscribe,
    ContactUpsert,
    DeliveryEvent,
    DispatchEvent,
    Event,
    OpenEvent,
    ReplyEvent,
    UnsubscribeEvent,
)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FIGURES = (
    "dispatched",
    "sending_errors",
    "delivered",
    "opened",
    "clicked",
    "replied",
    "machine_opened",
    "bot_clicked",
    "bounced",
    "hard_bounced",
    "complained",
)


def _kind(e: Event) -> str:
    """What an event after the dispatch says about its message, in SPEC §7.1 terms."""
    if isinstance(e, DeliveryEvent):
        return "delivery"
    if isinstance(e, OpenEvent):
        return "machine_open" if e.machine else "open"
    if isinstance(e, ClickEvent):
        return "bot_click" if e.bot else "click"
    if isinstance(e, ReplyEvent):
        return "reply"
    if isinstance(e, BounceEvent):
        return f"{e.kind}_bounce"
    assert isinstance(e, ComplaintEvent)
    return "complaint"


def _round(value: Fraction) -> float | None:
    hundredths = math.floor(value * 100 + Fraction(1, 2))
    return hundredths / 100


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else _round(Fraction(num * 100, den))


def _tier(rate: float | None) -> str | None:
    if rate is None:
        return None
    return (
        "no_engagement"
        if rate < 20
        else "low"
        if rate < 50
        else "high"
        if rate < 75
        else "very_high"
    )


def _engagement(engaged: int, delivered: int, latest: int | None) -> dict[str, Any]:
    rate = _rate(engaged, delivered)
    return {
        "rate": rate,
        "tier": _tier(rate),
        "engaged": engaged,
        "delivered": delivered,
        "last_engaged_at": None if latest is None else _iso(datetime.fromtimestamp(latest, UTC)),
    }


def _tie(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def reference_snapshot(
    org_id: str,
    contact_id: str,
    events: Iterable[Event],
    applied_at: datetime,
    now: datetime,
    cfg: CountingConfig,
) -> dict[str, Any] | None:
    """``applied_at``: processing time of the events (decides "too old");
    ``now``: time of the snapshot (decides the window)."""
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    window = timedelta(days=cfg.window_days)
    kept = [e for e in unique.values() if e.occurred_at >= applied_at - window]
    deletes = [e.occurred_at for e in kept if isinstance(e, ContactDelete)]
    if deletes:
        kept = [e for e in kept if e.occurred_at >= max(deletes)]
    kept = [e for e in kept if not isinstance(e, ContactDelete)]
    kept.sort(key=lambda e: (e.occurred_at, _tie(e.event_id)))  # event-time order

    registration: dict[str, Any] = {}
    lists: dict[str, tuple[bool, str | None]] = {}
    timeline: dict[str, list[tuple[datetime, int]]] = {}
    dispatches: dict[str, tuple[datetime, str, int]] = {}
    interactions: dict[str, list[tuple[str, datetime]]] = {}
    for e in kept:
        if isinstance(e, ContactUpsert):
            for name in ("name", "phone", "email", "created_at", "origin"):
                if name in e.model_fields_set:
                    value = getattr(e, name)
                    if name == "origin" and value is not None:
                        value = value.model_dump(mode="json")
                    registration[name] = value
        elif isinstance(e, ContactListAdded):
            lists[e.list_id] = (True, e.list_name)
        elif isinstance(e, ContactListRemoved):
            lists[e.list_id] = (False, None)
        elif isinstance(e, UnsubscribeEvent | ContactSubscribe):
            kind = 1 if isinstance(e, UnsubscribeEvent) else 0
            timeline.setdefault(e.channel, []).append((e.occurred_at, kind))
        elif isinstance(e, DispatchEvent):
            candidate = (e.occurred_at, e.channel, int(e.dispatch_kind == "automated"))
            dispatches[e.message_id] = min(dispatches.get(e.message_id, candidate), candidate)
        else:
            interactions.setdefault(e.message_id, []).append((_kind(e), e.occurred_at))
            if isinstance(e, ComplaintEvent):  # SPEC §7.2: as an unsubscribe would
                timeline.setdefault(e.channel, []).append((e.occurred_at, 1))

    def unsubscribed(channel: str, at: datetime) -> bool:
        before = sorted(x for x in timeline.get(channel, []) if x[0] <= at)
        return bool(before) and before[-1][1] == 1

    start = now - window
    zone = ZoneInfo(cfg.timezone_name(org_id))
    counts: dict[str, dict[str, int]] = {}
    hours: dict[str, dict[int, int]] = {}
    latest: dict[str, int] = {}  # channel -> epoch seconds of the latest counted interaction
    for message_id, (at, channel, _) in dispatches.items():
        if at < start:
            continue
        c = counts.setdefault(channel, dict.fromkeys((*FIGURES, "engaged"), 0))
        c["dispatched"] += 1
        if unsubscribed(channel, at):
            c["sending_errors"] += 1
            continue
        seen = interactions.get(message_id, [])
        times: dict[str, list[datetime]] = {}
        for kind, moment in seen:
            times.setdefault(kind, []).append(moment)
        # §7.1: an unflagged click dated less than N seconds after the earliest delivery (or
        # the dispatch, without one) is a bot's; one dated before it is a person's.
        ref = min(times["delivery"]) if "delivery" in times else at
        delay = timedelta(microseconds=cfg.bot_click_us)
        clicks = sorted(times.get("click", []))
        people_clicks = [t for t in clicks if not timedelta(0) <= t - ref < delay]
        person_open = "open" in times
        machine_open = "machine_open" in times
        person_click = bool(people_clicks)
        bot_click = "bot_click" in times or len(people_clicks) < len(clicks)
        reply = "reply" in times
        reached = bool(set(times) & {"delivery", "open", "machine_open", "reply", "complaint"})
        reached = reached or bool(clicks) or bot_click
        excluded = cfg.excludes_machine_events(org_id)
        opens = person_open or (machine_open and not excluded)
        clicked = person_click or (bot_click and not excluded)
        tracked = cfg.tracks(channel)
        c["delivered"] += reached
        c["opened"] += opens or ("open" in tracked and (clicked or reply))
        c["clicked"] += clicked
        c["replied"] += reply
        c["engaged"] += opens or clicked or reply
        c["machine_opened"] += machine_open
        c["bot_clicked"] += bot_click
        bounced = "hard_bounce" in times or "soft_bounce" in times
        c["bounced"] += bounced and not reached
        c["hard_bounced"] += "hard_bounce" in times and not reached
        c["complained"] += "complaint" in times
        # §7.3: the latest counted open, click or reply: each counts once per message, by
        # its first occurrence (whole seconds, as the state keeps it).
        if excluded:
            open_times = times.get("open", [])
            click_times = people_clicks[:1]
        else:
            open_times = times.get("open", []) + times.get("machine_open", [])
            click_times = clicks + times.get("bot_click", [])
        firsts = {
            "open": open_times,
            "click": click_times,
            "reply": times.get("reply", []),
        }
        h = hours.setdefault(channel, {})
        for kind, metric in (("open", "open"), ("click", "click"), ("reply", "response")):
            if firsts[kind]:
                first = math.floor(min(firsts[kind]).timestamp())
                latest[channel] = max(latest.get(channel, first), first)
                if metric in tracked:
                    local = datetime.fromtimestamp(first, zone)
                    how = local.weekday() * 24 + local.hour
                    h[how] = h.get(how, 0) + 1

    # A channel the contact was sent on stays shown (zeros once its messages expire) until a
    # delete: every dispatch kept here is dated after the last delete (SPEC §3).
    sent_on = {e.channel for e in kept if isinstance(e, DispatchEvent)}
    present = set(counts) | {ch for ch, entries in timeline.items() if entries} | sent_on
    shown_lists = sorted(
        ({"list_id": k, "name": v[1] if v[1] is not None else k} for k, v in lists.items() if v[0]),
        key=lambda x: x["list_id"],
    )
    if not present and not shown_lists and all(v is None for v in registration.values()):
        return None
    order = [c for c in cfg.channels if c in present] + sorted(present - set(cfg.channels))
    channels: dict[str, Any] = {}
    empty = dict.fromkeys((*FIGURES, "engaged"), 0)
    for channel in order:
        c = counts.get(channel, empty)
        tracked = cfg.tracks(channel)
        entries = sorted(timeline.get(channel, []))
        status = "unsubscribed" if entries and entries[-1][1] == 1 else "subscribed"
        channels[channel] = {
            "status": status,
            **{k: c[k] for k in FIGURES},
            "rates": {
                "delivery": _rate(c["delivered"], c["dispatched"])
                if "delivery" in tracked
                else None,
                "open": _rate(c["opened"], c["delivered"]) if "open" in tracked else None,
                "click": _rate(c["clicked"], c["delivered"]) if "click" in tracked else None,
                "response": _rate(c["replied"], c["delivered"]) if "response" in tracked else None,
                "bounce": _rate(c["bounced"], c["dispatched"]),
                "complaint": _rate(c["complained"], c["delivered"]),
            },
            "engagement": _engagement(c["engaged"], c["delivered"], latest.get(channel)),
        }
    delivered = sum(counts.get(ch, empty)["delivered"] for ch in order)
    engaged = sum(counts.get(ch, empty)["engaged"] for ch in order)
    created = registration.get("created_at")
    since = created if created is not None else (kept[0].occurred_at if kept else None)
    best: dict[str, Any] = {}
    for channel in order:
        top = sorted(hours.get(channel, {}).items(), key=lambda x: (-x[1], x[0]))[:3]
        dispatched = channels[channel]["dispatched"]
        best[channel] = {
            "timezone": zone.key,
            "top_hours": [
                {"weekday": WEEKDAYS[how // 24], "hour": how % 24, "interactions": n}
                for how, n in top
            ],
            "weekly_frequency": _round(Fraction(dispatched * 7, cfg.window_days)),
        }
    return {
        "org_id": org_id,
        "contact_id": contact_id,
        "as_of": _iso(now),
        "window_days": cfg.window_days,
        "registration": {
            "name": registration.get("name"),
            "phone": registration.get("phone"),
            "email": registration.get("email"),
            "contact_since": None if since is None else _iso(since),
            "origin": registration.get("origin"),
        },
        "lists": shown_lists,
        "channels": channels,
        "dispatched": {
            "total": sum(ch["dispatched"] for ch in channels.values()),
            "by_channel": {k: v["dispatched"] for k, v in channels.items()},
        },
        "engagement": _engagement(engaged, delivered, max(latest.values(), default=None)),
        "best_send_times": best,
    }
