"""The record stream: contacts' histories merged, keyed, serialized, disordered and spoiled.

Real producers deliver at least once and out of order, and some of them are buggy; the worker
has to count exactly anyway. So the stream carries, on top of the good records: duplicates (the
same key and bytes twice, a little later), local disorder (records swapped within a small
window), late records (held back by up to a couple of thousand records), records with no key or
a key that is not ``"{org}:{contact}"``, and malformed records of every rejection code.

Contacts are generated in chunks of ``chunk_contacts`` (orgs interleaved); within a chunk the
records run in event-time order before disorder is applied, so memory stays bounded by the chunk
whatever the size of the run. Event time therefore restarts at the beginning of the span with
each chunk, as when several replays run one after the other.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice

import orjson

from engagement_monitor.keyspace import record_key
from simulator.config import SimConfig, SimRecord
from simulator.malformed import MALFORMED_CODES, corrupt
from simulator.timeline import Event, contact_history
from simulator.world import Org, build_orgs, iter_contacts


def _key(event: Event, rng: random.Random, config: SimConfig) -> bytes | None:
    roll = rng.random()
    org, contact = event.value["org_id"], event.value["contact_id"]
    if roll < config.none_key_share:
        return None
    if roll < config.none_key_share + config.foreign_key_share:
        # Producers that key by message, or by the contact id alone.
        foreign = event.message_id if event.message_id is not None else contact
        return foreign.encode()
    return record_key(org, contact)


def generate(config: SimConfig) -> Iterator[SimRecord]:
    """Every record of the run, lazily; the same config always gives the same records."""
    orgs = build_orgs(config)
    by_id = {org.org_id: org for org in orgs}
    good = max(1e-9, 1.0 - config.malformed_share - config.duplicate_share)
    p_duplicate = config.duplicate_share / good
    p_malformed = config.malformed_share / good
    malformed_count = 0
    pairs = iter_contacts(config, orgs)
    chunk_no = 0
    while True:
        chunk = list(islice(pairs, config.chunk_contacts))
        if not chunk:
            return
        events: list[Event] = []
        for org, index in chunk:
            events.extend(contact_history(org, index, config)[1])
        events.sort(key=lambda e: (e.time_ms, e.value["event_id"]))
        rng = random.Random(f"{config.seed}/stream/{chunk_no}")
        placed: list[tuple[float, int, SimRecord]] = []
        for i, event in enumerate(events):
            key = _key(event, rng, config)
            record = SimRecord(event.topic, key, orjson.dumps(event.value), "good")
            position = i + rng.uniform(0, config.shuffle_window)
            if rng.random() < config.late_share:
                position += rng.uniform(50, 2_000)
            placed.append((position, len(placed), record))
            if rng.random() < p_duplicate:
                again = SimRecord(record.topic, key, record.value, "duplicate")
                placed.append((position + rng.uniform(1, 1_000), len(placed), again))
            if rng.random() < p_malformed:
                code = MALFORMED_CODES[malformed_count % len(MALFORMED_CODES)]
                malformed_count += 1
                source_org: Org = by_id[event.value["org_id"]]
                raw = corrupt(
                    code,
                    event.topic,
                    event.value,
                    rng,
                    source_org,
                    config.now_ms,
                    config.max_record_bytes,
                )
                bad = SimRecord(event.topic, key, raw, "malformed", code)
                placed.append((position + rng.random(), len(placed), bad))
        placed.sort(key=lambda item: (item[0], item[1]))
        for _, _, record in placed:
            yield record
        chunk_no += 1
