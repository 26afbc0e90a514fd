"""What the org-wide views (SPEC §7.4: overview, search) need to know of one contact, taken
from its snapshot when the worker builds it.

The Redis sink writes these as members of per-org sorted sets, beside the tier segments and
through the same script: so they land in the same call as the snapshot, are replaced
atomically with it, are removed with it, and a replayed checkpoint never counts a contact
twice. Counts are then ZCARDs (exact, never a scan): contacts of the org, contacts showing a
channel, contacts subscribed / unsubscribed per channel. Search is a lexicographic range over
lower-cased name, e-mail and phone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEARCH_FIELDS = ("name", "email", "phone")
MAX_SEARCH_VALUE = 256  # longer values are indexed by their first 256 characters


@dataclass(frozen=True, slots=True)
class OrgIndex:
    """``search``: (field, lower-cased value) for each of name / email / phone that is set;
    ``channels``: (channel, status) for each channel the snapshot shows."""

    search: tuple[tuple[str, str], ...] = ()
    channels: tuple[tuple[str, str], ...] = ()


NO_INDEX = OrgIndex()


def search_value(text: str) -> str:
    """How a value is indexed and how a query is compared: case-folded, trimmed, bounded."""
    return text.strip().casefold()[:MAX_SEARCH_VALUE]


def phone_value(text: str) -> str:
    """Phones are indexed by their digits, so `5511`, `+5511` and `+55 11` all find
    `+5511999990000`."""
    return "".join(c for c in text if c.isdigit())[:MAX_SEARCH_VALUE]


def org_index(snapshot: dict[str, Any] | None) -> OrgIndex:
    if snapshot is None:
        return OrgIndex()
    registration = snapshot.get("registration") or {}
    search = tuple(
        (name, phone_value(value) if name == "phone" else search_value(value))
        for name in SEARCH_FIELDS
        if isinstance(value := registration.get(name), str) and value.strip()
    )
    channels = tuple((ch, figures["status"]) for ch, figures in snapshot["channels"].items())
    return OrgIndex(search, channels)
