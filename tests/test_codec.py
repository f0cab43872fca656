from __future__ import annotations

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from ledger import codec
from ledger.errors import BadEncoding, Oversized

items = st.recursive(
    st.binary(max_size=80),
    lambda children: st.lists(children, max_size=6),
    max_leaves=20,
)


@given(items)
def test_encode_matches_pyrlp_and_round_trips(item: codec.Item) -> None:
    encoded = codec.encode(item)
    assert encoded == rlp.encode(item)
    assert codec.decode(encoded) == item


@given(items, st.data())
def test_every_truncation_and_extension_is_refused(item: codec.Item, data: st.DataObject) -> None:
    encoded = codec.encode(item)
    for cut in range(len(encoded)):
        with pytest.raises(BadEncoding):
            codec.decode(encoded[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=4))
    with pytest.raises(BadEncoding):
        codec.decode(encoded + extra)


@given(st.binary(max_size=64))
def test_decoder_accepts_exactly_the_canonical_encodings(blob: bytes) -> None:
    """Whatever we accept re-encodes to the same bytes, and pyrlp agrees on acceptance."""
    try:
        ours = codec.decode(blob)
    except BadEncoding:
        with pytest.raises(rlp.exceptions.DecodingError):
            rlp.decode(blob, strict=True)
        return
    assert codec.encode(ours) == blob
    assert rlp.decode(blob, strict=True) == ours


@pytest.mark.parametrize(
    "blob, why",
    [
        (b"\x81\x05", "single byte"),
        (b"\xb8\x03abc", "long length form"),
        (b"\xb9\x00\x38" + b"a" * 56, "leading zero"),
        (b"\xc2\x01", "past the end"),
        (b"", "unexpected end"),
    ],
)
def test_non_canonical_forms_are_named(blob: bytes, why: str) -> None:
    with pytest.raises(BadEncoding, match=why):
        codec.decode(blob)


def test_typed_readers_refuse_wrong_shapes() -> None:
    with pytest.raises(BadEncoding, match="leading zero"):
        codec.as_int(b"\x00\x01", "n")
    with pytest.raises(BadEncoding, match="expected 32 bytes"):
        codec.as_bytes(b"abc", "h", size=32)
    with pytest.raises(Oversized):
        codec.decode(b"\x80" * 10, max_size=5)
    with pytest.raises(BadEncoding, match="expected 2 fields"):
        codec.as_list([b"a"], 2, "pair")
    with pytest.raises(BadEncoding, match="UTF-8"):
        codec.as_text(b"\xff", "name", max_size=8)
