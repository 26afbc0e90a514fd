"""People's clicks and bots' clicks (SPEC §7.1), derived from what a message has seen.

A click flagged ``bot`` is a bot's. An unflagged click is a bot's when it is dated less than
``EM_BOT_CLICK_SECONDS`` after the message's delivery (its earliest delivery event, or its
dispatch without one), a person's otherwise. A click dated before the delivery it follows
counts as a bot's as well: less than N seconds after means ``click - delivery < N``, and a
person cannot click a message before it reached them. ``EM_BOT_CLICK_SECONDS=0`` turns the
delay rule off: then only flagged clicks are bots'.

The delivery may arrive after the clicks, so a message keeps its earliest and latest
unflagged click times and the two derived bits are recomputed whenever the delivery, the
dispatch or the clicks move. The earliest and latest are enough: some click is a person's
exactly when the latest is, some click is a bot's exactly when the earliest is.
"""

from __future__ import annotations

from counting.contrib import (
    F_BOT_CLICK,
    F_CLICK,
    F_HAS_BOT_FLAGGED,
    F_HAS_CLICKS,
    F_HAS_DELIVERED_AT,
)
from counting.state import MessageRecord
from counting.timeutil import US_PER_SECOND

CLICK_BITS = F_HAS_CLICKS | F_HAS_BOT_FLAGGED
_DERIVED = F_CLICK | F_BOT_CLICK


def _reference(record: MessageRecord) -> int | None:
    if record.flags & F_HAS_DELIVERED_AT:
        return record.delivered_at
    return record.dispatched_at


def classify(flags: int, record: MessageRecord, bot_us: int) -> int:
    """``flags`` with F_CLICK / F_BOT_CLICK set from ``record``'s registers.

    A message waiting for its dispatch without a delivery has nothing to measure the delay
    from yet: its unflagged clicks are classified when the dispatch arrives.
    """
    flags &= ~_DERIVED
    if flags & F_HAS_BOT_FLAGGED:
        flags |= F_BOT_CLICK
    if flags & F_HAS_CLICKS:
        if not bot_us:  # the delay rule is off: every unflagged click is a person's
            return flags | F_CLICK
        if flags & F_HAS_DELIVERED_AT:
            ref: int | None = record.delivered_at
        else:
            ref = record.dispatched_at
        if ref is None:
            return flags
        if record.click_max - ref >= bot_us:
            flags |= F_CLICK
        if record.click_min - ref < bot_us:
            flags |= F_BOT_CLICK
    return flags


def person_click_seconds(record: MessageRecord, bot_us: int) -> int:
    """Epoch seconds of the click best send times and ``last_engaged_at`` use for a person's
    click: the earliest unflagged click when it is a person's, else the latest (between the
    two, only the extremes are kept). 0 when no click is a person's."""
    if not record.flags & F_CLICK:
        return 0
    ref = _reference(record)
    if not bot_us or (ref is not None and record.click_min - ref >= bot_us):
        return record.click_min // US_PER_SECOND
    return record.click_max // US_PER_SECOND


def any_click_seconds(record: MessageRecord) -> int:
    """Earliest click of any kind, in epoch seconds (0 = none): for orgs that count bots."""
    times = []
    if record.flags & F_HAS_CLICKS:
        times.append(record.click_min // US_PER_SECOND)
    if record.flags & F_HAS_BOT_FLAGGED:
        times.append(record.bot_first)
    return min(times, default=0)
