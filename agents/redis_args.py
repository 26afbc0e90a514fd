"""The arguments of the Redis write script for a chunk of contacts: compiled with the worker's
hot modules (`engagement_monitor.native`), as a checkpoint turns every written contact into
them (~20 strings each).

Pure: what Redis must show for each contact (`agents.processor.SnapshotWrite`) in, the KEYS
and ARGV of `engagement_monitor.redis_layout.WRITE_CONTACTS_LUA` out. Every key, field and
member comes from `engagement_monitor.keyspace` (the one place ids become keys); the sink
(`agents.redis_sink`) sends them.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.org_index import OrgIndex
from agents.processor import SnapshotWrite
from agents.stored import Published
from engagement_monitor import keyspace as ks


def segment_members(tiers: Published) -> list[tuple[str, str]]:
    """(membership field, member part) of every segment the contact is in: one per scope with a
    tier. The field is the segment's key suffix; the member is `<part>|<contact>`."""
    return [
        (ks.segment_suffix(scope, tier), ks.segment_part(rate))
        for scope, (tier, rate) in tiers.items()
        if tier is not None
    ]


def index_members(index: OrgIndex) -> list[tuple[str, str]]:
    """(membership field, member part) of the org-wide sorted sets (SPEC §7.4, issue 15) the
    contact is in: each search field it has, and its overall tier changes of the last 7 days."""
    out = [(ks.search_suffix(field), value) for field, value in index.search]
    out += index.changes
    return out


def script_input(
    org_id: str, writes: Sequence[SnapshotWrite]
) -> tuple[list[str], list[bytes | str | int]]:
    """KEYS and ARGV of `WRITE_CONTACTS_LUA` for contacts of one org: per contact its three
    keys, then version, snapshot, history, member, heat, the overview counters it adds to
    and its (field, member part) pairs, each list preceded by its length."""
    keys: list[str] = []
    args: list[bytes | str | int] = [ks.redis_org_prefix(org_id)]
    for write in writes:
        snapshot_key, membership_key, history_key = ks.redis_contact_keys(org_id, write.contact_id)
        keys.append(snapshot_key)
        keys.append(membership_key)
        keys.append(history_key)
        member = ks.contact_member(write.contact_id)
        snapshot = write.snapshot
        if snapshot is None:
            args += (write.version, b"", b"", member, b"", 0, 0)
            continue
        index = write.index
        counters = ks.overview_counters(index.channels)
        history = write.history
        args += (write.version, snapshot, history if history is not None else b"", member)
        args.append(index.heat)
        args.append(len(counters))
        args += counters
        members = segment_members(write.tiers)
        if index.search or index.changes:
            members += index_members(index)
        args.append(len(members))
        for field, part in members:
            args.append(field)
            args.append(part)
    return keys, args


def script_calls(
    writes: Sequence[SnapshotWrite], chunk: int
) -> list[tuple[list[str], list[bytes | str | int]]]:
    """KEYS and ARGV of every script call for these contacts: one per org and `chunk`
    contacts (a call's keys must share the org's hash tag, for Redis Cluster)."""
    by_org: dict[str, list[SnapshotWrite]] = {}
    for write in writes:
        group = by_org.get(write.org_id)
        if group is None:
            group = by_org[write.org_id] = []
        group.append(write)
    calls: list[tuple[list[str], list[bytes | str | int]]] = []
    for org_id, group in by_org.items():
        for start in range(0, len(group), chunk):
            calls.append(script_input(org_id, group[start : start + chunk]))
    return calls
