"""Tokens: printed once, stored only as digests, bound to one org and one role."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from read_api.tokens import TokenFileError, TokenStore, create_token, digest, read_token_file
from tests.read_api.support import make_settings


def test_create_stores_only_the_digest(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    token = create_token(settings, "org-a", "operator", "ops desk")
    raw = settings.api_tokens_file.read_bytes()
    assert token.encode() not in raw
    records = orjson.loads(raw)
    assert records == [
        {"org_id": "org-a", "role": "operator", "sha256": digest(token), "name": "ops desk"}
    ]
    assert len(token) >= 43  # 32 random bytes, url-safe base64
    assert stat.S_IMODE(os.stat(settings.api_tokens_file).st_mode) == 0o600


def test_tokens_authenticate_to_their_org_and_role(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    agent = create_token(settings, "org-a", "agent")
    admin = create_token(settings, "org-b", "admin")
    store = TokenStore(settings.api_tokens_file)
    a = store.authenticate(agent)
    b = store.authenticate(admin)
    assert a is not None and (a.org_id, a.role, a.may_write) == ("org-a", "agent", False)
    assert a.name == "agent-1"  # a default name, so send requests say who asked
    assert b is not None and (b.org_id, b.role, b.may_write) == ("org-b", "admin", True)
    assert store.authenticate(agent + "x") is None
    assert store.authenticate("") is None
    assert store.authenticate(digest(agent)) is None  # the stored digest is not a token


def test_a_token_created_while_the_api_runs_works_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = TokenStore(settings.api_tokens_file)  # no file yet: no tokens
    assert len(store) == 0
    token = create_token(settings, "org-a", "agent")
    assert store.authenticate(token) is not None


def test_a_broken_file_keeps_the_tokens_already_loaded(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    token = create_token(settings, "org-a", "agent")
    store = TokenStore(settings.api_tokens_file)
    settings.api_tokens_file.write_text("[{not json")
    assert store.authenticate(token) is not None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{}", "not a list"),
        ('[{"org_id": "o", "role": "boss", "sha256": "' + "0" * 64 + '"}]', "0.role"),
        ('[{"org_id": "o", "role": "agent", "sha256": "secret"}]', "0.sha256"),
    ],
)
def test_a_bad_file_is_refused_naming_the_setting(
    tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(TokenFileError) as info:
        read_token_file(path)
    assert str(info.value).startswith("EM_API_TOKENS_FILE:")
    assert fragment in str(info.value)


def test_create_refuses_bad_arguments(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(ValueError, match="--role"):
        create_token(settings, "org-a", "root")
    with pytest.raises(ValueError, match="--org"):
        create_token(settings, "", "agent")
    assert not settings.api_tokens_file.exists()


def test_a_revoked_token_is_refused_at_once_and_others_stay(tmp_path: Path) -> None:
    from read_api.tokens import list_tokens, revoke_tokens

    settings = make_settings(tmp_path)
    gone = create_token(settings, "org-a", "operator", "laptop")
    kept = create_token(settings, "org-a", "agent", "desk")
    other = create_token(settings, "org-b", "operator", "laptop")
    store = TokenStore(settings.api_tokens_file)
    assert store.authenticate(gone) is not None
    removed = revoke_tokens(settings, "org-a", name="laptop")
    assert [(r.org_id, r.name) for r in removed] == [("org-a", "laptop")]
    assert store.authenticate(gone) is None  # the store re-reads the changed file
    assert store.authenticate(kept) is not None and store.authenticate(other) is not None
    assert [r.name for r in list_tokens(settings, "org-a")] == ["desk"]
    by_digest = revoke_tokens(settings, "org-b", sha256_prefix=digest(other)[:8])
    assert [r.name for r in by_digest] == ["laptop"] and store.authenticate(other) is None
    assert revoke_tokens(settings, "org-a", name="nobody") == []


def test_revoke_needs_exactly_one_selector(tmp_path: Path) -> None:
    from read_api.tokens import revoke_tokens

    settings = make_settings(tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        revoke_tokens(settings, "o")
    with pytest.raises(ValueError, match="8 lowercase hex"):
        revoke_tokens(settings, "o", sha256_prefix="ab")


def test_token_create_refuses_an_org_id_with_a_control_character(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(ValueError, match=r"--org contains U\+0009"):
        create_token(settings, "org\tx", "agent")
    assert not settings.api_tokens_file.exists()
