"""A segment as CSV (SPEC §7.4): `contact_id,name,email,phone,rate,tier`, streamed page by page.

Read with the same cursor walk as `/segments` (500 members a page, one MGET of their snapshots
each), so memory stays flat whatever the segment's size and the first bytes leave at once.
Quoting is the csv module's (RFC 4180): a name with commas, quotes or line breaks comes back
intact in any spreadsheet. A name or e-mail starting with `=`, `+`, `-` or `@` gets a leading
`'`, so a spreadsheet shows it instead of running it as a formula (CSV injection); phones are
E.164 and always start with `+`, so they are left alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from read_api.store import SnapshotStore

HEADER = ("contact_id", "name", "email", "phone", "rate", "tier")
PAGE = 500
_FORMULA_STARTS = ("=", "+", "-", "@")


def _safe(text: str | None) -> str:
    if not text:
        return ""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _rate(rate: float) -> str:
    return f"{rate:.2f}"


async def segment_rows(
    store: SnapshotStore, org_id: str, channel: str | None, tier: str
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    cursor: str | None = None
    while True:
        page = await store.segment(org_id, channel, tier, cursor, PAGE)
        found = await store.registrations(org_id, [c for c, _ in page.items])
        for (contact, rate), reg in zip(page.items, found, strict=True):
            reg = reg or {}
            writer.writerow(
                (
                    contact,
                    _safe(reg.get("name")),
                    _safe(reg.get("email")),
                    reg.get("phone") or "",
                    _rate(rate),
                    tier,
                )
            )
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        cursor = page.next_cursor
        if cursor is None:
            return
