"""The generator: deterministic, complete (every topic, record type and origin), realistic.

Everything here runs without Kafka. The good records are checked with the worker's own parser
and counting core, so a generator change that the worker would reject or count differently
fails here first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from counting import CountingConfig, apply_event, build_snapshot
from models.events import TOPICS, RecordRejected, parse_record
from models.origin import ORIGIN_TYPES
from simulator import MALFORMED_CODES, SimConfig, SimRecord, generate, personas_of
from simulator.summary import summarize

CFG = CountingConfig()


def _values(records: list[SimRecord], kinds: tuple[str, ...] = ("good",)) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records if r.kind in kinds]


def test_same_seed_same_stream_other_seed_other_stream(
    sim_config: SimConfig, sim_records: list[SimRecord]
) -> None:
    small = replace(sim_config, contacts_per_org=20)
    assert list(generate(small)) == list(generate(small))
    assert list(generate(small)) != list(generate(replace(small, seed=8)))
    assert sim_records == list(generate(sim_config))


def test_chunking_changes_order_not_content(sim_config: SimConfig) -> None:
    # Each contact draws from its own seeded stream, so content does not depend on chunking.
    small = replace(sim_config, contacts_per_org=30, malformed_share=0.0, duplicate_share=0.0)
    one = sorted(r.value for r in generate(small))
    many = sorted(r.value for r in generate(replace(small, chunk_contacts=7)))
    assert one == many


def test_every_topic_contact_type_and_origin_variant_appears(
    sim_records: list[SimRecord],
) -> None:
    good = [r for r in sim_records if r.kind == "good"]
    assert {r.topic for r in good} == set(TOPICS)
    contact = [orjson.loads(r.value) for r in good if r.topic == "contact"]
    assert {v["type"] for v in contact} == {
        "upsert",
        "delete",
        "list_added",
        "list_removed",
        "subscribe",
    }
    origins = [v["origin"] for v in contact if "origin" in v]
    assert {o["type"] for o in origins} == set(ORIGIN_TYPES)
    variants = {(o["type"], o.get("channel"), "account" in o) for o in origins}
    assert ("direct", "webchat", False) in variants
    assert ("direct", "whatsapp", True) in variants
    assert ("chatbot", "whatsapp", True) in variants
    assert ("chatbot", "webchat", False) in variants
    assert any(v["type"] == "list_added" and "list_name" in v for v in contact)
    dispatches = [orjson.loads(r.value) for r in good if r.topic == "dispatch"]
    assert {d["dispatch_kind"] for d in dispatches} == {"single", "automated"}
    assert any(d.get("campaign_id", "").startswith("cmp-") for d in dispatches)
    assert {d["channel"] for d in dispatches} == {"sms", "email", "whatsapp"}
    clicks = [orjson.loads(r.value) for r in good if r.topic == "click"]
    assert any("url" in c for c in clicks) and any("url" not in c for c in clicks)


def test_opens_only_on_email_and_whatsapp_replies_only_on_sms_and_whatsapp(
    sim_records: list[SimRecord],
) -> None:
    good = [(r.topic, orjson.loads(r.value)) for r in sim_records if r.kind == "good"]
    assert {v["channel"] for t, v in good if t == "open"} == {"email", "whatsapp"}
    assert {v["channel"] for t, v in good if t == "reply"} == {"sms", "whatsapp"}


def test_shares_of_malformed_and_duplicates_are_roughly_as_configured(
    sim_config: SimConfig, sim_records: list[SimRecord]
) -> None:
    kinds = Counter(r.kind for r in sim_records)
    total = len(sim_records)
    assert 0.6 * 0.01 < kinds["malformed"] / total < 1.4 * 0.01
    assert 0.7 * 0.02 < kinds["duplicate"] / total < 1.3 * 0.02
    heavy = list(
        generate(
            replace(sim_config, contacts_per_org=40, malformed_share=0.1, duplicate_share=0.05)
        )
    )
    kinds = Counter(r.kind for r in heavy)
    assert 0.085 < kinds["malformed"] / len(heavy) < 0.115
    assert 0.04 < kinds["duplicate"] / len(heavy) < 0.06
    none = list(
        generate(replace(sim_config, contacts_per_org=10, malformed_share=0, duplicate_share=0))
    )
    assert {r.kind for r in none} == {"good"}


def test_duplicates_repeat_an_earlier_good_record(sim_records: list[SimRecord]) -> None:
    seen: set[tuple[str, bytes | None, bytes]] = set()
    for r in sim_records:
        ident = (r.topic, r.key, r.value)
        if r.kind == "good":
            assert ident not in seen, "a good record is never repeated as good"
            seen.add(ident)
        elif r.kind == "duplicate":
            assert ident in seen


def test_every_good_record_passes_the_worker_parser(
    sim_config: SimConfig, sim_records: list[SimRecord]
) -> None:
    event_ids: Counter[str] = Counter()
    for r in sim_records:
        if r.kind == "malformed":
            continue
        event = parse_record(r.topic, r.value, sim_config.now, CFG)
        if r.kind == "good":
            event_ids[event.event_id] += 1
    assert event_ids and max(event_ids.values()) == 1


def test_malformed_records_are_rejected_with_their_code(
    sim_config: SimConfig, sim_records: list[SimRecord]
) -> None:
    codes: Counter[str | None] = Counter()
    for r in sim_records:
        if r.kind != "malformed":
            assert r.expected_code is None
            continue
        with pytest.raises(RecordRejected) as info:
            parse_record(r.topic, r.value, sim_config.now, CFG)
        assert info.value.code == r.expected_code, (info.value, r)
        codes[r.expected_code] += 1
    assert set(codes) == set(MALFORMED_CODES)
    oversize = [r for r in sim_records if r.expected_code == "oversize"]
    assert all(len(r.value) > CFG.max_record_bytes for r in oversize)


def test_event_times_are_in_the_span_except_a_few_just_older_than_the_window(
    sim_config: SimConfig, sim_records: list[SimRecord]
) -> None:
    now = sim_config.now
    span_start = now - timedelta(days=sim_config.days)
    window_start = now - timedelta(days=sim_config.window_days)
    times = [datetime.fromisoformat(v["occurred_at"]) for v in _values(sim_records)]
    assert max(times) <= now
    old = [t for t in times if t < span_start]
    assert all(window_start - timedelta(days=4) <= t < window_start for t in old)
    assert 0 < len(old) < 0.03 * len(times)
    # the span is used from end to end
    assert min(t for t in times if t >= span_start) < span_start + timedelta(days=3)
    assert max(times) > now - timedelta(days=1)


def test_interactions_come_a_little_after_their_dispatch(sim_records: list[SimRecord]) -> None:
    dispatched: dict[tuple[str, str, str], datetime] = {}
    later: list[tuple[tuple[str, str, str], datetime]] = []
    for r in sim_records:
        if r.kind != "good" or r.topic in ("contact", "unsubscribe"):
            continue
        v = orjson.loads(r.value)
        ident = (v["org_id"], v["contact_id"], v["message_id"])
        moment = datetime.fromisoformat(v["occurred_at"])
        if r.topic == "dispatch":
            dispatched[ident] = moment
        else:
            later.append((ident, moment))
    delays = [moment - dispatched[ident] for ident, moment in later]
    assert len(delays) == len(later), "every interaction belongs to a dispatched message"
    assert all(timedelta(0) < d < timedelta(days=5) for d in delays)


def test_stream_is_locally_out_of_order(sim_records: list[SimRecord]) -> None:
    seen: set[str] = set()
    early = 0
    for r in sim_records:
        if r.kind != "good" or r.topic in ("contact", "unsubscribe"):
            continue
        v = orjson.loads(r.value)
        if r.topic == "dispatch":
            seen.add(v["message_id"])
        elif v["message_id"] not in seen:
            early += 1
    assert early > 0, "some interactions must arrive before their dispatch"


def test_keys_are_mostly_canonical_some_missing_some_foreign(
    sim_records: list[SimRecord],
) -> None:
    kinds: Counter[str] = Counter()
    for r in sim_records:
        if r.kind != "good":
            continue
        v = orjson.loads(r.value)
        if r.key is None:
            kinds["none"] += 1
        elif r.key == f"{v['org_id']}:{v['contact_id']}".encode():
            kinds["canonical"] += 1
        else:
            kinds["other"] += 1
    total = sum(kinds.values())
    assert kinds["canonical"] / total > 0.9
    assert kinds["none"] > 0 and kinds["other"] > 0


def test_profiles_carry_e164_phones_and_emails(sim_records: list[SimRecord]) -> None:
    upserts = [
        v
        for r in sim_records
        if r.kind == "good" and r.topic == "contact"
        for v in [orjson.loads(r.value)]
        if v["type"] == "upsert"
    ]
    phones = [v["phone"] for v in upserts if v.get("phone")]
    emails = [v["email"] for v in upserts if v.get("email")]
    assert len(phones) > len(upserts) / 2 and len(emails) > len(upserts) / 2
    country = {"acme": "+55", "globex": "+1", "initech": "+351"}  # the org's market
    assert all(v["phone"].startswith(country[v["org_id"]]) for v in upserts if v.get("phone"))
    assert all(p.startswith("+") and p[1:].isdigit() and 3 <= len(p) <= 16 for p in phones)
    assert all("@" in e and "." in e.split("@")[1] for e in emails)
    assert any(v.get("email", "") is None for v in upserts), "an explicit null clears a field"


@pytest.fixture(scope="module")
def applied(sim_config: SimConfig, sim_records: list[SimRecord]) -> dict[str, Any]:
    return _apply_all(sim_config, sim_records)


def test_unsubscribes_resubscribes_and_sending_errors_happen(
    applied: dict[str, Any], sim_records: list[SimRecord]
) -> None:
    outcomes = applied
    snapshots = outcomes["snapshots"]
    statuses = Counter(
        ch["status"] for snap in snapshots.values() if snap for ch in snap["channels"].values()
    )
    assert statuses["unsubscribed"] > 0 and statuses["subscribed"] > 0
    assert outcomes["sending_errors"] > 0
    assert any(
        v["type"] == "subscribe"
        for r in sim_records
        if r.kind == "good" and r.topic == "contact"
        for v in [orjson.loads(r.value)]
    )
    assert outcomes["too_old"] > 0, "the records just older than the window are ignored"


def test_personas_engage_differently(sim_config: SimConfig, sim_records: list[SimRecord]) -> None:
    summary = summarize(sim_records, sim_config)
    p = summary.personas
    assert set(p) == {"enthusiast", "regular", "lurker", "sms_only", "dormant"}

    def rate(name: str) -> float:
        value = p[name].open_rate
        assert value is not None
        return value

    assert rate("enthusiast") > rate("regular") > rate("lurker") > rate("dormant")
    engagement = {name: f.engagement_rate or 0.0 for name, f in p.items()}
    assert engagement["enthusiast"] > 60 > engagement["regular"] > engagement["dormant"]
    assert engagement["dormant"] < 10
    assert p["sms_only"].open_tracked_delivered == 0


def test_interactions_cluster_at_persona_hours_in_the_org_zone(
    sim_config: SimConfig, sim_records: list[SimRecord]
) -> None:
    p = summarize(sim_records, sim_config).personas
    lurker = p["lurker"].hours
    night = sum(lurker[h] for h in (21, 22, 23, 0))
    assert night > 0.5 * sum(lurker.values())
    enthusiast = set(p["enthusiast"].top_hours(3))
    assert enthusiast <= {6, 7, 8, 11, 12, 13, 19, 20, 21}


def test_tiers_follow_personas_through_the_counting_core(
    sim_config: SimConfig, applied: dict[str, Any]
) -> None:
    snapshots = applied["snapshots"]
    personas = personas_of(sim_config)
    tiers: dict[str, Counter[str | None]] = {}
    for key, snap in snapshots.items():
        tier = snap["engagement"]["tier"] if snap else None
        tiers.setdefault(personas[key], Counter())[tier] += 1
    high = ("high", "very_high")

    def share(name: str, wanted: tuple[str, ...]) -> float:
        counts = tiers[name]
        return sum(counts[t] for t in wanted) / max(1, sum(counts.values()))

    assert share("enthusiast", high) > 0.6
    assert share("dormant", ("no_engagement",)) > 0.7
    assert share("enthusiast", high) > share("regular", high) > share("dormant", high)


def _apply_all(config: SimConfig, records: list[SimRecord]) -> dict[str, Any]:
    """The distinct good events applied once each in event-time order (the worker's result)."""
    distinct: dict[str, Any] = {}
    for r in records:
        if r.kind == "good":
            event = parse_record(r.topic, r.value, config.now, CFG)
            distinct[event.event_id] = event
    states: dict[tuple[str, str], Any] = {}
    codes: Counter[str] = Counter()
    sending_errors = 0
    for event in sorted(distinct.values(), key=lambda e: (e.occurred_at, e.event_id)):
        key = (event.org_id, event.contact_id)
        outcome = apply_event(states.get(key), event, config.now, CFG)
        states[key] = outcome.state
        codes[outcome.code] += 1
        sending_errors += len(outcome.effects)
    snapshots = {
        key: build_snapshot(key[0], key[1], state, config.now, CFG) for key, state in states.items()
    }
    return {"snapshots": snapshots, "sending_errors": sending_errors, "too_old": codes["too_old"]}
