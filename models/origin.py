"""Where a contact came from, and the label the screen shows for it (SPEC §2).

The label is computed, never stored by producers, so every consumer renders it the same way.
Origin channels are free text (webchat, messenger, …), not the engagement channel set.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

CHANNEL_LABELS: dict[str, str] = {
    "sms": "SMS",
    "email": "E-mail",
    "whatsapp": "WhatsApp",
    "webchat": "Webchat",
    "messenger": "Facebook Messenger",
    "instagram": "Instagram",
}

Text = Annotated[str, Field(min_length=1, max_length=256)]


def channel_label(channel: str) -> str:
    """Known channels read as the product names them; others are title-cased words."""
    known = CHANNEL_LABELS.get(channel.lower())
    if known is not None:
        return known
    return " ".join(
        part.capitalize() for part in channel.replace("_", " ").replace("-", " ").split()
    )


class _Origin(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AppOrigin(_Origin):
    type: Literal["app"] = "app"
    app: Text

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return self.app


class AppSpecOrigin(_Origin):
    type: Literal["app_spec"] = "app_spec"
    app: Text
    spec: Text

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return f"{self.app} - {self.spec}"


class CampaignOrigin(_Origin):
    type: Literal["campaign"] = "campaign"
    campaign: Text
    channel: Text

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return f"Campaign {self.campaign} - {channel_label(self.channel)}"


class ManualImportOrigin(_Origin):
    type: Literal["manual_import"] = "manual_import"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return "Manual import"


class ApiOrigin(_Origin):
    type: Literal["api"] = "api"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return "API"


class CsvOrigin(_Origin):
    type: Literal["csv"] = "csv"
    file: Text

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return f"CSV Import - {self.file}"


class DirectOrigin(_Origin):
    type: Literal["direct"] = "direct"
    channel: Text
    account: Text | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        if self.account is None:
            return channel_label(self.channel)
        return f"{channel_label(self.channel)} - {self.account}"


class ChatbotOrigin(_Origin):
    type: Literal["chatbot"] = "chatbot"
    channel: Text
    account: Text | None = None
    flow: Text

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        parts = [channel_label(self.channel), self.account, self.flow]
        return " - ".join(p for p in parts if p is not None)


Origin = Annotated[
    AppOrigin
    | AppSpecOrigin
    | CampaignOrigin
    | ManualImportOrigin
    | ApiOrigin
    | CsvOrigin
    | DirectOrigin
    | ChatbotOrigin,
    Field(discriminator="type"),
]

ORIGIN_TYPES = ("app", "app_spec", "campaign", "manual_import", "api", "csv", "direct", "chatbot")
