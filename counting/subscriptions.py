"""Per-channel subscription timelines, and the sending-error status derived from them.

``sending_error`` is derived (unsubscribed at the dispatch time), not recorded when the
dispatch is applied, so an unsubscribe that arrives late but is dated earlier moves the
affected messages, and the result does not depend on arrival order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Literal

from counting.state import SUBSCRIBE, UNSUBSCRIBE

Timeline = list[tuple[int, int]]


def unsubscribed_at(timeline: Timeline | None, at: int) -> bool:
    """Is the last subscribe/unsubscribe dated at or before ``at`` an unsubscribe?"""
    if not timeline:
        return False
    index = bisect_right(timeline, (at, UNSUBSCRIBE))
    return index > 0 and timeline[index - 1][1] == UNSUBSCRIBE


def insert(timeline: Timeline, entry: tuple[int, int]) -> bool:
    """Set semantics (a repeated entry is a no-op), so replays are idempotent."""
    index = bisect_left(timeline, entry)
    if index < len(timeline) and timeline[index] == entry:
        return False
    insort(timeline, entry)
    return True


def status(timeline: Timeline | None) -> Literal["subscribed", "unsubscribed"]:
    if timeline and timeline[-1][1] == UNSUBSCRIBE:
        return "unsubscribed"
    return "subscribed"


def prune(timeline: Timeline, start: int) -> Timeline:
    """Keep entries in the window plus the last one before it: that one still decides the
    status at the start of the window (older, late events are ignored as too old)."""
    index = bisect_left(timeline, (start, SUBSCRIBE))
    if index <= 1:
        return timeline
    return timeline[index - 1 :]
