"""One contact's history over the simulated span: profile, lists, subscriptions, messages.

Pure: a contact and its random stream in, a list of ``Event`` out (not yet keyed, serialized or
disordered; ``simulator.stream`` does that). Times are integer epoch milliseconds, and nothing is
dated after ``now``: an interaction that would happen later has not happened yet.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.config import SimConfig
from simulator.personas import PERSONAS
from simulator.world import (
    DAY_MS,
    FLOWS,
    HOUR_MS,
    MINUTE_MS,
    Contact,
    Org,
    build_contact,
    uuid_from,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MEAN_FREQUENCY = sum(p.population * p.frequency for p in PERSONAS)
_DELIVERY_DELAY_MS = {"sms": 8_000.0, "email": 30_000.0, "whatsapp": 3_000.0}
_CLICK_PATHS = ("offer", "catalog", "checkout", "survey", "blog/news", "account/orders")


@dataclass(slots=True)
class Event:
    """A good record before serialization; ``message_id`` is kept for foreign keys."""

    topic: str
    time_ms: int
    value: dict[str, Any]
    message_id: str | None = None


def format_time(ms: int, org: Org) -> str:
    """RFC 3339 with milliseconds: ``Z`` for UTC producers, the org's offset for the others."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    if org.utc_timestamps:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return moment.astimezone(org.zone).isoformat(timespec="milliseconds")


def hour_of_week(ms: int, org: Org) -> int:
    """0 = Monday 00:00 in the org's zone, like the worker's best-send-time buckets."""
    return _local_hour(ms, org)[0]


def _local_hour(ms: int, org: Org) -> tuple[int, int]:
    """(hour of week, ms elapsed in that local hour); zones with half-hour offsets included."""
    local = (_EPOCH + timedelta(milliseconds=ms)).astimezone(org.zone)
    into = (local.minute * 60 + local.second) * 1000 + ms % 1000
    return local.weekday() * 24 + local.hour, into


class _History:
    """Accumulates one contact's events; ``emit`` drops anything after ``limit_ms``."""

    def __init__(self, contact: Contact, rng: random.Random, config: SimConfig) -> None:
        self.contact = contact
        self.rng = rng
        self.config = config
        self.events: list[Event] = []
        self.limit_ms = config.now_ms

    def emit(
        self, topic: str, ms: int, fields: dict[str, Any], message_id: str | None = None
    ) -> None:
        if ms > self.limit_ms:
            return
        c = self.contact
        value: dict[str, Any] = {
            "event_id": uuid_from(self.rng),
            "org_id": c.org.org_id,
            "contact_id": c.contact_id,
        }
        value.update(fields)
        value["occurred_at"] = format_time(ms, c.org)
        self.events.append(Event(topic, ms, value, message_id))


def contact_history(org: Org, index: int, config: SimConfig) -> tuple[Contact, list[Event]]:
    """Everything that happens to one contact, in no particular order."""
    contact, rng = build_contact(org, index, config)
    h = _History(contact, rng, config)
    now = config.now_ms
    span_start = now - config.days * DAY_MS
    start = max(contact.created_ms, span_start)
    # The profile: the creation itself when the contact joined during the span, else a CRM
    # sync inside it (the worker ignores anything older than its window).
    if contact.created_ms >= span_start:
        t_profile = contact.created_ms + rng.randint(0, 60_000)
    else:
        t_profile = min(now - 1_000, span_start + int(rng.uniform(0, 3) * DAY_MS))
    upsert: dict[str, Any] = {"type": "upsert", "name": contact.name}
    if contact.phone is not None:
        upsert["phone"] = contact.phone
    if contact.email is not None:
        upsert["email"] = contact.email
    upsert["created_at"] = format_time(contact.created_ms, org)
    upsert["origin"] = contact.origin
    h.emit("contact", t_profile, upsert)

    end_ms = now
    delete_ms: int | None = None
    if contact.deleted:
        delete_ms = now - int(rng.uniform(0.02, 0.3) * (now - start))
        delete_ms = max(delete_ms, t_profile + HOUR_MS)
        end_ms = delete_ms

    _profile_edits(h, t_profile, end_ms)
    _lists(h, t_profile, end_ms)
    unsubscribed = _subscriptions(h, t_profile, end_ms)
    _messages(h, start, end_ms, unsubscribed)

    if delete_ms is not None and delete_ms <= now:
        h.events = [e for e in h.events if e.time_ms <= delete_ms]
        h.emit("contact", delete_ms, {"type": "delete"})
        if rng.random() < 0.3:  # re-imported later: a new contact with the same id
            again = delete_ms + int(rng.uniform(1, 5) * DAY_MS)
            h.emit(
                "contact",
                again,
                {
                    "type": "upsert",
                    "name": contact.name,
                    "created_at": format_time(again, org),
                    "origin": {"type": "api"},
                },
            )
    return contact, h.events


