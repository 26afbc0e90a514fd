"""Which contacts have a message about to leave the window, without scanning every contact.

A heap of (due time, key) with lazy deletion: updating a key pushes a new entry and remembers the
current due time, so stale heap entries are skipped when popped. It is rebuilt from the table
when partitions are assigned, and kept current by every batch, so the expiry sweep only touches
contacts that are actually due.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[int, bytes]] = []
        self._due: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._due)

    def set(self, key: bytes, due: int | None) -> None:
        if due is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        if len(self._heap) > 4 * len(self._due) + 1024:
            self._compact()

    def pop_due(self, now: int, limit: int | None = None) -> list[bytes]:
        """Remove and return the keys due at or before `now` (epoch seconds), soonest first."""
        out: list[bytes] = []
        heap, current = self._heap, self._due
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            due, key = heapq.heappop(heap)
            if current.get(key) == due:
                del current[key]
                out.append(key)
        return out

    def discard_where(self, drop: Callable[[bytes], bool]) -> None:
        """Forget every key for which `drop(key)` is true (partitions revoked)."""
        self._due = {k: v for k, v in self._due.items() if not drop(k)}
        self._compact()

    def _compact(self) -> None:
        self._heap = [(due, key) for key, due in self._due.items()]
        heapq.heapify(self._heap)
