"""Incremental day buckets: every transition moves a message's contribution, never recounts.

A snapshot then adds at most ``window_days + 1`` integers per channel, whatever the number of
events the contact received.
"""

from __future__ import annotations

from counting.config import CountingConfig
from counting.contrib import TABLE_INDEX_MASK
from counting.state import ContactState, MessageRecord
from counting.timeutil import DAY_US


def contribution_of(record: MessageRecord, cfg: CountingConfig) -> int:
    if record.dispatched_at is None:
        return 0
    return cfg.table(record.channel)[record.flags & TABLE_INDEX_MASK]


def bucket_add(state: ContactState, channel: str, dispatched_at: int, delta: int) -> None:
    days = state.buckets.get(channel)
    if days is None:
        days = state.buckets[channel] = {}
    day = dispatched_at // DAY_US
    value = days.get(day, 0) + delta
    if value:
        days[day] = value
    else:
        # Zero means no message contributes (the dispatched lane counts messages).
        del days[day]
        if not days:
            del state.buckets[channel]


def add_message(state: ContactState, record: MessageRecord, cfg: CountingConfig) -> None:
    if record.dispatched_at is not None:
        bucket_add(state, record.channel, record.dispatched_at, contribution_of(record, cfg))


def remove_message(state: ContactState, record: MessageRecord, cfg: CountingConfig) -> None:
    if record.dispatched_at is not None:
        bucket_add(state, record.channel, record.dispatched_at, -contribution_of(record, cfg))


def rebuild(state: ContactState, cfg: CountingConfig) -> dict[str, dict[int, int]]:
    """Buckets recomputed from the messages; the codec uses it instead of storing them."""
    buckets: dict[str, dict[int, int]] = {}
    for record in state.messages.values():
        if record.dispatched_at is None:
            continue
        days = buckets.setdefault(record.channel, {})
        day = record.dispatched_at // DAY_US
        days[day] = days.get(day, 0) + contribution_of(record, cfg)
    return buckets


def recompute_oldest(state: ContactState) -> None:
    state.oldest_dispatch = min(
        (r.dispatched_at for r in state.messages.values() if r.dispatched_at is not None),
        default=None,
    )
