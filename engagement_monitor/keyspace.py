"""Every key the project builds from ids, in every store, and the way back from a key to its ids.

Ids may contain any character but the few refused by ``models.identifiers`` (SPEC §2), so a key
made by joining ids with a delimiter is ambiguous: org ``t`` with contact ``x}:snap:y`` and org
``t}:snap:x`` with contact ``y`` once shared one Redis key, and so one snapshot (issue 17). This
module is the only place that turns ids into keys, and every function here is injective: each
id is percent-escaped for the characters that delimit it, so distinct parts never give the same
key, and each ``split_*`` gives the parts back. Nothing else may concatenate ids.

Escaping is percent-encoding of the UTF-8 bytes of a character (``%7B`` for ``{``), applied
only to ``%`` itself and the characters a place reserves, so ordinary ids stay readable:
``em:v2:{acme}:snap:42``.

- Kafka inputs (SPEC §2): ``record_key``, ``<org>:<contact>`` unescaped. A producer's key,
  ambiguous by itself: it only picks a partition and is never trusted for identity (the worker
  reads the ids from the value).
- The table, and every Kafka record the worker writes for a contact: ``state_key``,
  ``<org>:<contact>`` with ``%`` and ``:`` escaped in the org (the contact is everything after
  the first ``:``).
- Redis: ``em:v2:{<org>}:snap:<contact>`` and the other ``redis_*`` keys, and segment members
  ``<inverted rate>|<contact>``: ``%``, ``{``, ``}``, ``:``, ``|``, the glob characters
  ``* ? [ ] \\`` and control characters escaped in every id.

``state_key`` is the table key the worker always used (since 2026-11): the same bytes as the
canonical record key for every org id without ``%`` or ``:``, so existing tables and changelogs
stay readable. The Redis layout moved to the ``em:v2:`` namespace with this encoding; the old
``em:{...}`` and ``em:meta:`` keys are purged by the worker (``LEGACY_REDIS_PATTERNS``).

Glob characters are escaped too because a ``SCAN MATCH em:v2:{<org>}:*`` must match one org's
keys only: an org id ``a*`` would otherwise match org ``ab``'s keys.
"""

from __future__ import annotations

import re
from functools import lru_cache

from engagement_monitor.redis_layout import LAYOUT_REVISION

# --------------------------------------------------------------------------- the escape itself
_HEX_RUN = re.compile(r"(?:%[0-9A-F]{2})+")


def _escaper(reserved: str) -> re.Pattern[str]:
    """A pattern matching `%`, the reserved characters, and (for Redis) control characters."""
    return re.compile("[" + re.escape("%" + reserved) + "]")


def _escape(text: str, pattern: re.Pattern[str]) -> str:
    if pattern.search(text) is None:  # the usual id: nothing to escape, no copy
        return text
    return pattern.sub(_percent, text)


def _percent(match: re.Match[str]) -> str:
    # surrogatepass: a lone surrogate never passes validation, but the encoding stays total.
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    return _HEX_RUN.sub(
        lambda m: bytes.fromhex(m.group().replace("%", "")).decode("utf-8", "surrogatepass"),
        text,
    )


# ----------------------------------------------------------------------------------- Kafka
_ORG_IN_STATE_KEY = _escaper(":")


def record_key(org_id: str, contact_id: str) -> bytes:
    """The record key of SPEC §2, ``"{org_id}:{contact_id}"``, as producers send it.

    Ambiguous by itself (org ``a:b`` + contact ``c`` and org ``a`` + contact ``b:c`` share it),
    so it decides a partition and nothing else: the worker reads identity from the value.
    """
    return f"{org_id}:{contact_id}".encode("utf-8", "surrogatepass")


def state_key(org_id: str, contact_id: str) -> bytes:
    """The contact's table key, and the key of every record the worker writes for a contact.

    ``%`` and ``:`` in the org id are escaped, so the first ``:`` always ends the org; for an org
    id without them this is the same bytes as ``record_key`` (what SPEC §4 names as the key).
    """
    return f"{_escape(org_id, _ORG_IN_STATE_KEY)}:{contact_id}".encode("utf-8", "surrogatepass")


def split_state_key(key: bytes) -> tuple[str, str]:
    """(org_id, contact_id) of a key made by ``state_key``."""
    org_id, sep, contact_id = key.decode("utf-8", "surrogatepass").partition(":")
    if not sep:
        raise ValueError(f"not a state key: {key!r}")
    return _unescape(org_id), contact_id


