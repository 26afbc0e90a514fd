"""What an id may be (SPEC §2), in one place for the events, the API paths and the CLI.

An id is any text of the SPEC's length except these characters, which are refused (a dead letter
for an event, a 422 for an API path, an error for the CLI), never removed or replaced:

- control characters, C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F): they are
  invisible on the screen, break logs and CSV lines, and are never part of a real id;
- the line and paragraph separators U+2028 and U+2029, for the same reasons;
- lone surrogates (U+D800-U+DFFF), which are not characters and have no UTF-8 form.

Everything else is allowed and kept exactly, including spaces, ``{ } : | % / \\``, and non-ASCII
text; two ids differ whenever their characters differ (no case folding or normalisation). The
key encoding (``engagement_monitor.keyspace``) keeps every allowed id apart in every store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

ORG_ID_MAX = 64
CONTACT_ID_MAX = 128
EVENT_ID_MAX = 128
MESSAGE_ID_MAX = 128
LIST_ID_MAX = 128
CAMPAIGN_ID_MAX = 128

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# The same rule as a pattern pydantic checks natively (a Python validator per id cost ~0.4 µs,
# four ids an event). A lone surrogate cannot pass it either: pydantic refuses such a string
# before any pattern (`string_unicode`), and orjson refuses it in JSON already.
ID_PATTERN = "^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"
# The same rule for JSON Schema readers (ECMA-262 regex syntax).
ID_JSON_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$"


def forbidden_in_id(value: str) -> str | None:
    """Why `value` may not be an id, or None when it may (the length is checked elsewhere)."""
    bad = _FORBIDDEN.search(value)
    if bad is None:
        return None
    return (
        f"contains U+{ord(bad.group()):04X} at position {bad.start()}; ids may not contain "
        "control characters, line separators or lone surrogates"
    )


def id_problem(error: Mapping[str, Any]) -> str | None:
    """For a pydantic error on an id field whose pattern failed: which character, and where.

    The pattern's own message would print the regex; people need the character (the value
    itself may not print).
    """
    value = error.get("input")
    if error.get("type") == "string_pattern_mismatch" and isinstance(value, str):
        return forbidden_in_id(value)
    return None


def _id_field(max_length: int) -> Any:
    return Field(
        min_length=1,
        max_length=max_length,
        pattern=ID_PATTERN,
        json_schema_extra={"pattern": ID_JSON_PATTERN},
    )


def check_id(value: str, what: str, max_length: int) -> None:
    """Raise ValueError naming `what` when `value` is not an allowed id (CLI and settings)."""
    if not 1 <= len(value) <= max_length:
        raise ValueError(f"{what} must be 1 to {max_length} characters")
    problem = forbidden_in_id(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}")


OrgId = Annotated[str, _id_field(ORG_ID_MAX)]
ContactId = Annotated[str, _id_field(CONTACT_ID_MAX)]
EventId = Annotated[str, _id_field(EVENT_ID_MAX)]
MessageId = Annotated[str, _id_field(MESSAGE_ID_MAX)]
ListId = Annotated[str, _id_field(LIST_ID_MAX)]
CampaignId = Annotated[str, _id_field(CAMPAIGN_ID_MAX)]
