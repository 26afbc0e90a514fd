"""The figures of a channel, as data, and a message's contribution to them packed in one int.

Every figure of a channel is a count of messages, so a message contributes 0 or 1 to each.
``FIGURE_RULES`` says, for each figure, which messages count: a predicate over the message's
evidence bits. Adding a figure is one line there (and its name in the snapshot model); the
day buckets, the codec and the snapshot follow from the table.

Packing the counters into 32-bit lanes of one Python int lets a transition move a message's
whole contribution with a single add (``bucket += new - old``) instead of one per figure, and
lets a snapshot add up a channel's buckets before unpacking once. Lanes never go negative in
a bucket at rest because a message's old contribution is always subtracted from the bucket
it was added to.

The lanes do not depend on any per-org setting: figures that machine opens and bot clicks
change (SPEC §7.1) have two lanes, one counting only people (``opened``) and one counting
everything (``opened_all``); the snapshot picks by the org's setting. So a stored contact
never has to be recounted when a setting changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection

LANE_BITS = 32
LANE_MASK = (1 << LANE_BITS) - 1

# Evidence bits kept on a message (what events it has seen), plus bookkeeping bits. The first
# seven keep the values codec versions 1-3 gave them.
F_DELIVERY = 1
F_OPEN = 2  # a person's open (an open without `machine`)
F_CLICK = 4  # a person's click: derived from the click times (counting.clicks)
F_REPLY = 8
F_SENDING_ERROR = 16  # derived from the subscription timeline at dispatch time
F_STATUS_EMITTED = 32  # a DispatchStatus was already emitted for this message
F_AUTOMATED = 64  # dispatch_kind of the earliest dispatch
F_MACHINE_OPEN = 128  # an open with `machine: true` (SPEC §7.1)
F_BOT_CLICK = 256  # a click flagged `bot`, or too soon after delivery: derived (counting.clicks)
F_BOUNCE = 512  # SPEC §7.2
F_HARD_BOUNCE = 1024
F_COMPLAINT = 2048
# Which optional registers the message holds (counting.state.MessageRecord, counting.codec).
F_HAS_CLICKS = 4096  # clicks: times of unflagged clicks, classified by their delay
F_HAS_BOT_FLAGGED = 8192  # bot_first / bot_last: clicks flagged `bot`
F_HAS_DELIVERED_AT = 16384  # delivered_at: the earliest delivery event

INTERACTIONS = F_OPEN | F_CLICK | F_REPLY  # a person engaged
MACHINE = F_MACHINE_OPEN | F_BOT_CLICK
# Everything that proves the message reached the contact (SPEC §3, §7.1: machine opens and bot
# clicks imply delivery; a spam complaint too: nobody reports a message they never received).
REACHED = F_DELIVERY | INTERACTIONS | MACHINE | F_COMPLAINT

# The bits a contribution depends on; the table is indexed by ``flags & TABLE_INDEX_MASK``.
TABLE_INDEX_MASK = (
    F_DELIVERY
    | F_OPEN
    | F_CLICK
    | F_REPLY
    | F_SENDING_ERROR
    | F_MACHINE_OPEN
    | F_BOT_CLICK
    | F_BOUNCE
    | F_HARD_BOUNCE
    | F_COMPLAINT
)

Rule = Callable[[int, bool], bool]  # (flags, channel tracks opens) -> the message counts


def _opened(flags: int, tracks_open: bool, people: int) -> bool:
    # A click or reply on a channel that tracks opens proves an open (SPEC §3).
    return bool(flags & (people & (F_OPEN | F_MACHINE_OPEN))) or (
        tracks_open and bool(flags & (people & (F_CLICK | F_BOT_CLICK) | F_REPLY))
    )


_EVERYONE = INTERACTIONS | MACHINE
_PEOPLE = INTERACTIONS

# name -> which dispatched messages count (a sending error counts in the first two only).
FIGURE_RULES: tuple[tuple[str, Rule], ...] = (
    ("dispatched", lambda f, o: True),
    ("sending_errors", lambda f, o: False),  # set for sending errors alone, below
    ("delivered", lambda f, o: bool(f & REACHED)),
    ("opened", lambda f, o: _opened(f, o, _PEOPLE)),
    ("clicked", lambda f, o: bool(f & F_CLICK)),
    ("replied", lambda f, o: bool(f & F_REPLY)),
    ("engaged", lambda f, o: bool(f & INTERACTIONS)),
    ("machine_opened", lambda f, o: bool(f & F_MACHINE_OPEN)),
    ("bot_clicked", lambda f, o: bool(f & F_BOT_CLICK)),
    ("bounced", lambda f, o: bool(f & F_BOUNCE) and not f & REACHED),
    ("hard_bounced", lambda f, o: bool(f & F_HARD_BOUNCE) and not f & REACHED),
    ("complained", lambda f, o: bool(f & F_COMPLAINT)),
    # The same three figures with machine opens and bot clicks counted, for orgs that do not
    # exclude them (EM_EXCLUDE_MACHINE_EVENTS=false or its per-org override).
    ("opened_all", lambda f, o: _opened(f, o, _EVERYONE)),
    ("clicked_all", lambda f, o: bool(f & (F_CLICK | F_BOT_CLICK))),
    ("engaged_all", lambda f, o: bool(f & _EVERYONE)),
)
FIGURES: tuple[str, ...] = tuple(name for name, _ in FIGURE_RULES)
LANE = {name: i for i, name in enumerate(FIGURES)}
DISPATCHED, SENDING_ERRORS = LANE["dispatched"], LANE["sending_errors"]
# What the snapshot shows under each name, by the org's setting: excluded -> people only.
SHOWN_AS_ALL = {"opened": "opened_all", "clicked": "clicked_all", "engaged": "engaged_all"}


def _lane(index: int) -> int:
    return 1 << (LANE_BITS * index)


def contribution(flags: int, tracks_open: bool) -> int:
    """Packed contribution of one dispatched message; see SPEC §3 and §7 for each figure."""
    if flags & F_SENDING_ERROR:
        # A sending error counts in dispatched and sending_errors and nowhere else.
        return _lane(DISPATCHED) | _lane(SENDING_ERRORS)
    value = 0
    for i, (_, counts) in enumerate(FIGURE_RULES):
        if counts(flags, tracks_open):
            value |= _lane(i)
    return value


def build_table(tracked: Collection[str]) -> tuple[int, ...]:
    """Every possible contribution of a channel, indexed by ``flags & TABLE_INDEX_MASK``.

    A lookup is cheaper than re-deriving the figures on every event. Only indexes that are
    subsets of the mask are ever looked up; the others hold 0.
    """
    tracks_open = "open" in tracked
    table = [0] * (TABLE_INDEX_MASK + 1)
    bits = [b for b in range(TABLE_INDEX_MASK.bit_length()) if TABLE_INDEX_MASK >> b & 1]
    for combination in range(1 << len(bits)):
        flags = 0
        for i, bit in enumerate(bits):
            if combination >> i & 1:
                flags |= 1 << bit
        table[flags] = contribution(flags, tracks_open)
    return tuple(table)


_LANES = struct.Struct(f"<{len(FIGURES)}I")  # LANE_BITS = 32: one u32 per lane, low lane first
assert LANE_BITS == 32


def unpack(packed: int) -> tuple[int, ...]:
    """The lanes of a packed total in ``FIGURES`` order. It runs for every channel of every
    contact a checkpoint writes: the lanes are read as the little-endian u32s of the number's
    bytes (one C call) rather than shifted out one by one. A total beyond the top lane (a lane
    overflowed, which the counts never come near) is shifted out, its top lane truncated as
    before."""
    try:
        return _LANES.unpack(packed.to_bytes(_LANES.size, "little"))
    except OverflowError:
        return tuple((packed >> (LANE_BITS * i)) & LANE_MASK for i in range(len(FIGURES)))


# The snapshot's figures per channel, in the order it shows them (the ``*_all`` lanes are
# shown under the plain names for orgs that count machine events; ``engaged`` is shown in the
# channel's ``engagement`` object, SPEC §7.3).
SHOWN_FIGURES: tuple[str, ...] = tuple(
    name for name in FIGURES if not name.endswith("_all") and name != "engaged"
)

# rate -> (numerator figure, denominator figure, the tracked metric that enables it, or None
# for a rate every channel has). Rounded half-up to 2 decimals (SPEC §3).
RATE_RULES: tuple[tuple[str, str, str, str | None], ...] = (
    ("delivery", "delivered", "dispatched", "delivery"),
    ("open", "opened", "delivered", "open"),
    ("click", "clicked", "delivered", "click"),
    ("response", "replied", "delivered", "response"),
    ("bounce", "bounced", "dispatched", None),  # SPEC §7.2
    ("complaint", "complained", "delivered", None),
)
