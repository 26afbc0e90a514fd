"""The committed JSON Schemas equal what the models give, and the simulator's records fit them.

Drift fails here: change a model in ``models/`` and this test asks for
``.venv/bin/python scripts/gen_schemas.py``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from models.events import REJECTION_CODES, TOPICS, RecordRejected, parse_record
from models.outputs import DispatchStatus, TierChange
from read_api.webhooks.adapters import WEBHOOK_REJECTION_CODES
from simulator import SimConfig, SimRecord

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
# JSON Schema's "date-time" is RFC 3339 date-time: date, time, and a Z or numeric offset.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _gen_schemas() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_schemas", ROOT / "scripts/gen_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_schemas", module)
    spec.loader.exec_module(module)
    return module


GEN = _gen_schemas()


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "format" only constrains strings
    if not RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


def _validator(topic: str) -> Any:
    schema = json.loads((SCHEMAS / f"{topic}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time")(_date_time)
    return cls(schema, format_checker=checker)


def test_committed_schemas_equal_the_models() -> None:
    expected: dict[str, str] = GEN.expected_files()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.glob("*.schema.json")}
    assert sorted(committed) == sorted(expected), "run scripts/gen_schemas.py"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} drifted from models/: run scripts/gen_schemas.py"


def test_there_is_a_schema_for_every_topic() -> None:
    expected = {*TOPICS, "tier-changes", "dispatch-status", "dead-letters", "audit"}
    assert {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")} == expected
    for topic in expected:
        schema = _validator(topic).schema
        assert schema["x-topic"] == topic
        assert schema["$schema"] == GEN.SCHEMA_DIALECT


def test_dead_letter_codes_are_the_parser_codes() -> None:
    schema = _validator("dead-letters").schema
    assert schema["properties"]["em-code"]["enum"] == [*REJECTION_CODES, *WEBHOOK_REJECTION_CODES]


def test_simulated_records_fit_their_schemas(
    sim_config: SimConfig, sim_records: list[SimRecord]
) -> None:
    validators = {topic: _validator(topic) for topic in TOPICS}
    rejected_by_schema: set[str] = set()
    for n, r in enumerate(sim_records):
        if r.kind != "malformed":
            if r.topic != "contact" and n % 5:
                continue  # a sample of the (simple) engagement records, every contact record
            errors = list(validators[r.topic].iter_errors(orjson.loads(r.value)))
            assert not errors, (r, [e.message for e in errors])
            continue
        # The worker is the judge of malformed records ...
        with pytest.raises(RecordRejected) as info:
            parse_record(r.topic, r.value, sim_config.now, _cfg())
        assert info.value.code == r.expected_code
        # ... and the schema already catches the structural ones (a schema cannot know the
        # configured channels, the clock or the byte size).
        try:
            value = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            rejected_by_schema.add(r.expected_code or "")
            continue
        if not validators[r.topic].is_valid(value):
            rejected_by_schema.add(r.expected_code or "")
    assert {"not_json", "missing_field", "invalid_field", "bad_timestamp"} <= rejected_by_schema


def test_outputs_fit_their_schemas() -> None:
    change = TierChange(
        org_id="acme",
        contact_id="c-1",
        channel=None,
        previous_tier="low",
        tier="high",
        rate=52.5,
        changed_at=datetime(2026, 6, 1, 12, tzinfo=UTC),
        cause="event",
    )
    status = DispatchStatus(org_id="acme", contact_id="c-1", channel="sms", message_id="m-1")
    for topic, model in (("tier-changes", change), ("dispatch-status", status)):
        _validator(topic).validate(orjson.loads(model.model_dump_json()))
    headers = {
        "em-source-topic": "open",
        "em-source-partition": "3",
        "em-source-offset": "1042",
        "em-code": "future_timestamp",
        "em-reason": "occurred_at: more than 5 minutes in the future (2026-06-02T10:00:00Z)",
        "em-received-at": datetime(2026, 6, 1, 12, tzinfo=UTC).isoformat(),
    }
    _validator("dead-letters").validate(headers)
    webhook = {  # made by the API's provider webhooks (SPEC §7.5)
        "em-source-webhook": "sendgrid",
        "em-org-id": "acme",
        "em-code": "missing_ids",
        "em-reason": "SendGrid event without em_contact_id and em_message_id in its custom args",
        "em-received-at": datetime(2026, 6, 1, 12, tzinfo=UTC).isoformat(),
    }
    _validator("dead-letters").validate(webhook)
    with pytest.raises(jsonschema.ValidationError):
        _validator("dead-letters").validate({**webhook, "em-source-webhook": "mailchimp"})
    with pytest.raises(jsonschema.ValidationError):
        _validator("dead-letters").validate({**headers, "em-code": "bogus"})


def _cfg() -> Any:
    from counting import CountingConfig

    return CountingConfig()
