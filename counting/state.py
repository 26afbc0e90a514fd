"""Per-contact state: everything needed to recompute the snapshot exactly, and nothing more.

Every structure is either a set-like union (idempotent), a min/last-writer-wins register
(order-independent), or derived from those; that is what makes duplicates and disorder
harmless without relying on the dedupe ring. Everything is bounded by the window or by a
count, so the encoded size of a contact stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, init=False)
class MessageRecord:
    """One message of the contact, or the interactions waiting for its dispatch.

    ``first_*``, ``bot_first`` and ``bot_last`` are epoch SECONDS (0 = none): best send times
    only need the hour, and seconds keep the codec record small. Click and delivery times
    are µs, because a click less than ``EM_BOT_CLICK_SECONDS`` after its delivery is a bot's
    (SPEC §7.1) and that comparison must not depend on rounding. Each optional register is
    set exactly when its flag says so (``counting.contrib``: F_OPEN, F_MACHINE_OPEN, F_REPLY,
    F_HAS_CLICKS, F_HAS_BOT_FLAGGED, F_HAS_DELIVERED_AT), so the codec writes only those.
    """

    channel: str
    dispatched_at: int | None  # µs; None while the dispatch has not arrived (pending)
    flags: int = 0
    first_open: int = 0  # a person's first open
    first_reply: int = 0
    # Only while pending: processing time (µs) the wait started, and the earliest event
    # time (µs) of its interactions (a delete removes pending entries dated before it).
    pending_since: int = 0
    first_event_at: int = 0
    first_machine_open: int = 0
    # Unflagged clicks: their distinct times (µs), sorted, at most MAX_CLICK_TIMES. Whether
    # each is a person's or a bot's depends on the delivery time, which may arrive later, so
    # the times are kept and classified (counting.clicks).
    clicks: tuple[int, ...] = ()
    # Clicks flagged `bot`: earliest and latest (seconds).
    bot_first: int = 0
    bot_last: int = 0
    delivered_at: int = 0  # earliest delivery event (µs)
    # The message id as the codec writes it, kept once known: a contact is encoded at every
    # checkpoint that touches it, and its ids never change. Not part of the state's meaning.
    id_bytes: bytes = field(default=b"", compare=False, repr=False)

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        channel: str,
        dispatched_at: int | None,
        flags: int = 0,
        first_open: int = 0,
        first_reply: int = 0,
        pending_since: int = 0,
        first_event_at: int = 0,
        first_machine_open: int = 0,
        clicks: tuple[int, ...] = (),
        bot_first: int = 0,
        bot_last: int = 0,
        delivered_at: int = 0,
        id_bytes: bytes = b"",
    ) -> None:
        self.channel = channel
        self.dispatched_at = dispatched_at
        self.flags = flags
        self.first_open = first_open
        self.first_reply = first_reply
        self.pending_since = pending_since
        self.first_event_at = first_event_at
        self.first_machine_open = first_machine_open
        self.clicks = clicks
        self.bot_first = bot_first
        self.bot_last = bot_last
        self.delivered_at = delivered_at
        self.id_bytes = id_bytes


# Subscription timeline entry kinds; at equal timestamps an unsubscribe sorts after a
# subscribe, so "the last entry at or before t" makes the unsubscribe win a tie.
SUBSCRIBE = 0
UNSUBSCRIBE = 1

# (occurred_at µs, tie from the event id digest, value)
Register = tuple[int, int, Any]
# (occurred_at µs, tie, present, list name)
ListEntry = tuple[int, int, bool, str | None]


@dataclass(slots=True, init=False)
class ContactState:
    messages: dict[str, MessageRecord] = field(default_factory=dict)
    pending: dict[str, MessageRecord] = field(default_factory=dict)
    # channel -> dispatch day (UTC day number) -> packed contribution (counting.contrib)
    buckets: dict[str, dict[int, int]] = field(default_factory=dict)
    # channel -> sorted [(occurred_at µs, SUBSCRIBE|UNSUBSCRIBE)]
    subscriptions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    registration: dict[str, Register] = field(default_factory=dict)
    lists: dict[str, ListEntry] = field(default_factory=dict)
    # channel -> latest dispatch on it (µs), kept after its messages leave the window: a
    # contact stays in the monitor, with each channel it was sent on, until it is deleted
    # (SPEC §3). The latest time, not a flag, so that a delete at T forgets the channels whose
    # every dispatch was before T, in whatever order the two arrive.
    sent_channels: dict[str, int] = field(default_factory=dict)
    # event id digest -> UTC day of the event; insertion order is the ring order
    seen: dict[bytes, int] = field(default_factory=dict)
    tombstone: int | None = None
    first_seen: int | None = None
    dropped_pending: int = 0
    # Derived cache: earliest dispatch, so expiry can be skipped cheaply when nothing is due.
    oldest_dispatch: int | None = None

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        messages: dict[str, MessageRecord] | None = None,
        pending: dict[str, MessageRecord] | None = None,
        buckets: dict[str, dict[int, int]] | None = None,
        subscriptions: dict[str, list[tuple[int, int]]] | None = None,
        registration: dict[str, Register] | None = None,
        lists: dict[str, ListEntry] | None = None,
        sent_channels: dict[str, int] | None = None,
        seen: dict[bytes, int] | None = None,
        tombstone: int | None = None,
        first_seen: int | None = None,
        dropped_pending: int = 0,
        oldest_dispatch: int | None = None,
    ) -> None:
        self.messages = {} if messages is None else messages
        self.pending = {} if pending is None else pending
        self.buckets = {} if buckets is None else buckets
        self.subscriptions = {} if subscriptions is None else subscriptions
        self.registration = {} if registration is None else registration
        self.lists = {} if lists is None else lists
        self.sent_channels = {} if sent_channels is None else sent_channels
        self.seen = {} if seen is None else seen
        self.tombstone = tombstone
        self.first_seen = first_seen
        self.dropped_pending = dropped_pending
        self.oldest_dispatch = oldest_dispatch

    def is_empty(self) -> bool:
        """Nothing left worth storing: the table entry can be deleted."""
        return (
            not self.messages
            and not self.pending
            and not self.subscriptions
            and not self.registration
            and not self.lists
            and not self.sent_channels
            and self.tombstone is None
        )
