"""The hand-written `__init__`s of the hot dataclasses (`init=False`, so mypyc compiles them:
a generated one runs interpreted) must take exactly the dataclass's fields, with its defaults:
a field added to the class but not to its `__init__` fails here, compiled or not."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agents.contact_cache import HotContact
from agents.org_index import OrgIndex
from agents.processor import ContactChange, Outbound, RedisJob, SnapshotWrite
from agents.stored import StoredContact
from counting.apply import ApplyOutcome
from counting.state import ContactState, MessageRecord
from streams.envelope import Entry
from streams.records import Record

# Each class with the values of its fields that have no default.
REQUIRED: dict[type[Any], dict[str, Any]] = {
    ApplyOutcome: {"state": None, "code": "applied"},
    Entry: {"kind": 0, "topic": "t", "partition": 1, "offset": 2, "key": b"k", "value": b"v"},
    MessageRecord: {"channel": "sms", "dispatched_at": 5},
    ContactState: {},
    StoredContact: {"state": ContactState()},
    HotContact: {
        "stored": StoredContact(ContactState()),
        "partition": 3,
        "org_id": "o",
        "contact_id": "c",
    },
    Outbound: {"topic": "t", "key": None, "value": b"v"},
    Record: {"topic": "t", "key": None, "value": b"v"},
    SnapshotWrite: {
        "org_id": "o",
        "contact_id": "c",
        "version": 1,
        "snapshot": None,
        "tiers": {},
    },
    RedisJob: {
        "org_id": "o",
        "contact_id": "c",
        "version": 1,
        "value": None,
        "now_us": 5,
        "shown": False,
    },
    ContactChange: {
        "key": b"k",
        "partition": 0,
        "value": None,
        "redis": RedisJob("o", "c", 1, None, 5, False),
        "due": None,
    },
}


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


@pytest.mark.parametrize("cls", list(REQUIRED), ids=lambda cls: cls.__name__)
def test_defaults_are_the_fields_defaults(cls: type[Any]) -> None:
    made = cls(**REQUIRED[cls])
    for field in dataclasses.fields(cls):
        expected = REQUIRED[cls][field.name] if field.name in REQUIRED[cls] else _default(field)
        assert getattr(made, field.name) == expected, field.name
    assert set(REQUIRED[cls]) == {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


@pytest.mark.parametrize("cls", list(REQUIRED), ids=lambda cls: cls.__name__)
def test_every_field_is_a_parameter_of_that_name(cls: type[Any]) -> None:
    made = cls(**REQUIRED[cls])
    values = {f.name: getattr(made, f.name) for f in dataclasses.fields(cls)}
    # A distinct value per field, passed by keyword, must come back in that field.
    marked = {name: _marker(value) for name, value in values.items()}
    again = cls(**marked)
    for name, value in marked.items():
        assert getattr(again, name) == value != values[name] or value is None, name
    assert dataclasses.replace(again) == again


def test_mutable_defaults_are_not_shared() -> None:
    first, second = ContactState(), ContactState()
    first.messages["m"] = MessageRecord("sms", 1)
    assert second.messages == {}
    assert ApplyOutcome(None, "applied").effects is not ApplyOutcome(None, "applied").effects


def _marker(value: Any) -> Any:
    """A new object of the same kind (so a typed native attribute accepts it)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 12345
    if isinstance(value, str):
        return value + "-marked"
    if isinstance(value, bytes):
        return value + b"-marked"
    if isinstance(value, dict):
        return {"marked": 1}
    if isinstance(value, list):
        return ["marked"]
    if isinstance(value, tuple):
        return (1, 2)
    if isinstance(value, ContactState):
        return ContactState(tombstone=7)
    if isinstance(value, StoredContact):
        return StoredContact(ContactState(), version=9)
    if isinstance(value, OrgIndex):
        return OrgIndex(heat="marked")
    if isinstance(value, SnapshotWrite):
        return SnapshotWrite("o", "marked", 2, None, {})
    if isinstance(value, RedisJob):
        return RedisJob("o", "marked", 2, None, 6, True)
    return value
