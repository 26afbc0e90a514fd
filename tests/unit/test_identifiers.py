"""Which ids are allowed (models.identifiers): refused ones are dead letters, never rewritten."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from counting import CountingConfig
from models.events import RecordRejected, parse_record
from models.identifiers import check_id, forbidden_in_id

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CFG = CountingConfig()


def dispatch(**ids: str) -> bytes:
    record = {
        "event_id": "e-1",
        "org_id": "org-1",
        "contact_id": "c-1",
        "channel": "email",
        "message_id": "m-1",
        "occurred_at": "2026-06-01T11:00:00Z",
        "dispatch_kind": "single",
        "campaign_id": "camp",
        **ids,
    }
    return orjson.dumps(record)


KEPT = [
    "x}:snap:y",
    "t}:snap:x",
    "a/b",
    "50%",
    "with space",
    " lead",
    "é漢🙂",
    "|*?[]\\",
    "A",
    "a" * 64,
]


@pytest.mark.parametrize("value", KEPT)
def test_ids_with_delimiters_spaces_and_non_ascii_are_kept_exactly(value: str) -> None:
    event = parse_record("dispatch", dispatch(org_id=value, contact_id=value), NOW, CFG)
    assert (event.org_id, event.contact_id) == (value, value)


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x00", "U+0000"),
        ("\x1f", "U+001F"),
        ("\n", "U+000A"),
        ("\x7f", "U+007F"),
        ("\x85", "U+0085"),
        ("\u2028", "U+2028"),
        ("\u2029", "U+2029"),
    ],
)
@pytest.mark.parametrize("field", ["event_id", "org_id", "contact_id", "message_id", "campaign_id"])
def test_control_characters_in_any_id_are_a_dead_letter_naming_field_and_character(
    field: str, char: str, shown: str
) -> None:
    with pytest.raises(RecordRejected) as info:
        parse_record("dispatch", dispatch(**{field: f"ab{char}c"}), NOW, CFG)
    assert info.value.code == "invalid_field"
    assert info.value.reason.startswith(f"{field}: contains {shown} at position 2")


@pytest.mark.parametrize("kind", ["list_added", "list_removed"])
def test_list_ids_follow_the_same_rule(kind: str) -> None:
    record = {
        "event_id": "e-1",
        "org_id": "o",
        "contact_id": "c",
        "occurred_at": "2026-06-01T11:00:00Z",
        "type": kind,
        "list_id": "vip\tlist",
    }
    with pytest.raises(RecordRejected) as info:
        parse_record("contact", orjson.dumps(record), NOW, CFG)
    assert info.value.reason.startswith("list_id: contains U+0009")


def test_lengths_are_the_specs() -> None:
    parse_record("dispatch", dispatch(org_id="o" * 64, contact_id="c" * 128), NOW, CFG)
    for field, n in (("org_id", 65), ("contact_id", 129), ("event_id", 129)):
        with pytest.raises(RecordRejected) as info:
            parse_record("dispatch", dispatch(**{field: "x" * n}), NOW, CFG)
        assert info.value.reason.startswith(f"{field}: ")


def test_lone_surrogates_are_refused() -> None:
    assert forbidden_in_id("a\ud800") is not None
    # JSON cannot even carry one: the parser refuses the record as a whole.
    with pytest.raises(RecordRejected) as info:
        parse_record("dispatch", dispatch().replace(b'"c-1"', b'"\\ud800"'), NOW, CFG)
    assert info.value.code == "not_json"


def test_check_id_names_what_it_checks() -> None:
    check_id("acme", "--org", 64)
    with pytest.raises(ValueError, match="--org must be 1 to 64 characters"):
        check_id("", "--org", 64)
    with pytest.raises(ValueError, match=r"--org contains U\+000A at position 4"):
        check_id("acme\n", "--org", 64)