def state_key_has_plain_org(key: bytes) -> bool:
    """True when the key's org needed no escape, i.e. the key is also the record key."""
    return b"%" not in key.partition(b":")[0]


# ----------------------------------------------------------------------------------- Redis
REDIS_NAMESPACE = "em:v2"
OVERALL_SCOPE = "all"
RATE_SCALE = 10000
_REDIS_PART = re.compile(
    "[" + re.escape("%{}:|*?[]\\") + "\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]"
)
# Keys of the layout before this module (plain concatenation). Never read; the worker deletes
# them once (``agents.redis_sink.RedisSink.purge_legacy``). Neither can match a v2 key.
LEGACY_REDIS_PATTERNS: tuple[str, ...] = ("em:{*", "em:meta:*")


@lru_cache(maxsize=65_536)
def redis_part(text: str) -> str:
    """One id as it appears inside a Redis key or member (cached: the same orgs all day)."""
    return _escape(text, _REDIS_PART)


@lru_cache(maxsize=4096)
def _org_prefix(org_id: str) -> str:
    # The hash tag is exactly the escaped org: Redis Cluster hashes what lies between the first
    # `{` and the next `}`, and an escaped id holds neither.
    return f"{REDIS_NAMESPACE}:{{{redis_part(org_id)}}}"


def redis_snapshot_key(org_id: str, contact_id: str) -> str:
    return redis_contact_keys(org_id, contact_id)[0]


def redis_membership_key(org_id: str, contact_id: str) -> str:
    return redis_contact_keys(org_id, contact_id)[1]


def redis_org_prefix(org_id: str) -> str:
    """What every key of the org starts with; the Redis script builds the org's set keys from
    it and a suffix (`segment_suffix`, …), so a contact's membership hash stores suffixes only."""
    return f"{_org_prefix(org_id)}:"


@lru_cache(maxsize=1024)
def segment_suffix(scope: str | None, tier: str) -> str:
    """``scope`` is a channel, or None for the overall segment."""
    return f"seg:{redis_part(scope or OVERALL_SCOPE)}:{redis_part(tier)}"


def redis_segment_key(org_id: str, scope: str | None, tier: str) -> str:
    return redis_org_prefix(org_id) + segment_suffix(scope, tier)


def redis_contact_keys(org_id: str, contact_id: str) -> tuple[str, str, str]:
    """(snapshot, membership, history) keys of one contact, each id escaped once: what the
    worker writes for every contact of a checkpoint."""
    prefix, contact = _org_prefix(org_id), redis_part(contact_id)
    return f"{prefix}:snap:{contact}", f"{prefix}:mem:{contact}", f"{prefix}:hist:{contact}"


def redis_history_key(org_id: str, contact_id: str) -> str:
    """String: the contact's tier changes of the window, newest first (SPEC §7.4)."""
    return redis_contact_keys(org_id, contact_id)[2]


def redis_overview_key(org_id: str) -> str:
    """Hash of counters (SPEC §7.4 overview): `n` (contacts) and `<channel>:<status>`
    (contacts showing the channel with that subscription status; every shown channel has
    one, so their sum is the contacts showing it); the sums of what each contact's membership
    hash says it is counted in (`overview_counters`). Names are short: each contact's hash
    repeats them."""
    return f"{_org_prefix(org_id)}:ov"


