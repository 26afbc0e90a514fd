"""What the org-wide views (SPEC §7.4: overview, search) need to know of one contact, taken
from its snapshot when the worker builds it.

The Redis sink writes these through the same script as the tier segments: so they land in the
same call as the snapshot, are replaced atomically with it, are removed with it, and a
replayed checkpoint never counts a contact twice. The overview's counts (contacts, per
channel, per subscription status) are counters the script moves by the difference between
what the contact was and is counted in; search is a lexicographic range over lower-cased
name, e-mail and phone in per-org sorted sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.stored import history_moment
from engagement_monitor import keyspace as ks
from models.tiers import TIERS

SEARCH_FIELDS = ("name", "email", "phone")
MAX_SEARCH_VALUE = 256  # longer values are indexed by their first 256 characters
CHANGES_HORIZON_SECONDS = 7 * 86400  # the landing counts tier changes of the last 24 h and 7 days
DIRECTIONS = ("up", "down", "new", "lost")  # what a tier change did; "new": first tier, "lost":
# none any more (every delivery left the window, or the contact was deleted)


@dataclass(frozen=True, slots=True)
class OrgIndex:
    """``search``: (field, lower-cased value) for each of name / email / phone that is set;
    ``channels``: (channel, status) for each channel the snapshot shows; ``heat``: its
    interactions by channel and hour of week (`heat_field`); ``changes``: its overall tier
    changes of the last 7 days as membership fields (`change_members`)."""

    search: tuple[tuple[str, str], ...] = ()
    channels: tuple[tuple[str, str], ...] = ()
    heat: str = ""
    changes: tuple[tuple[str, str], ...] = ()


NO_INDEX = OrgIndex()


def search_value(text: str) -> str:
    """How a value is indexed and how a query is compared: case-folded, trimmed, bounded."""
    return text.strip().casefold()[:MAX_SEARCH_VALUE]


def phone_value(text: str) -> str:
    """Phones are indexed by their digits, so `5511`, `+5511` and `+55 11` all find
    `+5511999990000`."""
    return "".join(c for c in text if c.isdigit())[:MAX_SEARCH_VALUE]


def heat_field(hours: Mapping[str, Mapping[int, int]]) -> str:
    """The contact's hour-of-week histogram (the one its best send times come from) as one
    string, `<channel>:<hour of week>=<n>` joined by `;`, in a fixed order: the Redis script
    compares it with the one it holds and adds only the difference to the org's heatmap, so a
    replayed write adds nothing and a removed contact takes its counts away. Channel names are
    lower-case identifiers (the settings refuse others), so they never hold `:`, `;` or `=`."""
    return ";".join(
        f"{channel}:{how}={n}"
        for channel in sorted(hours)
        for how, n in sorted(hours[channel].items())
        if n
    )


def parse_heat_field(text: str) -> dict[str, dict[int, int]]:
    """The inverse of `heat_field` (also reads the org heatmap's `<channel>:<hour>` fields)."""
    out: dict[str, dict[int, int]] = {}
    for item in filter(None, text.split(";")):
        where, _, n = item.partition("=")
        channel, _, how = where.rpartition(":")
        out.setdefault(channel, {})[int(how)] = int(n)
    return out


def direction(previous: str | None, tier: str | None) -> str:
    if previous is None:
        return "new"
    if tier is None:
        return "lost"
    return "up" if TIERS.index(tier) > TIERS.index(previous) else "down"


def change_members(history: Sequence[Sequence[Any]], now: datetime) -> tuple[tuple[str, str], ...]:
    """The contact's overall tier changes of the last 7 days as (membership field, member
    part): one sorted set per direction, members `<epoch seconds, 10 digits>|<previous>|<tier>|
    <contact>` (`-` for no tier), so a count since a moment is one ZLEXCOUNT. The field is the
    set's suffix and the part, as a contact may change several times the same way.
    ``history``: rows `[changed_at, channel, previous_tier, tier, …]`, oldest first."""
    since = now.timestamp() - CHANGES_HORIZON_SECONDS
    out: list[tuple[str, str]] = []
    for changed_at, channel, previous, tier, *_ in reversed(history):
        seconds = history_moment(changed_at)[1]
        if seconds < since:
            break  # oldest first: the rest is older still
        if channel is not None:
            continue  # the landing counts the overall tier's changes
        part = f"{seconds:010d}|{previous or '-'}|{tier or '-'}"
        out.append((f"{ks.changes_suffix(direction(previous, tier))}|{part}", part))
    return tuple(out)


def org_index(
    snapshot: dict[str, Any] | None,
    hours: Mapping[str, Mapping[int, int]] | None = None,
    changes: tuple[tuple[str, str], ...] = (),
) -> OrgIndex:
    if snapshot is None:
        return OrgIndex()
    registration = snapshot.get("registration") or {}
    search = tuple(
        (name, phone_value(value) if name == "phone" else search_value(value))
        for name in SEARCH_FIELDS
        if isinstance(value := registration.get(name), str) and value.strip()
    )
    channels = tuple((ch, figures["status"]) for ch, figures in snapshot["channels"].items())
    return OrgIndex(search, channels, heat_field(hours) if hours else "", changes)
