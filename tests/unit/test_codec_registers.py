"""The codec writes the two most common register sets (delivered; opened and delivered, within
35 minutes of the dispatch) in one struct call: the bytes must be exactly what the general
`_registers` writes, and read back to the same message, on both sides of the i32 limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from counting import codec
from counting.codec import decode, encode
from counting.contrib import F_HAS_DELIVERED_AT, F_OPEN
from counting.state import ContactState, MessageRecord

DISPATCHED = 1_780_000_000_000_000
LIMIT = 2**31

offsets = st.one_of(
    st.integers(-LIMIT - 5, -LIMIT + 5),
    st.integers(LIMIT - 5, LIMIT + 5),
    st.integers(0, 3_600_000_000),
)


def _state(flags: int, delivered_offset: int, first_open: int) -> tuple[ContactState, bytes]:
    record = MessageRecord(
        "email",
        DISPATCHED,
        flags,
        first_open=first_open,
        delivered_at=DISPATCHED + delivered_offset,
    )
    state = ContactState(messages={"m-1": record}, oldest_dispatch=DISPATCHED)
    state.sent_channels["email"] = DISPATCHED
    general = codec._registers(record, flags, DISPATCHED)
    return state, general


@given(offsets, st.sampled_from([F_HAS_DELIVERED_AT, F_HAS_DELIVERED_AT | F_OPEN]))
def test_common_register_sets_are_written_as_the_general_form(offset: int, flags: int) -> None:
    state, general = _state(flags, offset, 1_780_000_100 if flags & F_OPEN else 0)
    encoded = encode(state)
    # The message as `encode` lays it out: header (channel 0, flags, offset 0 from the base),
    # then the registers, then the id.
    message = codec._MESSAGE.pack(0, flags, 0, 0) + general + codec._encode_id("m-1")
    assert message in encoded
    back = decode(encoded)
    assert back.messages["m-1"] == state.messages["m-1"]
    assert encode(back) == encoded