def _profile_edits(h: _History, t_profile: int, end_ms: int) -> None:
    rng, c = h.rng, h.contact
    if end_ms - t_profile < HOUR_MS or rng.random() >= 0.15:
        return
    when = rng.randint(t_profile + MINUTE_MS, end_ms)
    roll = rng.random()
    edit: dict[str, Any] = {"type": "upsert"}
    if roll < 0.4 or (c.email is None and c.phone is None):
        edit["name"] = c.name.split(" ")[0] + " " + rng.choice(c.org.template.last_names)
    elif roll < 0.8 and c.email is not None:
        edit["email"] = c.email.replace("@", f".{rng.randint(1, 99)}@", 1)
    elif c.email is not None and c.phone is not None:
        edit["email"] = None  # an explicit null clears the field
    else:
        edit["name"] = c.name.upper()
    h.emit("contact", when, edit)


def _lists(h: _History, t_profile: int, end_ms: int) -> None:
    rng, org = h.rng, h.contact.org
    count = rng.choice((0, 0, 1, 1, 1, 2, 3))
    for list_id, list_name in rng.sample(org.lists, k=min(count, len(org.lists))):
        added = rng.randint(t_profile, max(t_profile, end_ms))
        fields: dict[str, Any] = {"type": "list_added", "list_id": list_id}
        if rng.random() < 0.9:
            fields["list_name"] = list_name
        h.emit("contact", added, fields)
        if rng.random() < 0.2 and end_ms - added > HOUR_MS:
            removed = rng.randint(added + MINUTE_MS, end_ms)
            h.emit("contact", removed, {"type": "list_removed", "list_id": list_id})


