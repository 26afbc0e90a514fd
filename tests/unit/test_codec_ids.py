"""Message ids are packed without raising: `_encode_id` checks for lowercase hex with one
`strip` instead of `bytes.fromhex` in a try (an exception per non-hex id cost ~13 % of a
checkpoint's build). Its bytes must stay exactly the previous release's (`codec_v3`, frozen),
since stored contacts are compared and replayed byte for byte, and read back to the same text."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from counting import codec
from tests.unit import codec_v3

HEX = "0123456789abcdef"

ids = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=HEX, max_size=300),
    st.text(alphabet=HEX + "ABCDEF -", max_size=40),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.binary(min_size=16, max_size=16).map(lambda b: "SM" + b.hex()),  # Twilio's form
)


@given(ids)
@example("")
@example("m1")
@example("m12345")
@example("ab cd")  # fromhex skips spaces: not canonical, so not packed
@example("0" * 0x1FE)
@example("0" * 0x200)
@example("12345678-1234-1234-1234-1234567890ab")
@example("12345678-1234-1234-1234-1234567890AB")
@example("1234567 -1234-1234-1234-1234567890ab")
@example("é" * 200)
def test_ids_are_packed_as_the_previous_release_packed_them(text: str) -> None:
    packed = codec._encode_id(text)
    assert packed == codec_v3._encode_id(text)
    assert codec._decode_id(packed + b"tail", 0) == (text, len(packed))


def test_hex_forms_are_packed_and_others_kept_as_text() -> None:
    assert codec._encode_id("12345678-1234-1234-1234-1234567890ab")[0] == 0xFF
    assert codec._encode_id("abcd")[:2] == b"\xfe\x02"
    assert codec._encode_id("SM" + "ab" * 16)[0] == 34  # its length: kept as UTF-8
    assert codec._encode_id("ABCD") == b"\x04ABCD"
