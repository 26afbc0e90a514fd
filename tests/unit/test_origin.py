from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from models.origin import Origin, channel_label

ADAPTER: TypeAdapter[Any] = TypeAdapter(Origin)


@pytest.mark.parametrize(
    ("origin", "label"),
    [
        ({"type": "app", "app": "Omie"}, "Omie"),
        ({"type": "app", "app": "Google Sheets"}, "Google Sheets"),
        (
            {"type": "app_spec", "app": "Facebook Leads", "spec": "Page Test 1 Client A"},
            "Facebook Leads - Page Test 1 Client A",
        ),
        (
            {"type": "campaign", "campaign": "Black Friday", "channel": "whatsapp"},
            "Campaign Black Friday - WhatsApp",
        ),
        ({"type": "campaign", "campaign": "Natal", "channel": "email"}, "Campaign Natal - E-mail"),
        ({"type": "campaign", "campaign": "X", "channel": "sms"}, "Campaign X - SMS"),
        ({"type": "manual_import"}, "Manual import"),
        ({"type": "api"}, "API"),
        ({"type": "csv", "file": "leads.csv"}, "CSV Import - leads.csv"),
        (
            {"type": "direct", "channel": "whatsapp", "account": "WhatsApp Business Credential"},
            "WhatsApp - WhatsApp Business Credential",
        ),
        (
            {"type": "direct", "channel": "messenger", "account": "Facebook Account"},
            "Facebook Messenger - Facebook Account",
        ),
        (
            {"type": "direct", "channel": "instagram", "account": "Instagram Account"},
            "Instagram - Instagram Account",
        ),
        ({"type": "direct", "channel": "webchat"}, "Webchat"),
        (
            {
                "type": "chatbot",
                "channel": "whatsapp",
                "account": "Credential X",
                "flow": "Bot Flow Name",
            },
            "WhatsApp - Credential X - Bot Flow Name",
        ),
        (
            {"type": "chatbot", "channel": "webchat", "flow": "Bot Flow Name"},
            "Webchat - Bot Flow Name",
        ),
        (
            {"type": "chatbot", "channel": "messenger", "flow": "Bot Flow Name"},
            "Facebook Messenger - Bot Flow Name",
        ),
    ],
)
def test_origin_label_reads_exactly_like_the_spec(origin: dict[str, Any], label: str) -> None:
    parsed = ADAPTER.validate_python(origin)
    assert parsed.label == label
    dumped = parsed.model_dump(mode="json")
    assert dumped["label"] == label
    assert dumped["type"] == origin["type"]


def test_unknown_origin_channels_are_title_cased() -> None:
    assert channel_label("telegram") == "Telegram"
    assert channel_label("google_business") == "Google Business"
    assert channel_label("WhatsApp") == "WhatsApp"


def test_origin_requires_its_fields() -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"type": "csv"})
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"type": "chatbot", "channel": "webchat"})