@lru_cache(maxsize=1024)  # a few (channel, status) combinations, the same all day
def overview_counters(channels: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The counters of `redis_overview_key` one contact with a snapshot adds 1 to, given the
    (channel, status) of each channel its snapshot shows."""
    return (CONTACTS_COUNTER, *(subscription_counter(ch, status) for ch, status in channels))


CONTACTS_COUNTER = "n"


@lru_cache(maxsize=1024)
def subscription_counter(channel: str, status: str) -> str:
    return f"{redis_part(channel)}:{redis_part(status)}"


@lru_cache(maxsize=64)
def search_suffix(field: str) -> str:
    return f"find:{redis_part(field)}"


def redis_search_key(org_id: str, field: str) -> str:
    """Sorted set, scores 0: members `<lower-cased value>|<contact>` for prefix search."""
    return redis_org_prefix(org_id) + search_suffix(field)


def redis_heat_key(org_id: str) -> str:
    """Hash: `<channel>:<hour of week>` -> the org's counted interactions of the window in
    that hour (issue 15 landing heatmap), the sum of its contacts' histograms."""
    return f"{_org_prefix(org_id)}:heat"


@lru_cache(maxsize=64)
def changes_suffix(direction: str) -> str:
    return f"chg:{redis_part(direction)}"


def redis_changes_key(org_id: str, direction: str) -> str:
    """Sorted set, scores 0: the org's overall tier changes of the last 7 days that went this
    way (up, down, new, lost), members `<epoch seconds>|<previous>|<tier>|<contact>`."""
    return redis_org_prefix(org_id) + changes_suffix(direction)


def contact_member(contact_id: str) -> str:
    return redis_part(contact_id)


def search_member(value: str, contact_id: str) -> str:
    """`<value>|<contact>`: the value as indexed (may hold `|`), then the escaped contact
    (which never does)."""
    return f"{value}|{redis_part(contact_id)}"


def parse_search_member(member: str) -> tuple[str, str]:
    """(indexed value, contact_id) of a search member."""
    value, _, contact = member.rpartition("|")
    return value, _unescape(contact)


def parse_contact_member(member: str) -> str:
    return _unescape(member)


def redis_provider_message_key(org_id: str, provider: str, provider_message_id: str) -> str:
    """Our (contact, message) ids of a message a provider knows by its own id (WhatsApp's
    wamid), written by the API's webhooks (SPEC §7.5) so a reply naming it can be counted."""
    return f"{_org_prefix(org_id)}:pmsg:{redis_part(provider)}:{redis_part(provider_message_id)}"


def redis_org_pattern(org_id: str) -> str:
    """A SCAN pattern matching every key of one org, and of no other."""
    return f"{_org_prefix(org_id)}:*"


def redis_org_prefix_pattern(org_prefix: str) -> str:
    """A SCAN pattern matching the keys of every org whose id starts with `org_prefix` (tools)."""
    return f"{REDIS_NAMESPACE}:{{{redis_part(org_prefix)}*"


def redis_meta_pattern(app_id: str) -> str:
    """A SCAN pattern matching every sentinel of one app id."""
    return f"{REDIS_NAMESPACE}:meta:{redis_part(app_id)}:*"


def redis_sentinel_key(app_id: str, partition: int) -> str:
    """Present while partition `partition`'s snapshots are all in Redis (see agents.redis_sink)."""
    return f"{REDIS_NAMESPACE}:meta:{redis_part(app_id)}:p{partition}:r{LAYOUT_REVISION}"


def split_redis_key(key: str) -> tuple[str, ...]:
    """The parts of a Redis key made here, unescaped: ("snap", org, contact),
    ("mem", org, contact), ("seg", org, scope, tier), ("pmsg", org, provider, id) or
    ("meta", app, "p<n>", "r<layout revision>")."""
    prefix = REDIS_NAMESPACE + ":"
    if not key.startswith(prefix):
        raise ValueError(f"not a key of the {REDIS_NAMESPACE} layout: {key!r}")
    rest = key[len(prefix) :]
    if rest.startswith("meta:"):
        return ("meta", *(_unescape(p) for p in rest[5:].split(":")))
    if not rest.startswith("{") or "}:" not in rest:
        raise ValueError(f"not a key of the {REDIS_NAMESPACE} layout: {key!r}")
    org, _, tail = rest[1:].partition("}:")
    kind, *parts = tail.split(":")
    return (kind, _unescape(org), *(_unescape(p) for p in parts))


def segment_member(contact_id: str, rate: float | None) -> str:
    """``<inverted rate>|<contact>``: members sort most engaged first, then by contact.

    ``<inverted rate>`` is ``10000 - rate in hundredths``, five digits, so the first ``|`` ends it
    and a page cursor is simply the last member returned.
    """
    return f"{segment_part(rate)}|{redis_part(contact_id)}"


@lru_cache(maxsize=16_384)  # a rate is one of 10,001 values
def segment_part(rate: float | None) -> str:
    """A segment member without its contact: what the membership hash keeps."""
    hundredths = round((rate or 0.0) * 100)
    return f"{RATE_SCALE - hundredths:05d}"


def parse_member(member: str) -> tuple[str, float]:
    """(contact_id, rate) of a segment member."""
    inverted, _, contact = member.partition("|")
    return _unescape(contact), (RATE_SCALE - int(inverted)) / 100
