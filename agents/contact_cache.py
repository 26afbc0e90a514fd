"""Decoded contacts kept in memory between checkpoints: the worker's read-your-writes cache.

Every event of a contact used to cost a table read, a decode, an encode and a table write per
landing. Here a contact is decoded once when first touched, then stays decoded: events are
applied to it in place, and a checkpoint encodes each *dirty* contact once, however many events
it got since the previous checkpoint (quixstreams keeps the same per-partition update cache in
``state/base/transaction.py``).

Contacts that are clean after a checkpoint stay cached, least recently used first out, up to a
number of contacts (``EM_STATE_CACHE_CONTACTS``) and an estimate of the memory they take
(``EM_STATE_CACHE_MB``). A decoded contact takes about thirteen times its encoded size (dicts,
slotted records and strings against a packed binary; measured on the bench stream: 2.9 KB for a
contact of 5 events, 6.7 KB for 20, 28 KB for 100), and it grows with every message of its 90
days: a count alone let a soak's worker grow by the size of the whole state. The estimate is
kept per contact from the encoded size the table has for it (read at load, written at each
checkpoint). Nothing in here is the truth: the table is, and a rebalance or an abandoned
checkpoint simply drops the cache (``forget``) and the records are read again from the last
committed envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agents.stored import StoredContact, unpack
from counting import ContactState, CountingConfig

Load = Callable[[int, bytes], bytes | None]  # (partition, table key) -> stored value

# Estimated bytes of a decoded contact: DECODED_PER_ENCODED_BYTE x its encoded size, plus what
# the cache entry costs whatever the state (the key, the HotContact, two dict slots, an empty
# ContactState). Fitted on the bench stream (see the module docstring); an estimate, not a count.
DECODED_PER_ENCODED_BYTE = 13
ENTRY_OVERHEAD_BYTES = 800


def estimated_bytes(encoded_size: int) -> int:
    return DECODED_PER_ENCODED_BYTE * encoded_size + ENTRY_OVERHEAD_BYTES


@dataclass(slots=True, init=False)
class HotContact:
    stored: StoredContact
    partition: int
    org_id: str
    contact_id: str
    by_event: bool = False  # changed by an event since the last checkpoint (else by expiry only)
    size: int = ENTRY_OVERHEAD_BYTES  # estimated bytes held (`estimated_bytes`)

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        stored: StoredContact,
        partition: int,
        org_id: str,
        contact_id: str,
        by_event: bool = False,
        size: int = ENTRY_OVERHEAD_BYTES,
    ) -> None:
        self.stored = stored
        self.partition = partition
        self.org_id = org_id
        self.contact_id = contact_id
        self.by_event = by_event
        self.size = size


class ContactCache:
    def __init__(
        self, cfg: CountingConfig, load: Load, capacity: int, budget_bytes: int | None = None
    ) -> None:
        self.cfg = cfg
        self.load = load
        self.capacity = capacity  # contacts
        self.budget_bytes = budget_bytes  # estimated bytes (None: no limit)
        self.hot: dict[bytes, HotContact] = {}  # least recently used first
        self.dirty: dict[bytes, HotContact] = {}
        self.bytes = 0  # estimated bytes of the contacts in `hot`
        self.loads = 0  # misses that read the table (metrics)

    def __len__(self) -> int:
        return len(self.hot)

    def get(self, key: bytes, partition: int, org_id: str, contact_id: str) -> HotContact:
        """The contact, decoded: from the cache, else from the table, else a new one."""
        hot = self.hot.pop(key, None)
        if hot is None:
            raw = self.load(partition, key)
            self.loads += 1
            if raw is None:
                hot = HotContact(StoredContact(ContactState()), partition, org_id, contact_id)
            else:
                stored = unpack(raw, self.cfg)
                hot = HotContact(
                    stored, partition, org_id, contact_id, size=estimated_bytes(len(raw))
                )
            self.bytes += hot.size
        self.hot[key] = hot  # most recently used last
        return hot

    @property
    def over_budget(self) -> bool:
        """More is held than the budget allows (only a checkpoint can make dirty ones clean)."""
        return self.budget_bytes is not None and self.bytes > self.budget_bytes

    def touch(self, key: bytes, hot: HotContact, *, by_event: bool) -> None:
        """Mark the contact dirty: the next checkpoint writes it."""
        if by_event:
            hot.by_event = True
        self.dirty[key] = hot

    def take_dirty(self) -> dict[bytes, HotContact]:
        dirty, self.dirty = self.dirty, {}
        return dirty

    def landed(self, key: bytes, value: bytes | None) -> None:
        """After a checkpoint built the contact's write (`value`, None: removed from the table):
        clean again with its size re-estimated, or gone."""
        hot = self.hot.get(key)
        if hot is None:
            return
        if value is None:
            del self.hot[key]
            self.bytes -= hot.size
            return
        size = estimated_bytes(len(value))
        self.bytes += size - hot.size
        hot.size = size

    def trim(self) -> None:
        """Evict the least recently used clean contacts beyond the capacity or the budget."""
        excess = len(self.hot) - self.capacity
        budget = self.budget_bytes
        if excess <= 0 and (budget is None or self.bytes <= budget):
            return
        evict: list[bytes] = []
        held = self.bytes
        for key, hot in self.hot.items():  # least recently used first
            if excess <= 0 and (budget is None or held <= budget):
                break
            if key in self.dirty:
                continue
            evict.append(key)
            excess -= 1
            held -= hot.size
        for key in evict:
            del self.hot[key]
        self.bytes = held

    def forget(self, partitions: frozenset[int] | None = None) -> None:
        """Drop cached contacts (of these partitions, or all) and any pending change of them."""
        if partitions is None:
            self.hot.clear()
            self.dirty.clear()
            self.bytes = 0
            return
        for key in [k for k, hot in self.hot.items() if hot.partition in partitions]:
            self.bytes -= self.hot.pop(key).size
        for key in [k for k, hot in self.dirty.items() if hot.partition in partitions]:
            del self.dirty[key]
