"""Registration fields and list memberships: last writer wins, by (occurred_at, event id).

Keying the winner on event time and a digest of the event id (never on arrival order) is what
makes a late, older edit lose against a newer one that already arrived.
"""

from __future__ import annotations

from typing import Any

from counting.outcome import Outcome
from counting.state import ContactState
from counting.timeutil import to_us
from models.events import ContactListAdded, ContactListRemoved, ContactUpsert

REGISTRATION_FIELDS = ("name", "phone", "email", "created_at", "origin")


def _field_value(event: ContactUpsert, name: str) -> Any:
    if name == "created_at":
        return None if event.created_at is None else to_us(event.created_at)
    if name == "origin":
        # Stored rendered (with its label) so the snapshot needs no model at read time.
        return None if event.origin is None else event.origin.model_dump(mode="json")
    return getattr(event, name)


def apply_upsert(state: ContactState, event: ContactUpsert, ts: int, tie: int) -> Outcome:
    changed = False
    for name in REGISTRATION_FIELDS:
        if name not in event.model_fields_set:
            continue  # absent means "not touched"; an explicit null clears the field
        current = state.registration.get(name)
        if current is None or (ts, tie) > (current[0], current[1]):
            state.registration[name] = (ts, tie, _field_value(event, name))
            changed = True
    return "applied" if changed else "unchanged"


def apply_list(
    state: ContactState, event: ContactListAdded | ContactListRemoved, ts: int, tie: int
) -> Outcome:
    current = state.lists.get(event.list_id)
    if current is not None and (ts, tie) <= (current[0], current[1]):
        return "unchanged"
    if isinstance(event, ContactListAdded):
        state.lists[event.list_id] = (ts, tie, True, event.list_name)
    else:
        # A removal is remembered (until it leaves the window) so that an older "add"
        # arriving late cannot resurrect the membership.
        state.lists[event.list_id] = (ts, tie, False, None)
    return "applied"
