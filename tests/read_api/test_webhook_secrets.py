"""`EM_WEBHOOK_SECRETS_FILE`: a bad file names the setting; edits apply without a restart."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from read_api.server import run_api
from read_api.webhooks.secrets import WebhookSecrets, WebhookSecretsError, read_secrets_file
from tests.read_api.support import make_settings
from tests.read_api.test_webhook_signatures import sendgrid_keypair


def write(path: Path, entries: object) -> None:
    path.write_bytes(orjson.dumps(entries))


def test_entries_are_checked_and_a_bad_file_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    assert read_secrets_file(path) == []  # no file: no webhooks at all
    bad_files: list[object] = [
        [{"org_id": "acme", "provider": "mailchimp", "secret": "s3cret-token"}],
        [{"org_id": "acme", "provider": "sendgrid", "secret": "not a public key at all"}],
        [{"org_id": "acme", "provider": "twilio", "secret": "short"}],
        [
            {
                "org_id": "acme",
                "provider": "twilio",
                "secret": "s3cret-token",
                "verify_token": "x" * 9,
            }
        ],
        [
            {"org_id": "acme", "provider": "twilio", "secret": "s3cret-token"},
            {"org_id": "acme", "provider": "twilio", "secret": "other-token"},
        ],
        {"org_id": "acme"},
    ]
    for entries in bad_files:
        write(path, entries)
        with pytest.raises(WebhookSecretsError, match="EM_WEBHOOK_SECRETS_FILE"):
            read_secrets_file(path)


def test_the_api_refuses_to_start_with_a_bad_secrets_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("[{")
    settings = make_settings(tmp_path, webhook_secrets_file=path)
    assert run_api(settings) == 2
    assert "EM_WEBHOOK_SECRETS_FILE" in capsys.readouterr().err


def test_edits_apply_without_a_restart_and_a_broken_edit_keeps_the_old_entries(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secrets.json"
    _, public = sendgrid_keypair()
    write(path, [{"org_id": "acme", "provider": "sendgrid", "secret": public}])
    store = WebhookSecrets(path)
    found = store.get("acme", "sendgrid")
    assert found is not None and found.sendgrid_key is not None
    assert store.get("acme", "twilio") is None and store.get("other", "sendgrid") is None

    write(path, [{"org_id": "acme", "provider": "twilio", "secret": "twilio-token-1"}])
    os.utime(path, ns=(1, 1))  # a different stamp even within the same clock tick
    assert store.get("acme", "sendgrid") is None  # revoked by removing the entry
    twilio = store.get("acme", "twilio")
    assert twilio is not None and twilio.secret == "twilio-token-1"

    path.write_text("[{ half-edited")
    os.utime(path, ns=(2, 2))
    assert store.get("acme", "twilio") is not None
