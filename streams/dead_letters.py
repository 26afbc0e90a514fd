"""What a dead letter looks like (SPEC §4): the record unchanged, plus where it was read and why.

Both stages make them: the ingest for records too large to travel in an envelope, the processor
for everything it cannot use. One definition, so a replay tool reads them all the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

# Header names put on dead letters. Values are UTF-8 text.
H_SOURCE_TOPIC = "em-source-topic"
H_SOURCE_PARTITION = "em-source-partition"
H_SOURCE_OFFSET = "em-source-offset"
H_REASON = "em-reason"
H_CODE = "em-code"
H_RECEIVED_AT = "em-received-at"

DEAD_LETTER_TOPIC = "dead-letters"  # short name; prefixed like every topic

Headers = list[tuple[str, bytes]]


def dead_letter_headers(
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]],
    reason: str,
    code: str,
    now: datetime,
) -> Headers:
    """The record's own headers, then where it was read and why.

    `topic` is the input topic's full name, as read, so the record can be replayed as is.
    `em-*` headers the record already carried (a replayed dead letter, say) are replaced.
    """
    kept = [h for h in headers if not h[0].startswith("em-")]
    kept += [
        (H_SOURCE_TOPIC, topic.encode()),
        (H_SOURCE_PARTITION, str(partition).encode()),
        (H_SOURCE_OFFSET, str(offset).encode()),
        (H_REASON, reason.encode()),
        (H_CODE, code.encode()),
        (H_RECEIVED_AT, now.isoformat().encode()),
    ]
    return kept