def _subscriptions(h: _History, t_profile: int, end_ms: int) -> dict[str, list[tuple[int, int]]]:
    """Opt-ins, opt-outs and re-subscriptions; returns the unsubscribed spans per channel."""
    rng, c = h.rng, h.contact
    spans: dict[str, list[tuple[int, int]]] = {}
    for channel in c.channels:
        if rng.random() < 0.5:
            h.emit(
                "contact",
                t_profile + rng.randint(0, 5_000),
                {"type": "subscribe", "channel": channel},
            )
        odds = c.persona.unsubscribe * (1.5 if channel == "email" else 1.0)
        if end_ms - t_profile < DAY_MS or rng.random() >= odds:
            continue
        out_ms = rng.randint(t_profile + (end_ms - t_profile) // 10, end_ms)
        h.emit("unsubscribe", out_ms, {"channel": channel})
        back_ms = end_ms + 1
        if rng.random() < 0.3:
            back_ms = out_ms + int(rng.uniform(1, 20) * DAY_MS)
            if back_ms <= end_ms:
                h.emit("contact", back_ms, {"type": "subscribe", "channel": channel})
        spans.setdefault(channel, []).append((out_ms, back_ms))
    return spans


def _business_time(rng: random.Random, org: Org, lo: int, hi: int) -> int:
    """A weekday 9:00-18:00 local moment in [lo, hi] (one-to-one messages sent by agents)."""
    t = rng.randint(lo, hi)
    for _ in range(24):
        how = hour_of_week(t, org)
        if how < 5 * 24 and 9 <= how % 24 < 18:
            return t
        t = rng.randint(lo, hi)
    return t


def _automated_time(rng: random.Random, org: Org, lo: int, hi: int) -> int:
    """Flows fire on triggers, mostly while people are awake."""
    t = rng.randint(lo, hi)
    for _ in range(8):
        if 8 <= hour_of_week(t, org) % 24 < 22 or rng.random() < 0.2:
            return t
        t = rng.randint(lo, hi)
    return t


def next_active_ms(h: _History, after_ms: int, channel: str) -> int:
    """When the contact next looks at its phone or inbox after ``after_ms``.

    Right away with the persona's ``immediacy`` when this is one of its active hours; otherwise
    an hour of the next two days drawn by the persona's hour-of-week weights (fading with
    distance), and a minute within it. This is what makes interactions cluster at
    persona-specific local hours.
    """
    rng, c = h.rng, h.contact
    weights = c.hour_weights
    how, into_hour = _local_hour(after_ms, c.org)
    immediacy = c.persona.immediacy * (0.5 if channel == "email" else 1.0)
    if weights[how] >= 0.35 and rng.random() < immediacy:
        return after_ms + 5_000 + int(rng.expovariate(1 / (6 * MINUTE_MS)))
    candidates = [weights[(how + k) % 168] * 0.97**k for k in range(48)]
    k = rng.choices(range(48), weights=candidates)[0]
    hour_start = after_ms - into_hour + k * HOUR_MS
    lo = after_ms + 1_000 if k == 0 else hour_start
    return rng.randint(lo, max(lo, hour_start + HOUR_MS - 1))


def _messages(
    h: _History, start: int, end_ms: int, unsubscribed: dict[str, list[tuple[int, int]]]
) -> None:
    rng, c, config = h.rng, h.contact, h.config
    if not c.channels or end_ms <= start:
        return
    span_fraction = (end_ms - start) / (config.days * DAY_MS)
    mean = config.messages_per_contact * c.persona.frequency / _MEAN_FREQUENCY * span_fraction
    count = int(rng.gammavariate(2.0, mean / 2.0) + 0.5) if mean > 0 else 0
    channels = list(c.channels)
    weights = [c.channels[ch] for ch in channels]
    window_start = config.now_ms - config.window_days * DAY_MS
    for _ in range(count):
        channel = rng.choices(channels, weights=weights)[0]
        old = rng.random() < config.old_share and c.created_ms < window_start - 4 * DAY_MS
        if old:
            # Just older than the worker's window: it must ignore the message and all of its
            # events, so none of them may fall inside the window.
            sent = window_start - int(rng.uniform(1, 72) * HOUR_MS)
            h.limit_ms = window_start - 1
            _one_message(h, channel, sent, sent, unsubscribed={})
            h.limit_ms = config.now_ms
            continue
        _one_message(h, channel, start, end_ms, unsubscribed)


def _one_message(
    h: _History,
    channel: str,
    lo: int,
    hi: int,
    unsubscribed: dict[str, list[tuple[int, int]]],
) -> None:
    rng, c = h.rng, h.contact
    org = c.org
    roll = rng.random()
    campaign_id: str | None = None
    kind = "single"
    sent: int
    campaigns = [k for k in org.campaigns if k.channel == channel and lo <= k.send_ms <= hi]
    if lo == hi:
        sent = lo
        kind = rng.choice(("single", "automated"))
    elif roll < 0.45 and campaigns:
        campaign = rng.choice(campaigns)
        campaign_id = campaign.campaign_id
        sent = campaign.send_ms + int(rng.expovariate(1 / (10 * MINUTE_MS)))
    elif roll < 0.8:
        kind = "automated"
        sent = _automated_time(rng, org, lo, hi)
        if rng.random() < 0.6:
            campaign_id = rng.choice(FLOWS)
    else:
        sent = _business_time(rng, org, lo, hi)
    sent = min(sent, hi)
    message_id = uuid_from(rng)
    base = {"channel": channel, "message_id": message_id}
    dispatch: dict[str, Any] = {**base, "dispatch_kind": kind}
    if campaign_id is not None:
        dispatch["campaign_id"] = campaign_id
    blocked = any(a <= sent < b for a, b in unsubscribed.get(channel, ()))
    if blocked and rng.random() >= 0.12:
        return  # the platform suppressed the send; a few flows ignore opt-outs (sending errors)
    h.emit("dispatch", sent, dispatch, message_id)
    if blocked:
        return
    odds = c.persona.odds[channel]
    if rng.random() >= odds.delivery:
        if rng.random() < 0.7:  # most failures are reported (SPEC §7.2)
            hard = rng.random() < 0.4
            bounce = {**base, "kind": "hard" if hard else "soft"}
            bounce["reason"] = rng.choice(_HARD_REASONS if hard else _SOFT_REASONS)
            at = sent + 30_000 + int(rng.expovariate(1 / (5 * MINUTE_MS)))
            h.emit("bounce", at, bounce, message_id)
        return
    delivered = sent + 200 + int(rng.expovariate(1 / _DELIVERY_DELAY_MS[channel]))
    if rng.random() < 0.015:  # a soft bounce, then the retry got through
        reason = rng.choice(_SOFT_REASONS)
        soft = {**base, "kind": "soft", "reason": reason}
        h.emit("bounce", sent + (delivered - sent) // 2, soft, message_id)
    if rng.random() < 0.97:  # receipts get lost now and then; interactions imply delivery
        h.emit("delivery", delivered, base, message_id)
    if channel == "email":
        _machine_events(h, delivered, base, message_id)
    tracks_open = channel in ("email", "whatsapp")
    can_reply = channel in ("sms", "whatsapp")
    opened = tracks_open and rng.random() < odds.open

    def given_open(p: float) -> float:
        # Rates in the persona table are per delivered message; on open-tracking channels a
        # click or reply mostly follows an open (and rarely comes without one: images off).
        if not tracks_open:
            return p
        if opened:
            return min(1.0, p / odds.open) if odds.open > 0 else 0.0
        return p * 0.05

    clicked = rng.random() < given_open(odds.click)
    replied = can_reply and rng.random() < given_open(odds.reply)
    if not (opened or clicked or replied):
        return
    session = next_active_ms(h, delivered, channel)
    if opened:
        h.emit("open", session, base, message_id)
        if rng.random() < c.persona.reopen:
            h.emit("open", next_active_ms(h, session + 2 * HOUR_MS, channel), base, message_id)
    if clicked:
        click: dict[str, Any] = dict(base)
        if channel != "whatsapp" or rng.random() < 0.8:  # WhatsApp quick replies have no URL
            path = rng.choice(_CLICK_PATHS)
            tag = campaign_id or "direct"
            click["url"] = (
                f"https://{org.domain}/{path}?utm_source={channel}&utm_campaign={tag}"
                f"&mid={message_id[:8]}"
            )
        h.emit("click", session + 5_000 + int(rng.expovariate(1 / 40_000)), click, message_id)
    if replied:
        reply_ms = session + 20_000 + int(rng.expovariate(1 / (3 * MINUTE_MS)))
        h.emit("reply", reply_ms, base, message_id)
    if channel == "email" and opened and rng.random() < 0.004:  # reported as spam
        at = session + 30_000 + int(rng.expovariate(1 / MINUTE_MS))
        h.emit("complaint", at, base, message_id)


# What providers say when a message does not get through (SPEC §7.2 `reason`).
_HARD_REASONS = (
    "550 5.1.1 The email account that you tried to reach does not exist",
    "Unknown subscriber",
    "Invalid destination number",
)
_SOFT_REASONS = ("452 4.2.2 Mailbox full", "Handset unreachable", "Temporary failure, retrying")
_PROXY_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
_SCANNER_UA = "Mozilla/5.0 (compatible; SafeLinks/1.0; +https://example.com/link-protection)"


def _uses_privacy_proxy(contact_id: str) -> bool:
    """About a third of e-mail contacts read in Apple Mail with Privacy Protection on: every
    message delivered to them is opened by the proxy within seconds (SPEC §7.1)."""
    return zlib.crc32(contact_id.encode()) % 100 < 33


def _machine_events(h: _History, delivered: int, base: dict[str, Any], message_id: str) -> None:
    rng = h.rng
    if _uses_privacy_proxy(h.contact.contact_id):
        opened = {**base, "machine": True, "user_agent": _PROXY_UA}
        h.emit("open", delivered + 1_000 + int(rng.expovariate(1 / 10_000)), opened, message_id)
    if rng.random() < 0.04:  # a corporate link scanner follows every link on arrival
        if rng.random() < 0.5:  # the provider recognised it
            scan = {**base, "bot": True, "user_agent": _SCANNER_UA}
            h.emit("click", delivered + 1_000 + int(rng.expovariate(1 / 3_000)), scan, message_id)
        else:  # unflagged, but less than EM_BOT_CLICK_SECONDS after the delivery
            scan = {**base, "user_agent": _SCANNER_UA}
            h.emit("click", delivered + int(rng.uniform(100, 1_500)), scan, message_id)
