"""Dispatches and interactions: the transitions of one message.

Each transition computes the message's packed contribution before and after and moves the
difference into its day bucket. Every transition is a union (flags OR) or a minimum (earliest
dispatch, first interaction times), so applying an event twice, or events in any order,
ends in the same message.
"""

from __future__ import annotations

from counting.buckets import add_message, remove_message
from counting.config import CountingConfig
from counting.contrib import (
    F_AUTOMATED,
    F_CLICK,
    F_DELIVERY,
    F_OPEN,
    F_REPLY,
    F_SENDING_ERROR,
    F_STATUS_EMITTED,
    TABLE_INDEX_MASK,
)
from counting.outcome import Outcome
from counting.state import ContactState, MessageRecord
from counting.subscriptions import unsubscribed_at
from counting.timeutil import DAY_US, US_PER_SECOND
from models.events import (
    ClickEvent,
    DeliveryEvent,
    DispatchEvent,
    InteractionEvent,
    OpenEvent,
    ReplyEvent,
)
from models.outputs import DispatchStatus

INTERACTION_FLAGS: dict[type[InteractionEvent], int] = {
    DeliveryEvent: F_DELIVERY,
    OpenEvent: F_OPEN,
    ClickEvent: F_CLICK,
    ReplyEvent: F_REPLY,
}


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
    event: DispatchEvent,
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
        state.messages[message_id] = record
    if state.subscriptions or record.flags & F_SENDING_ERROR:  # most never unsubscribe
        _set_sending_error(state, record)
    add_message(state, record, cfg)
    if state.oldest_dispatch is None or ts < state.oldest_dispatch:
        state.oldest_dispatch = ts
    if record.flags & F_SENDING_ERROR:
        _emit_if_new_error(record, message_id, event.org_id, event.contact_id, effects)
    return "applied"


def _note_first(record: MessageRecord, flag: int, seconds: int) -> bool:
    if flag == F_OPEN:
        if record.first_open == 0 or seconds < record.first_open:
            record.first_open = seconds
            return True
    elif flag == F_CLICK:
        if record.first_click == 0 or seconds < record.first_click:
            record.first_click = seconds
            return True
    elif flag == F_REPLY and (record.first_reply == 0 or seconds < record.first_reply):
        record.first_reply = seconds
        return True
    return False


def apply_interaction(
    state: ContactState,
    event: InteractionEvent,
    ts: int,
    now_us: int,
    cfg: CountingConfig,
) -> tuple[Outcome, int]:
    """Returns the outcome code and how many pending entries were given up to make room."""
    flag = INTERACTION_FLAGS[type(event)]
    message_id = event.message_id
    record = state.messages.get(message_id)
    if record is not None:
        at = record.dispatched_at
        assert at is not None
        old = record.flags
        new = old | flag
        changed = _note_first(record, flag, ts // US_PER_SECOND) if flag != F_DELIVERY else False
        if new == old:
            return ("applied" if changed else "unchanged"), 0
        record.flags = new
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
        record = MessageRecord(event.channel, None, flag, pending_since=now_us, first_event_at=ts)
        pending[message_id] = record
    else:
        record.flags |= flag
        if ts < record.first_event_at:
            record.first_event_at = ts
    _note_first(record, flag, ts // US_PER_SECOND)
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
