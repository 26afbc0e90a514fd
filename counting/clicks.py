"""People's clicks and bots' clicks (SPEC §7.1), derived from what a message has seen.

A click flagged ``bot`` is a bot's. An unflagged click is a bot's when it is dated less than
``EM_BOT_CLICK_SECONDS`` after the message's delivery (its earliest delivery event, or its
dispatch without one): ``0 <= click - delivery < N``. A click dated *before* the delivery is a
person's: providers date deliveries late (Twilio's status callbacks carry no event time, so a
delivery is dated when its callback arrives, often after the person clicked), and the spec
says "after". ``EM_BOT_CLICK_SECONDS=0`` makes the interval empty: only flagged clicks are
bots'.

The delivery may arrive after the clicks, so a message keeps the times of its unflagged
clicks and the two derived bits are recomputed whenever the delivery, the dispatch or the
clicks move: exact in any arrival order. At most ``MAX_CLICK_TIMES`` distinct times are kept
per message (a person clicks a message a few times); past that the earliest ones and the
latest one are kept, which keeps the first and last click exact.
"""

from __future__ import annotations

from bisect import insort

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
MAX_CLICK_TIMES = 32
_DERIVED = F_CLICK | F_BOT_CLICK


def add_click(times: tuple[int, ...], at: int) -> tuple[int, ...] | None:
    """``times`` with ``at`` added (sorted, distinct, bounded), or None when unchanged."""
    if at in times:
        return None
    merged = list(times)
    insort(merged, at)
    if len(merged) > MAX_CLICK_TIMES:
        dropped = merged.pop(MAX_CLICK_TIMES - 1)  # the latest of the early ones
        if dropped == at:
            return None
    return tuple(merged)


def _reference(record: MessageRecord) -> int | None:
    if record.flags & F_HAS_DELIVERED_AT:
        return record.delivered_at
    return record.dispatched_at


def _is_bots(at: int, ref: int, bot_us: int) -> bool:
    return 0 <= at - ref < bot_us


def classify(flags: int, record: MessageRecord, bot_us: int) -> int:
    """``flags`` with F_CLICK / F_BOT_CLICK set from ``record``'s registers.

    A message waiting for its dispatch without a delivery has nothing to measure the delay
    from yet: its unflagged clicks are classified when the dispatch arrives.
    """
    flags &= ~_DERIVED
    if flags & F_HAS_BOT_FLAGGED:
        flags |= F_BOT_CLICK
    if flags & F_HAS_CLICKS:
        ref = record.delivered_at if flags & F_HAS_DELIVERED_AT else record.dispatched_at
        if ref is None:
            return flags
        for at in record.clicks:
            flags |= F_BOT_CLICK if _is_bots(at, ref, bot_us) else F_CLICK
            if flags & _DERIVED == _DERIVED:
                break
    return flags


def person_click_seconds(record: MessageRecord, bot_us: int) -> int:
    """Epoch seconds of the message's first click that is a person's (0 = none): what best
    send times and ``last_engaged_at`` use for a person's click."""
    if not record.flags & F_CLICK:
        return 0
    ref = _reference(record)
    for at in record.clicks:
        if ref is None or not _is_bots(at, ref, bot_us):
            return at // US_PER_SECOND
    return 0


def any_click_seconds(record: MessageRecord) -> int:
    """Earliest click of any kind, in epoch seconds (0 = none): for orgs that count bots."""
    times = []
    if record.flags & F_HAS_CLICKS and record.clicks:
        times.append(record.clicks[0] // US_PER_SECOND)
    if record.flags & F_HAS_BOT_FLAGGED:
        times.append(record.bot_first)
    return min(times, default=0)
