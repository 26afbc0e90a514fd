"""API tokens: created once, printed once, stored only as a SHA-256 digest (SPEC §5, §6).

The file at ``EM_API_TOKENS_FILE`` is a JSON list of ``{"org_id", "role", "sha256", "name"}``.
Only digests are stored, so a leaked file does not leak a usable token; tokens are 256 random
bits, so an unsalted fast hash is enough (there is nothing to brute-force). The API re-reads the
file when it changes, so a token created with ``engagement-monitor token create`` works at once
without restarting the API.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from engagement_monitor.settings import Settings
from models.identifiers import ORG_ID_MAX, OrgId, check_id
from read_api.json_files import FileWatch, read_entries

log = logging.getLogger(__name__)

Role = Literal["agent", "operator", "admin"]
ROLES: tuple[Role, ...] = ("agent", "operator", "admin")
WRITE_ROLES: frozenset[str] = frozenset({"operator", "admin"})


class TokenFileError(ValueError):
    """The tokens file is unusable; the message names the setting and the problem."""


class TokenRecord(BaseModel):
    """One stored token: never the token itself, only its digest."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    org_id: OrgId
    role: Role
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    name: Annotated[str, Field(max_length=128)] = ""


_RECORDS = TypeAdapter(list[TokenRecord])


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the org and role the token was created for."""

    org_id: str
    role: Role
    name: str

    @property
    def may_write(self) -> bool:
        return self.role in WRITE_ROLES


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_token_file(path: Path) -> list[TokenRecord]:
    """The stored records; a missing file means no tokens yet (every request is then 401)."""
    return read_entries(
        path, _RECORDS, "EM_API_TOKENS_FILE", '{"org_id", "role", "sha256", "name"}', TokenFileError
    )


class TokenStore:
    """Authenticates bearer tokens against the file, reloading it when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: list[TokenRecord] = read_token_file(path)
        self._by_digest = _by_digest(self._records)
        self._watch = FileWatch(path)
        if not self._records:
            log.warning(
                "no API tokens in %s: every request will be refused (401); create one with "
                "`engagement-monitor token create --org ORG --role ROLE`",
                path,
            )

    def _refresh(self) -> None:
        if not self._watch.changed():
            return
        try:
            self._records = read_token_file(self.path)
            self._by_digest = _by_digest(self._records)
        except TokenFileError as exc:
            # Keep serving with the tokens we had rather than locking everyone out because of
            # a half-edited file; the log says what is wrong.
            log.error("%s; keeping the %d token(s) loaded before", exc, len(self._records))

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a token, or None. Looked up by the token's digest (one dict
        lookup however many tokens there are); what a lookup's time could tell is how a
        SHA-256 digest compares with stored ones, which tells nothing about any token."""
        self._refresh()
        found = self._by_digest.get(digest(token))
        if found is None:
            return None
        return Principal(found.org_id, found.role, found.name)

    def __len__(self) -> int:
        return len(self._records)


def _by_digest(records: list[TokenRecord]) -> dict[str, TokenRecord]:
    """Records by digest; a digest listed twice (a hand-edited file) keeps its last record."""
    return {record.sha256: record for record in records}


def create_token(settings: Settings, org: str, role: str, name: str = "") -> str:
    """Create a token for one org and role, store its digest, and return the token.

    The caller prints it once; it cannot be recovered later. The file is rewritten atomically
    under an exclusive lock, so two concurrent ``token create`` runs cannot lose a token and the
    API never reads a half-written file.
    """
    check_id(org, "--org", ORG_ID_MAX)
    if role not in ROLES:
        raise ValueError(f"--role must be one of {', '.join(ROLES)}")
    if len(name) > 128:
        raise ValueError("--name must be at most 128 characters")
    path = settings.api_tokens_file
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    lock_path = path.with_name(path.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = read_token_file(path)
        label = name or f"{role}-{sum(1 for r in records if r.org_id == org) + 1}"
        records.append(TokenRecord(org_id=org, role=role, sha256=digest(token), name=label))
        _write_atomically(path, _RECORDS.dump_json(records, indent=2) + b"\n")
    return token


def list_tokens(settings: Settings, org: str | None = None) -> list[TokenRecord]:
    """The stored records (digests, never tokens), of one org or all."""
    return [r for r in read_token_file(settings.api_tokens_file) if org is None or r.org_id == org]


def revoke_tokens(
    settings: Settings, org: str, *, name: str | None = None, sha256_prefix: str | None = None
) -> list[TokenRecord]:
    """Remove the org's tokens with this name, or whose digest starts with this prefix (at
    least 8 hex digits, as `token list` shows them); the removed records.

    The API re-reads the file when it changes, so a revoked token is refused (401) from the
    next request on, without a restart. Same lock and atomic rewrite as `create_token`.
    """
    if (name is None) == (sha256_prefix is None):
        raise ValueError("give exactly one of --name or --sha256")
    if sha256_prefix is not None and not (
        len(sha256_prefix) >= 8 and all(c in "0123456789abcdef" for c in sha256_prefix)
    ):
        raise ValueError("--sha256 must be at least 8 lowercase hex digits of the token's digest")
    path = settings.api_tokens_file
    lock_path = path.with_name(path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = read_token_file(path)

        def doomed(r: TokenRecord) -> bool:
            if r.org_id != org:
                return False
            return r.name == name if name is not None else r.sha256.startswith(sha256_prefix or "")

        removed = [r for r in records if doomed(r)]
        if removed:
            kept = [r for r in records if not doomed(r)]
            _write_atomically(path, _RECORDS.dump_json(kept, indent=2) + b"\n")
    return removed


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def dump_records(records: list[TokenRecord]) -> bytes:
    """JSON of the records, as the file holds them (used by tests that write token files)."""
    return orjson.dumps([r.model_dump() for r in records], option=orjson.OPT_INDENT_2)
