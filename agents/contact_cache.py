"""Decoded contacts kept in memory between checkpoints: the worker's read-your-writes cache.

Every event of a contact used to cost a table read, a decode, an encode and a table write per
landing. Here a contact is decoded once when first touched, then stays decoded: events are
applied to it in place, and a checkpoint encodes each *dirty* contact once, however many events
it got since the previous checkpoint (quixstreams keeps the same per-partition update cache in
``state/base/transaction.py``).

Contacts that are clean after a checkpoint stay cached, least recently used first out, up to a
capacity (``EM_STATE_CACHE_CONTACTS``). Nothing in here is the truth: the table is, and a
rebalance or an abandoned checkpoint simply drops the cache (``forget``) and the records are read
again from the last committed envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agents.stored import StoredContact, unpack
from counting import ContactState, CountingConfig

Load = Callable[[int, bytes], bytes | None]  # (partition, table key) -> stored value


@dataclass(slots=True)
class HotContact:
    stored: StoredContact
    partition: int
    org_id: str
    contact_id: str
    by_event: bool = False  # changed by an event since the last checkpoint (else by expiry only)


class ContactCache:
    def __init__(self, cfg: CountingConfig, load: Load, capacity: int) -> None:
        self.cfg = cfg
        self.load = load
        self.capacity = capacity
        self.hot: dict[bytes, HotContact] = {}  # least recently used first
        self.dirty: dict[bytes, HotContact] = {}
        self.loads = 0  # misses that read the table (metrics)

    def __len__(self) -> int:
        return len(self.hot)

    def get(self, key: bytes, partition: int, org_id: str, contact_id: str) -> HotContact:
        """The contact, decoded: from the cache, else from the table, else a new one."""
        hot = self.hot.pop(key, None)
        if hot is None:
            raw = self.load(partition, key)
            self.loads += 1
            stored = unpack(raw, self.cfg) if raw is not None else StoredContact(ContactState())
            hot = HotContact(stored, partition, org_id, contact_id)
        self.hot[key] = hot  # most recently used last
        return hot

    def touch(self, key: bytes, hot: HotContact, *, by_event: bool) -> None:
        """Mark the contact dirty: the next checkpoint writes it."""
        if by_event:
            hot.by_event = True
        self.dirty[key] = hot

    def take_dirty(self) -> dict[bytes, HotContact]:
        dirty, self.dirty = self.dirty, {}
        return dirty

    def landed(self, key: bytes, removed: bool) -> None:
        """After a checkpoint built the contact's write: clean again, or gone from the table."""
        if removed:
            self.hot.pop(key, None)

    def trim(self) -> None:
        """Evict the least recently used clean contacts beyond the capacity."""
        excess = len(self.hot) - self.capacity
        if excess <= 0:
            return
        for key in list(self.hot)[:excess]:
            if key not in self.dirty:
                del self.hot[key]

    def forget(self, partitions: frozenset[int] | None = None) -> None:
        """Drop cached contacts (of these partitions, or all) and any pending change of them."""
        if partitions is None:
            self.hot.clear()
            self.dirty.clear()
            return
        for store in (self.hot, self.dirty):
            for key in [k for k, hot in store.items() if hot.partition in partitions]:
                del store[key]
