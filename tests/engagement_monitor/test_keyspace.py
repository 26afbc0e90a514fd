"""Every key built from ids is injective, decodes back to its ids, and keeps orgs apart (issue 17).

The ids are drawn from alphabets full of the characters that delimit keys (`{ } : | % \\ /`),
glob characters, spaces, control characters and non-ASCII text. Control characters are refused
at the door (``models.identifiers``), but the encoding must stay injective for any text, so that
no future path around the validation can make two tenants share a key.
"""

from __future__ import annotations

import fnmatch

from hypothesis import given, settings
from hypothesis import strategies as st

from engagement_monitor import keyspace as ks
from engagement_monitor.redis_layout import LAYOUT_REVISION
from streams.partitioning import contact_partition, state_partition

NASTY = "{}:|%\\/*?[] \t\n\x00\x1f\x7f\x85\u2028é漢🙂"
ids = st.text(alphabet=st.sampled_from(NASTY) | st.characters(), min_size=1, max_size=12)
nasty_ids = st.text(alphabet=st.sampled_from(NASTY + "ab"), min_size=1, max_size=10)
any_id = ids | nasty_ids
pairs = st.tuples(any_id, any_id)
SCOPES = st.sampled_from([None, "sms", "email", "whatsapp"]) | any_id
TIERS = st.sampled_from(["no_engagement", "low", "high", "very_high"]) | any_id

