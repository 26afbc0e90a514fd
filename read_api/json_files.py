"""The API's two JSON files of entries (EM_API_TOKENS_FILE, EM_WEBHOOK_SECRETS_FILE): read and
validated the same way, and re-read when they change on disk, so that an operator edits them
without restarting the API."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from models.identifiers import id_problem

T = TypeVar("T")


def read_entries(
    path: Path, adapter: TypeAdapter[list[T]], setting: str, shape: str, error: type[ValueError]
) -> list[T]:
    """The file's entries; none when it is missing or empty. An unreadable or invalid file
    raises ``error`` with a message naming the setting, the file and the first problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise error(f"{setting}: cannot read {path}: {exc}") from None
    if not raw.strip():
        return []
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = id_problem(first) or first["msg"]
        problem = f"{where}: {message}" if where else message
        raise error(f"{setting}: {path} is not a list of {shape} ({problem})") from None


class FileWatch:
    """Says when a file has changed on disk since the last look (mtime, size, inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._now()

    def _now(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def changed(self) -> bool:
        stamp = self._now()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True
