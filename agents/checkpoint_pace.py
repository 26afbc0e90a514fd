"""How long a checkpoint may wait under a backlog: longer while waiting still saves writes.

Under a backlog a checkpoint lands once its oldest entry has waited `EM_CHECKPOINT_MAX_SECONDS`
(or `EM_CHECKPOINT_MAX_EVENTS` entries are pending). Building one costs per dirty contact
(snapshot, encoding, history: 100-250 µs each on the benchmark's machines, several times what
applying an event costs), so a checkpoint is cheap per event when its contacts carry many
events each. Whether waiting longer pays shows in the entries applied lately: when they fall
on contacts the checkpoint already holds, it grows in events, not in contacts, and landing it
later writes each of those contacts once instead of twice; when they fall on new contacts,
waiting only delays snapshots.

So past `EM_CHECKPOINT_MAX_SECONDS` a checkpoint waits on (up to `STRETCH_LIMIT` times the
setting) while fewer than `COALESCING_SHARE` of its latest entries made a contact dirty that
was not already (measured over at least `SAMPLE_ENTRIES` entries, `Coalescing`). The entry
bound, and with it the memory the pending envelopes hold, does not move; and when the agent
has caught up, or keeps up, none of this applies: those checkpoints land at once or after the
linger.

Measured on the benchmark's backlog (200,000 events over 19,595 contacts) on a slow machine:
after 5 s a checkpoint held 153,000 entries and 19,241 contacts, nearly all there are, and took
3.3-4.4 s to build; the drain wrote 31,953-36,427 contacts in two or three checkpoints. With the
stretch it lands in one of 19,595 contacts and drained 32-45 % faster (BENCHMARKS.md, session
13).
"""

from __future__ import annotations

# A stream this close to caught up lands after the linger, whatever the agent's rate; and an
# ingest this far behind its inputs means a backlog, whatever the envelopes say.
LINGER_FLOOR_ENTRIES = 2_000

# Wait past the setting while at most this share of the latest entries made a new contact
# dirty (so each extra contact written carries at least four of the entries waited for).
COALESCING_SHARE = 0.25
# ... but at most this many times EM_CHECKPOINT_MAX_SECONDS (20 s at the default 5 s; Kafka
# Streams commits every 30 s).
STRETCH_LIMIT = 4.0
# The share is measured over at least this many entries (fewer say little).
SAMPLE_ENTRIES = 1_000


def backlog_checkpoint_due(age: float, max_seconds: float, new_share: float | None) -> bool:
    """Under a backlog, is a checkpoint whose oldest entry waited `age` seconds due?

    `new_share`: the share of its latest entries that made a contact dirty that was not
    already (None: not measured yet, so the setting alone decides)."""
    if age < max_seconds:
        return False
    if age >= max_seconds * STRETCH_LIMIT or new_share is None:
        return True
    return new_share > COALESCING_SHARE


class Coalescing:
    """The share of the latest entries of the pending checkpoint that made a new contact dirty,
    from the counts of its entries and dirty contacts seen over time."""

    def __init__(self) -> None:
        self.new_share: float | None = None
        self._mark = (0, 0)  # (entries, dirty contacts) at the start of the current sample

    def reset(self) -> None:
        """A checkpoint began: what is pending from now on is measured afresh. (Its first
        batch may hold more entries than the last mark, so the drop `observe` notices would
        not show.)"""
        self._mark = (0, 0)
        self.new_share = None

    def observe(self, entries: int, dirty: int) -> None:
        """The pending checkpoint holds `entries` entries over `dirty` dirty contacts now."""
        start_entries, start_dirty = self._mark
        if entries < start_entries or dirty < start_dirty:
            # What was pending went since without `reset` (abandoned: the processor forgot
            # it), so these entries are new, and so is the measurement.
            self._mark = (entries, dirty)
            self.new_share = None
            return
        added = entries - start_entries
        if added >= SAMPLE_ENTRIES:
            self.new_share = (dirty - start_dirty) / added
            self._mark = (entries, dirty)

    def due(self, age: float, max_seconds: float) -> bool:
        """`backlog_checkpoint_due` with the latest measured share."""
        return backlog_checkpoint_due(age, max_seconds, self.new_share)


def keeping_up_checkpoint_due(
    envelopes_behind: int,
    unframed: int,
    entries: int,
    envelopes: int,
    age: float,
    linger: float,
) -> bool:
    """Is a checkpoint of `entries` entries from `envelopes` envelopes, the oldest `age` seconds
    old, due because the agent has caught up or keeps up (latency first)?

    * At once when no envelope is known beyond those applied (`envelopes_behind`) and the
      ingest has framed nearly every input record (`unframed` below `LINGER_FLOOR_ENTRIES`).
      The ingest's lag counts because at the start of a backlog, or whenever the ingest is
      slower for a moment, the agent does catch up with the envelopes: a checkpoint landed
      then writes thousands of contacts that the rest of the backlog writes again.
    * After `linger` when what is left to apply (the envelopes behind, estimated from those
      pending, plus the unframed records) is about what the agent applies in a linger at its
      rate since the pending entries began: a steady stream it keeps up with, whose newest
      envelopes are always just behind.
    """
    if envelopes_behind == 0 and unframed < LINGER_FLOOR_ENTRIES:
        return True
    if age < linger or envelopes == 0:
        return False
    left = envelopes_behind * entries / envelopes + unframed
    per_linger = entries / age * linger
    return left <= max(per_linger, LINGER_FLOOR_ENTRIES)