many = settings(max_examples=400, deadline=None)


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first `{` and the next `}`."""
    start = key.index("{")
    end = key.index("}", start + 1)
    return key[start + 1 : end]


# ------------------------------------------------------------------ the reported attack
def test_the_reported_collision_is_gone() -> None:
    victim = ks.redis_snapshot_key("t", "x}:snap:y")
    attacker = ks.redis_snapshot_key("t}:snap:x", "y")
    assert victim != attacker
    assert ks.split_redis_key(victim) == ("snap", "t", "x}:snap:y")
    assert ks.split_redis_key(attacker) == ("snap", "t}:snap:x", "y")
    assert hash_tag(victim) == "t" and hash_tag(attacker) == "t%7D%3Asnap%3Ax"


def test_ordinary_ids_stay_readable() -> None:
    assert ks.redis_snapshot_key("acme", "42") == "em:v2:{acme}:snap:42"
    assert ks.redis_segment_key("acme", None, "high") == "em:v2:{acme}:seg:all:high"
    assert ks.redis_segment_key("acme", "email", "low") == "em:v2:{acme}:seg:email:low"
    assert ks.segment_member("c-1", 62.5) == "03750|c-1"
    assert ks.state_key("acme", "a:b") == b"acme:a:b" == ks.record_key("acme", "a:b")


# ------------------------------------------------------------------ Redis keys
@many
@given(pairs, pairs)
def test_snapshot_and_membership_keys_are_injective(a: tuple[str, str], b: tuple[str, str]) -> None:
    for key_of in (ks.redis_snapshot_key, ks.redis_membership_key):
        assert (key_of(*a) == key_of(*b)) == (a == b)
    assert ks.redis_snapshot_key(*a) != ks.redis_membership_key(*b)


@many
@given(pairs)
def test_snapshot_and_membership_keys_decode_back(a: tuple[str, str]) -> None:
    assert ks.split_redis_key(ks.redis_snapshot_key(*a)) == ("snap", *a)
    assert ks.split_redis_key(ks.redis_membership_key(*a)) == ("mem", *a)


@many
@given(any_id, SCOPES, TIERS, any_id, SCOPES, TIERS)
def test_segment_keys_are_injective_and_decode_back(
    org_a: str, scope_a: str | None, tier_a: str, org_b: str, scope_b: str | None, tier_b: str
) -> None:
    a = (org_a, scope_a or ks.OVERALL_SCOPE, tier_a)
    b = (org_b, scope_b or ks.OVERALL_SCOPE, tier_b)
    key_a = ks.redis_segment_key(org_a, scope_a, tier_a)
    key_b = ks.redis_segment_key(org_b, scope_b, tier_b)
    assert (key_a == key_b) == (a == b)
    assert ks.split_redis_key(key_a) == ("seg", *a)
    assert key_a not in (
        ks.redis_snapshot_key(org_b, tier_b),
        ks.redis_membership_key(org_b, tier_b),
    )


@many
@given(pairs)
def test_the_hash_tag_is_exactly_the_encoded_org(a: tuple[str, str]) -> None:
    org, contact = a
    for key in (
        ks.redis_snapshot_key(org, contact),
        ks.redis_membership_key(org, contact),
        ks.redis_segment_key(org, contact, contact),
    ):
        assert hash_tag(key) == ks.redis_part(org)
        assert ks.split_redis_key(key)[1] == org


@many
@given(pairs, pairs)
def test_an_org_pattern_matches_that_orgs_keys_and_no_others(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    pattern = ks.redis_org_pattern(a[0])
    # The escaped parts hold no glob character, so the pattern is a literal prefix and a `*`.
    assert not any(c in pattern[:-1] for c in "*?[]\\")
    for key in (
        ks.redis_snapshot_key(*b),
        ks.redis_membership_key(*b),
        ks.redis_segment_key(b[0], None, b[1]),
    ):
        assert key.startswith(pattern[:-1]) == (a[0] == b[0])
        assert fnmatch.fnmatchcase(key, pattern) == (a[0] == b[0])


@many
@given(any_id, st.integers(0, 1023), any_id, st.integers(0, 1023))
def test_sentinel_keys_are_injective(app_a: str, p_a: int, app_b: str, p_b: int) -> None:
    key_a, key_b = ks.redis_sentinel_key(app_a, p_a), ks.redis_sentinel_key(app_b, p_b)
    assert (key_a == key_b) == ((app_a, p_a) == (app_b, p_b))
    assert ks.split_redis_key(key_a) == ("meta", app_a, f"p{p_a}", f"r{LAYOUT_REVISION}")
    assert fnmatch.fnmatchcase(key_a, ks.redis_meta_pattern(app_a))


@many
@given(pairs)
def test_no_v2_key_matches_a_legacy_pattern(a: tuple[str, str]) -> None:
    keys = [
        ks.redis_snapshot_key(*a),
        ks.redis_membership_key(*a),
        ks.redis_segment_key(a[0], None, a[1]),
        ks.redis_sentinel_key(a[0], 3),
    ]
    for key in keys:
        assert not any(fnmatch.fnmatchcase(key, p) for p in ks.LEGACY_REDIS_PATTERNS)


# ------------------------------------------------------------------ segment members
@many
@given(any_id, st.integers(0, 10000), any_id, st.integers(0, 10000))
def test_segment_members_are_injective_and_decode_back(
    c_a: str, hundredths_a: int, c_b: str, hundredths_b: int
) -> None:
    rate_a, rate_b = hundredths_a / 100, hundredths_b / 100
    m_a, m_b = ks.segment_member(c_a, rate_a), ks.segment_member(c_b, rate_b)
    assert (m_a == m_b) == ((c_a, hundredths_a) == (c_b, hundredths_b))
    assert ks.parse_member(m_a) == (c_a, rate_a)
    if hundredths_a > hundredths_b:  # the more engaged contact sorts first
        assert m_a < m_b


# ------------------------------------------------------------------ Kafka and table keys
@many
@given(pairs, pairs)
def test_state_keys_are_injective_and_decode_back(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert (ks.state_key(*a) == ks.state_key(*b)) == (a == b)
    assert ks.split_state_key(ks.state_key(*a)) == a


@many
@given(pairs)
def test_a_state_key_lives_on_its_contacts_partition(a: tuple[str, str]) -> None:
    assert state_partition(ks.state_key(*a), 8) == contact_partition(*a, 8)
    if ":" not in a[0] and "%" not in a[0]:
        assert ks.state_key(*a) == ks.record_key(*a)


def test_the_record_key_is_ambiguous_and_only_partitions() -> None:
    # What producers send (SPEC §2) cannot tell these two contacts apart; the worker reads the
    # ids from the value, and every key it builds itself tells them apart.
    assert ks.record_key("a:b", "c") == ks.record_key("a", "b:c")
    assert ks.state_key("a:b", "c") != ks.state_key("a", "b:c")
    assert ks.redis_snapshot_key("a:b", "c") != ks.redis_snapshot_key("a", "b:c")


def test_a_key_not_of_the_layout_is_refused() -> None:
    for key in ("em:{t}:snap:x", "em:v2:t:snap:x", "other"):
        try:
            ks.split_redis_key(key)
        except ValueError:
            continue
        raise AssertionError(f"{key!r} was accepted")
