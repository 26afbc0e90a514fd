"""Deleting a contact at time T: forget everything dated before T, remember T.

The tombstone is what makes a delete order-independent: an event dated before T that arrives
after the delete is dropped, exactly as if it had arrived before and been removed.
"""

from __future__ import annotations

from counting.buckets import add_message, recompute_oldest, remove_message
from counting.config import CountingConfig
from counting.contrib import F_SENDING_ERROR
from counting.outcome import Outcome
from counting.state import ContactState
from counting.subscriptions import unsubscribed_at


def _earliest_trace(state: ContactState) -> int | None:
    """Earliest event time still visible in the state, the new "first seen" after a delete.

    Best effort: last-writer-wins registers keep only the winning time, so an older losing
    edit dated after T is not seen here (docs/counting.md, "contact_since").
    """
    times = [v[0] for v in state.registration.values()]
    times += [v[0] for v in state.lists.values()]
    times += [entry[0] for timeline in state.subscriptions.values() for entry in timeline]
    times += [r.dispatched_at for r in state.messages.values() if r.dispatched_at is not None]
    times += [r.first_event_at for r in state.pending.values()]
    return min(times, default=None)


def apply_delete(state: ContactState, ts: int, cfg: CountingConfig) -> Outcome:
    if state.tombstone is not None and ts <= state.tombstone:
        return "unchanged"
    state.tombstone = ts
    state.registration = {k: v for k, v in state.registration.items() if v[0] >= ts}
    state.lists = {k: v for k, v in state.lists.items() if v[0] >= ts}
    subscriptions: dict[str, list[tuple[int, int]]] = {}
    for channel, timeline in state.subscriptions.items():
        kept = [entry for entry in timeline if entry[0] >= ts]
        if kept:
            subscriptions[channel] = kept
    state.subscriptions = subscriptions
    state.sent_channels = {ch: at for ch, at in state.sent_channels.items() if at >= ts}
    doomed = [
        m for m, r in state.messages.items() if r.dispatched_at is not None and r.dispatched_at < ts
    ]
    for message_id in doomed:
        remove_message(state, state.messages.pop(message_id), cfg)
    state.pending = {k: v for k, v in state.pending.items() if v.first_event_at >= ts}
    # Kept messages (dispatched at or after T) lost the subscription history before T, which
    # can only clear a sending error, never create one, so nothing is emitted here.
    for record in state.messages.values():
        assert record.dispatched_at is not None
        if record.flags & F_SENDING_ERROR and not unsubscribed_at(
            state.subscriptions.get(record.channel), record.dispatched_at
        ):
            remove_message(state, record, cfg)
            record.flags &= ~F_SENDING_ERROR
            add_message(state, record, cfg)
    recompute_oldest(state)
    state.first_seen = _earliest_trace(state)
    return "applied"
