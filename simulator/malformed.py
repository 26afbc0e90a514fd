"""Records the worker must dead-letter, one family per rejection code it can give an input topic.

Each is made from a real record of the stream (same key, similar content) with one thing wrong,
the way producer bugs look in practice: a truncated write, a dropped field, a channel the
platform does not know, a unix time or a naive local time, a clock far ahead, a message body
pasted into the event.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from simulator.world import HOUR_MS, Org

# Every code models.events.parse_record can give a record of an input topic ("unknown_topic"
# cannot happen: the simulator only writes to input topics).
MALFORMED_CODES: Final = (
    "not_json",
    "missing_field",
    "invalid_field",
    "unknown_channel",
    "bad_timestamp",
    "future_timestamp",
    "oversize",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _required(topic: str, value: dict[str, Any]) -> list[str]:
    fields = ["event_id", "org_id", "contact_id", "occurred_at"]
    if topic == "contact":
        fields.append("type")
        kind = value.get("type")
        if kind in ("list_added", "list_removed"):
            fields.append("list_id")
        elif kind == "subscribe":
            fields.append("channel")
    else:
        fields.append("channel")
        if topic != "unsubscribe":
            fields.append("message_id")
        if topic == "dispatch":
            fields.append("dispatch_kind")
    return [f for f in fields if f in value]


def corrupt(
    code: str,
    topic: str,
    value: dict[str, Any],
    rng: random.Random,
    org: Org,
    now_ms: int,
    max_record_bytes: int = 65_536,
) -> bytes:
    """The bytes of a broken copy of ``value`` that ``parse_record`` rejects with ``code``.

    The copy gets a fresh ``event_id`` (when it keeps one) so it can never be mistaken for the
    good record it was made from.
    """
    bad = dict(value)
    if "event_id" in bad:
        bad["event_id"] = f"bad-{rng.getrandbits(64):016x}"
    if code == "not_json":
        text = orjson.dumps(bad)
        variant = rng.randrange(5)
        if variant == 0:
            return text[: max(1, len(text) // 2)]  # a write cut short
        if variant == 1:
            return repr(bad).encode()  # Python repr instead of JSON
        if variant == 2:
            return b"[" + text + b"]"  # an array, not an object
        if variant == 3:
            return b""  # an empty value that is not a tombstone anyone asked for
        return text.replace(b'"', b"'", 4) + b"\xff"  # quotes mangled, not UTF-8
    if code == "missing_field":
        del bad[rng.choice(_required(topic, bad))]
    elif code == "invalid_field":
        if topic == "dispatch" and rng.random() < 0.5:
            bad["dispatch_kind"] = "broadcast"
        elif topic == "contact" and bad.get("type") == "upsert" and "phone" in bad:
            bad["phone"] = "(11) 9" + str(rng.randint(1000, 9999)) + "-0000"
        elif topic == "contact" and rng.random() < 0.5:
            bad["type"] = "merge"
        else:
            bad["event_id"] = ""
    elif code == "unknown_channel":
        if topic == "contact":
            bad = {k: v for k, v in bad.items() if k in ("event_id", "org_id", "contact_id")}
            bad.update(type="subscribe", occurred_at=value["occurred_at"])
        bad["channel"] = rng.choice(("telegram", "fax", "SMS", "e-mail", "pigeon"))
    elif code == "bad_timestamp":
        moment = datetime.fromisoformat(value["occurred_at"])
        variant = rng.randrange(5)
        if variant == 0:
            bad["occurred_at"] = int(moment.timestamp())  # unix seconds
        elif variant == 1:
            local = moment.astimezone(org.zone)
            bad["occurred_at"] = local.strftime("%Y-%m-%d %H:%M:%S")  # no offset
        elif variant == 2:
            bad["occurred_at"] = moment.strftime("%d/%m/%Y %H:%M")
        elif variant == 3:
            bad["occurred_at"] = f"{moment.year}-02-30T10:00:00Z"  # no such day
        else:
            bad["occurred_at"] = "yesterday"
    elif code == "future_timestamp":
        ahead = now_ms + int(rng.uniform(1, 72) * HOUR_MS)
        bad["occurred_at"] = (_EPOCH + timedelta(milliseconds=ahead)).isoformat(
            timespec="milliseconds"
        )
    elif code == "oversize":
        paragraph = "<p>Hello! Our offer of the week is waiting for you. Click to see more.</p>"
        size = max_record_bytes + rng.randint(1_000, 30_000)
        bad["body_html"] = (paragraph * (size // len(paragraph) + 1))[:size]
    else:
        raise ValueError(f"unknown malformed code {code!r}")
    return orjson.dumps(bad)
