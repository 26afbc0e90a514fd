"""Dispatches and interactions: the transitions of one message.

Each transition computes the message's packed contribution before and after and moves the
difference into its day bucket. Every transition is a union (flags OR) or a minimum (earliest
dispatch, first interaction times), so applying an event twice, or events in any order,
ends in the same message.
"""

from __future__ import annotations

from typing import assert_never

from counting.buckets import add_message, remove_message
from counting.clicks import CLICK_BITS, add_click, classify
from counting.config import CountingConfig
from counting.contrib import (
    F_AUTOMATED,
    F_BOUNCE,
    F_COMPLAINT,
    F_DELIVERY,
    F_HARD_BOUNCE,
    F_HAS_BOT_FLAGGED,
    F_HAS_CLICKS,
    F_HAS_DELIVERED_AT,
    F_MACHINE_OPEN,
    F_OPEN,
    F_REPLY,
    F_SENDING_ERROR,
    F_STATUS_EMITTED,
    TABLE_INDEX_MASK,
)
from counting.events import (
    Bounce,
    Click,
    Complaint,
    Delivery,
    Dispatch,
    Interaction,
    Open,
    Reply,
)
from counting.outcome import Outcome
from counting.state import ContactState, MessageRecord
from counting.subscriptions import unsubscribed_at
from counting.timeutil import DAY_US, US_PER_SECOND
from models.outputs import DispatchStatus


def _emit_if_new_error(
    record: MessageRecord,
    message_id: str,
    org_id: str,
    contact_id: str,
    effects: list[DispatchStatus],
) -> None:
    # Once per message: the messaging pipeline needs to hear it, not to hear it again on
    # every replay. A later subscribe that clears the error does not retract it.
    if record.flags & F_SENDING_ERROR and not record.flags & F_STATUS_EMITTED:
        record.flags |= F_STATUS_EMITTED
        effects.append(
            DispatchStatus(
                org_id=org_id,
                contact_id=contact_id,
                channel=record.channel,
                message_id=message_id,
            )
        )


def _set_sending_error(state: ContactState, record: MessageRecord) -> None:
    assert record.dispatched_at is not None
    if unsubscribed_at(state.subscriptions.get(record.channel), record.dispatched_at):
        record.flags |= F_SENDING_ERROR
    else:
        record.flags &= ~F_SENDING_ERROR


def apply_dispatch(
    state: ContactState,
    event: Dispatch,
    ts: int,
    cfg: CountingConfig,
    effects: list[DispatchStatus],
) -> Outcome:
    """The earliest dispatch of a message wins; equal times are broken by (channel, kind)
    so that the winner does not depend on arrival order."""
    message_id = event.message_id
    kind = F_AUTOMATED if event.dispatch_kind == "automated" else 0
    sent = state.sent_channels
    latest = sent.get(event.channel)
    newer = latest is None or ts > latest
    if newer:
        sent[event.channel] = ts
    record = state.messages.get(message_id)
    if record is not None:
        assert record.dispatched_at is not None
        current = (record.dispatched_at, record.channel, record.flags & F_AUTOMATED)
        if (ts, event.channel, kind) >= current:
            return "applied" if newer else "unchanged"
        remove_message(state, record, cfg)
        record.channel = event.channel
        record.dispatched_at = ts
        record.flags = (record.flags & ~F_AUTOMATED) | kind
        if record.flags & CLICK_BITS:  # the delay of its clicks is measured from the dispatch
            record.flags = classify(record.flags, record, cfg.bot_click_us)
    else:
        record = state.pending.pop(message_id, None)
        if record is None:
            record = MessageRecord(event.channel, ts, kind)
        else:
            # Interactions that waited for this dispatch join the message now.
            record.channel = event.channel
            record.dispatched_at = ts
            record.flags |= kind
            record.pending_since = 0
            record.first_event_at = 0
            if record.flags & CLICK_BITS:
                record.flags = classify(record.flags, record, cfg.bot_click_us)
        state.messages[message_id] = record
    if state.subscriptions or record.flags & F_SENDING_ERROR:  # most never unsubscribe
        _set_sending_error(state, record)
    add_message(state, record, cfg)
    if state.oldest_dispatch is None or ts < state.oldest_dispatch:
        state.oldest_dispatch = ts
    if record.flags & F_SENDING_ERROR:
        _emit_if_new_error(record, message_id, event.org_id, event.contact_id, effects)
    return "applied"


