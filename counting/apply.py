"""The single entry point that folds one parsed event into a contact's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from hashlib import blake2b
from typing import assert_never

from counting.config import CountingConfig
from counting.deletion import apply_delete
from counting.events import (
    Bounce,
    Click,
    Complaint,
    Delivery,
    Dispatch,
    Engagement,
    LightEvent,
    Open,
    Reply,
    Unsubscribe,
    lighten,
)
from counting.expiry import expire_us, is_due
from counting.ids import tie
from counting.messages import apply_dispatch, apply_interaction, refresh_sending_errors
from counting.outcome import Outcome
from counting.profile import apply_list, apply_upsert
from counting.state import SUBSCRIBE, UNSUBSCRIBE, ContactState
from counting.subscriptions import insert
from counting.timeutil import DAY_US, EPOCH, ONE_US, to_us
from models.events import (
    CONTACT_MODELS,
    ContactDelete,
    ContactListAdded,
    ContactListRemoved,
    ContactSubscribe,
    ContactUpsert,
    Event,
)
from models.outputs import DispatchStatus


@dataclass(slots=True, init=False)
class ApplyOutcome:
    """``code`` feeds metrics: ``unchanged`` is a valid event that changed nothing (a second
    open, a replayed dispatch whose id left the dedupe ring); ``pending`` waits for its
    dispatch; ``pending_dropped`` counts waiters that gave up during this call."""

    state: ContactState | None
    code: Outcome
    effects: list[DispatchStatus] = field(default_factory=list)
    pending_dropped: int = 0

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`), and it runs once per event.
    def __init__(
        self,
        state: ContactState | None,
        code: Outcome,
        effects: list[DispatchStatus] | None = None,
        pending_dropped: int = 0,
    ) -> None:
        self.state = state
        self.code = code
        self.effects = [] if effects is None else effects
        self.pending_dropped = pending_dropped


_last_now: list[tuple[datetime, int]] = []


def _now_us(now: datetime) -> int:
    # A worker passes the same ``now`` for a whole batch; converting it once per batch
    # instead of once per event is a measurable share of the per-event budget.
    if _last_now and _last_now[0][0] is now:
        return _last_now[0][1]
    value = to_us(now)
    _last_now[:] = [(now, value)]
    return value


def _timeline_event(
    state: ContactState,
    event: Unsubscribe | ContactSubscribe | Complaint,
    kind: int,
    ts: int,
    cfg: CountingConfig,
    effects: list[DispatchStatus],
) -> Outcome:
    timeline = state.subscriptions.setdefault(event.channel, [])
    if not insert(timeline, (ts, kind)):
        return "unchanged"
    refresh_sending_errors(state, event.channel, ts, cfg, event.org_id, event.contact_id, effects)
    return "applied"


def apply_event(
    state: ContactState | None, event: Event | LightEvent, now: datetime, cfg: CountingConfig
) -> ApplyOutcome:
    """Fold ``event`` into ``state`` (mutated in place and returned; None makes a new one).

    Order-independent and idempotent by construction (see docs/counting.md); the dedupe ring
    only saves work. ``now`` is processing time: it places the window and the pending waits.
    An engagement event may come as its model (tests, the simulator) or already light (the
    worker, through `counting.reading`); the rules read the light form.
    """
    if not isinstance(event, Engagement) and not isinstance(event, CONTACT_MODELS):
        event = lighten(event)
    now_us = _last_now[0][1] if _last_now and _last_now[0][0] is now else _now_us(now)
    ts = (event.occurred_at - EPOCH) // ONE_US  # to_us, inlined: this runs per event
    if ts < now_us - cfg.window_us:
        return ApplyOutcome(state, "too_old")
    if state is None:
        state = ContactState()
    elif state.tombstone is not None and ts < state.tombstone:
        return ApplyOutcome(state, "dropped_deleted")
    event_digest = blake2b(event.event_id.encode(), digest_size=8).digest()  # ids.digest
    seen = state.seen
    if event_digest in seen:
        return ApplyOutcome(state, "duplicate")
    oldest = state.oldest_dispatch
    due = (oldest is not None and oldest < now_us - cfg.window_us) or (
        (state.pending or state.tombstone is not None) and is_due(state, now_us, cfg)
    )
    dropped = expire_us(state, now_us, cfg) if due else 0
    effects: list[DispatchStatus] = []
    code: Outcome
    # Every event type is named: a new one that is not handled here fails mypy (assert_never)
    # instead of falling through to another type's rule.
    match event:
        case Delivery() | Open() | Click() | Reply() | Bounce():
            code, gave_up = apply_interaction(state, event, ts, now_us, cfg)
            dropped += gave_up
        case Complaint():
            # A complaint counts on its message and unsubscribes the channel as of its time,
            # exactly as an unsubscribe event would (SPEC §7.2).
            code, gave_up = apply_interaction(state, event, ts, now_us, cfg)
            dropped += gave_up
            timeline = _timeline_event(state, event, UNSUBSCRIBE, ts, cfg, effects)
            if code == "unchanged":
                code = timeline
        case Dispatch():
            code = apply_dispatch(state, event, ts, cfg, effects)
        case Unsubscribe():
            code = _timeline_event(state, event, UNSUBSCRIBE, ts, cfg, effects)
        case ContactSubscribe():
            code = _timeline_event(state, event, SUBSCRIBE, ts, cfg, effects)
        case ContactUpsert():
            code = apply_upsert(state, event, ts, tie(event_digest))
        case ContactListAdded() | ContactListRemoved():
            code = apply_list(state, event, ts, tie(event_digest))
        case ContactDelete():
            code = apply_delete(state, ts, cfg)
        case _:
            assert_never(event)
    seen[event_digest] = ts // DAY_US
    if len(seen) > cfg.dedupe_max_per_contact:
        del seen[next(iter(seen))]
    if not isinstance(event, ContactDelete) and (state.first_seen is None or ts < state.first_seen):
        state.first_seen = ts
    return ApplyOutcome(state, code, effects, dropped)
