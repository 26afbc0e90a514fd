"""A message's contribution to the day buckets, packed into one integer.

Every figure of a channel is a count of messages, so a message contributes 0 or 1 to each of
seven counters. Packing the seven counters into 32-bit lanes of one Python int lets a
transition move a message's whole contribution with a single add (``bucket += new - old``)
instead of seven, and lets a snapshot add up a channel's buckets before unpacking once.
Lanes never go negative in a bucket at rest because a message's old contribution is always
subtracted from the bucket it was added to.
"""

from __future__ import annotations

from collections.abc import Collection

LANE_BITS = 32
LANE_MASK = (1 << LANE_BITS) - 1

DISPATCHED, SENDING_ERRORS, DELIVERED, OPENED, CLICKED, REPLIED, ENGAGED = range(7)
FIGURES = ("dispatched", "sending_errors", "delivered", "opened", "clicked", "replied", "engaged")

# Evidence bits kept on a message (what events it has seen), plus bookkeeping bits.
F_DELIVERY = 1
F_OPEN = 2
F_CLICK = 4
F_REPLY = 8
EVIDENCE = 15
F_SENDING_ERROR = 16  # derived from the subscription timeline at dispatch time
F_STATUS_EMITTED = 32  # a DispatchStatus was already emitted for this message
F_AUTOMATED = 64  # dispatch_kind of the earliest dispatch

TABLE_INDEX_MASK = F_SENDING_ERROR | EVIDENCE


def _lane(index: int) -> int:
    return 1 << (LANE_BITS * index)


def contribution(flags: int, tracks_open: bool) -> int:
    """Packed contribution of one dispatched message; see SPEC §3 for each figure."""
    value = _lane(DISPATCHED)
    if flags & F_SENDING_ERROR:
        # A sending error counts in dispatched and sending_errors and nowhere else.
        return value | _lane(SENDING_ERRORS)
    evidence = flags & EVIDENCE
    if evidence:
        value |= _lane(DELIVERED)  # any interaction implies delivery
    if flags & F_OPEN or (tracks_open and flags & (F_CLICK | F_REPLY)):
        value |= _lane(OPENED)
    if flags & F_CLICK:
        value |= _lane(CLICKED)
    if flags & F_REPLY:
        value |= _lane(REPLIED)
    if flags & (F_OPEN | F_CLICK | F_REPLY):
        value |= _lane(ENGAGED)
    return value


def build_table(tracked: Collection[str]) -> tuple[int, ...]:
    """All 32 possible contributions of a channel, indexed by ``flags & TABLE_INDEX_MASK``.

    A lookup is cheaper than re-deriving the figures on every event.
    """
    tracks_open = "open" in tracked
    return tuple(contribution(i, tracks_open) for i in range(TABLE_INDEX_MASK + 1))


def unpack(packed: int) -> tuple[int, ...]:
    return tuple((packed >> (LANE_BITS * i)) & LANE_MASK for i in range(len(FIGURES)))
