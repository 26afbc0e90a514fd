"""``EM_WEBHOOK_SECRETS_FILE``: which org may receive which provider's webhooks, and with what
secret (SPEC §7.5): a JSON list of ``{"org_id", "provider", "secret"}``.

``secret`` is SendGrid's verification public key (base64 DER or PEM), Twilio's auth token,
the Meta app secret, or the token Zenvia's subscription URL carries. A WhatsApp entry may add
``verify_token``, the string Meta's subscription handshake must present (it is sent in clear
in a GET, so it is not the app secret). The file is re-read when it changes on disk; a
half-edited file keeps the entries loaded before, and the log says what is wrong. Without the
file every webhook is refused (401), so nothing is accepted for an org by accident.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from models.identifiers import OrgId
from read_api.json_files import FileWatch, read_entries
from read_api.webhooks.signatures import load_sendgrid_key

log = logging.getLogger(__name__)

Provider = Literal["sendgrid", "twilio", "whatsapp", "zenvia"]
PROVIDERS: tuple[Provider, ...] = ("sendgrid", "twilio", "whatsapp", "zenvia")


class WebhookSecretsError(ValueError):
    """The file is unusable; the message names the setting and the problem."""


class WebhookSecret(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: OrgId
    provider: Provider
    secret: Annotated[str, Field(min_length=8, max_length=8192)]
    verify_token: Annotated[str, Field(min_length=8, max_length=256)] | None = None

    @model_validator(mode="after")
    def _usable(self) -> WebhookSecret:
        if self.provider == "sendgrid":
            load_sendgrid_key(self.secret)  # ValueError: not a key
        if self.verify_token is not None and self.provider != "whatsapp":
            raise ValueError("verify_token is for whatsapp (Meta's subscription handshake)")
        return self


_ENTRIES = TypeAdapter(list[WebhookSecret])


def read_secrets_file(path: Path) -> list[WebhookSecret]:
    entries = read_entries(
        path,
        _ENTRIES,
        "EM_WEBHOOK_SECRETS_FILE",
        '{"org_id", "provider", "secret"}',
        WebhookSecretsError,
    )
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        pair = (entry.org_id, entry.provider)
        if pair in seen:
            raise WebhookSecretsError(
                f"EM_WEBHOOK_SECRETS_FILE: {path} has two entries for org {entry.org_id!r} "
                f"and {entry.provider}"
            )
        seen.add(pair)
    return entries


@dataclass(frozen=True, slots=True)
class OrgSecret:
    """One org's secret for one provider, ready to use (SendGrid's key parsed once)."""

    secret: str
    verify_token: str | None
    sendgrid_key: ec.EllipticCurvePublicKey | None


class WebhookSecrets:
    """The file's entries by (org, provider), reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_pair: dict[tuple[str, str], OrgSecret] = {}
        self._load(read_secrets_file(path))
        self._watch = FileWatch(path)

    def _load(self, entries: list[WebhookSecret]) -> None:
        self._by_pair = {
            (e.org_id, e.provider): OrgSecret(
                e.secret,
                e.verify_token,
                load_sendgrid_key(e.secret) if e.provider == "sendgrid" else None,
            )
            for e in entries
        }

    def get(self, org_id: str, provider: str) -> OrgSecret | None:
        if self._watch.changed():
            try:
                self._load(read_secrets_file(self.path))
            except WebhookSecretsError as exc:
                log.error("%s; keeping the %d entries loaded before", exc, len(self._by_pair))
        return self._by_pair.get((org_id, provider))

    def __len__(self) -> int:
        return len(self._by_pair)