def _absorb(record: MessageRecord, event: Interaction, ts: int) -> bool:
    """Record what ``event`` proves about its message: evidence bits (a union) and the times
    that go with them (minimums, and maximums for click times). True if anything changed.

    Every event type is named: a new one fails mypy (assert_never) until it has a rule here.
    """
    old = record.flags
    flags = old
    changed = False
    match event:
        case Delivery():
            if not flags & F_HAS_DELIVERED_AT or ts < record.delivered_at:
                record.delivered_at = ts
                changed = True
            flags |= F_DELIVERY | F_HAS_DELIVERED_AT
        case Open(machine=True):
            seconds = ts // US_PER_SECOND
            if not flags & F_MACHINE_OPEN or seconds < record.first_machine_open:
                record.first_machine_open = seconds
                changed = True
            flags |= F_MACHINE_OPEN
        case Open():
            seconds = ts // US_PER_SECOND
            if not flags & F_OPEN or seconds < record.first_open:
                record.first_open = seconds
                changed = True
            flags |= F_OPEN
        case Click(bot=True):
            seconds = ts // US_PER_SECOND
            if not flags & F_HAS_BOT_FLAGGED:
                record.bot_first = record.bot_last = seconds
                changed = True
            elif seconds < record.bot_first:
                record.bot_first = seconds
                changed = True
            elif seconds > record.bot_last:
                record.bot_last = seconds
                changed = True
            flags |= F_HAS_BOT_FLAGGED
        case Click():
            merged = add_click(record.clicks, ts)
            if merged is not None:
                record.clicks = merged
                changed = True
            flags |= F_HAS_CLICKS
        case Reply():
            seconds = ts // US_PER_SECOND
            if not flags & F_REPLY or seconds < record.first_reply:
                record.first_reply = seconds
                changed = True
            flags |= F_REPLY
        case Bounce():
            flags |= F_BOUNCE | (F_HARD_BOUNCE if event.kind == "hard" else 0)
        case Complaint():
            flags |= F_COMPLAINT
        case _:
            assert_never(event)
    record.flags = flags
    return changed or flags != old


def apply_interaction(
    state: ContactState,
    event: Interaction,
    ts: int,
    now_us: int,
    cfg: CountingConfig,
) -> tuple[Outcome, int]:
    """Returns the outcome code and how many pending entries were given up to make room."""
    message_id = event.message_id
    record = state.messages.get(message_id)
    if record is not None:
        at = record.dispatched_at
        assert at is not None
        old = record.flags
        if not _absorb(record, event, ts):
            return "unchanged", 0
        new = record.flags
        if new & CLICK_BITS:
            new = record.flags = classify(new, record, cfg.bot_click_us)
        table = cfg.table(record.channel)
        delta = table[new & TABLE_INDEX_MASK] - table[old & TABLE_INDEX_MASK]
        if delta:
            # The message already sits in this bucket (dispatched lane >= 1), so the bucket
            # exists and stays non-zero: a plain add, no bookkeeping.
            state.buckets[record.channel][at // DAY_US] += delta
        return "applied", 0
    dropped = 0
    record = state.pending.get(message_id)
    if record is None:
        pending = state.pending
        while len(pending) >= cfg.pending_max_per_contact:
            del pending[next(iter(pending))]  # the oldest waiter gives up
            dropped += 1
        record = MessageRecord(event.channel, None, 0, pending_since=now_us, first_event_at=ts)
        pending[message_id] = record
    elif ts < record.first_event_at:
        record.first_event_at = ts
    _absorb(record, event, ts)
    state.dropped_pending += dropped
    return "pending", dropped


def refresh_sending_errors(
    state: ContactState,
    channel: str,
    since: int,
    cfg: CountingConfig,
    org_id: str,
    contact_id: str,
    effects: list[DispatchStatus],
) -> None:
    """Re-derive the status of the channel's messages dispatched at or after ``since``."""
    for message_id, record in state.messages.items():
        at = record.dispatched_at
        if record.channel != channel or at is None or at < since:
            continue
        before = record.flags
        _set_sending_error(state, record)
        if record.flags != before:
            after = record.flags
            record.flags = before
            remove_message(state, record, cfg)
            record.flags = after
            add_message(state, record, cfg)
            _emit_if_new_error(record, message_id, org_id, contact_id, effects)
