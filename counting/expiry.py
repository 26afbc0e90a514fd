"""Rolling the window forward without new events.

``next_expiry`` lets the worker index contacts by due time, so a sweep touches only the
contacts whose snapshot can actually change, instead of scanning every contact every hour.
"""

from __future__ import annotations

from datetime import datetime

from counting.buckets import recompute_oldest, remove_message
from counting.config import CountingConfig
from counting.state import ContactState
from counting.subscriptions import prune
from counting.timeutil import DAY_US, US_PER_SECOND, to_us


def _ceil_seconds(us: int) -> int:
    return -(-us // US_PER_SECOND)


def next_expiry(state: ContactState, cfg: CountingConfig) -> int | None:
    """Epoch seconds at which something leaves the window (a message is in the window while
    ``dispatched_at >= now - window``, so it leaves one microsecond after ``+ window``)."""
    due: list[int] = []
    if state.oldest_dispatch is not None:
        due.append(state.oldest_dispatch + cfg.window_us + 1)
    if state.pending:
        oldest_wait = min(r.pending_since for r in state.pending.values())
        due.append(oldest_wait + cfg.pending_max_seconds * US_PER_SECOND + 1)
    if state.tombstone is not None:
        due.append(state.tombstone + cfg.window_us + 1)
    return _ceil_seconds(min(due)) if due else None


def is_due(state: ContactState, now_us: int, cfg: CountingConfig) -> bool:
    """Cheap check for the hot path; the pending head is the oldest waiter in practice."""
    start = now_us - cfg.window_us
    if state.oldest_dispatch is not None and state.oldest_dispatch < start:
        return True
    if state.tombstone is not None and state.tombstone < start:
        return True
    if state.pending:
        head = next(iter(state.pending.values()))
        return now_us - head.pending_since > cfg.pending_max_seconds * US_PER_SECOND
    return False


def expire_us(state: ContactState, now_us: int, cfg: CountingConfig) -> int:
    """Prune as of ``now_us``; returns how many pending entries gave up waiting."""
    start = now_us - cfg.window_us
    if state.oldest_dispatch is not None and state.oldest_dispatch < start:
        old = [
            m
            for m, r in state.messages.items()
            if r.dispatched_at is not None and r.dispatched_at < start
        ]
        for message_id in old:
            remove_message(state, state.messages.pop(message_id), cfg)
        recompute_oldest(state)
    max_wait = cfg.pending_max_seconds * US_PER_SECOND
    gave_up = [m for m, r in state.pending.items() if now_us - r.pending_since > max_wait]
    for message_id in gave_up:
        del state.pending[message_id]
    state.dropped_pending += len(gave_up)
    for channel, timeline in list(state.subscriptions.items()):
        state.subscriptions[channel] = prune(timeline, start)
    state.lists = {k: v for k, v in state.lists.items() if v[2] or v[0] >= start}
    if state.tombstone is not None and state.tombstone < start:
        state.tombstone = None  # anything older is "too old" now anyway
    start_day = start // DAY_US
    if any(day < start_day for day in state.seen.values()):
        state.seen = {k: d for k, d in state.seen.items() if d >= start_day}
    return len(gave_up)


def expire(state: ContactState, now: datetime, cfg: CountingConfig) -> int:
    """Prune everything that left the window (or waited too long) as of ``now``."""
    return expire_us(state, to_us(now), cfg)
