"""The ballot's two decoders: the fast reader of the common shape (``ledger.ballot_fast``)
and the plain reference (``BallotEnvelope.decode_plain``) accept exactly the same bytes
and read the same fields, and both agree with the strict codec and its field readers."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import codec
from ledger.ballot import MAX_PATH, BallotEnvelope, CredentialProof, ballot_digest
from ledger.ballot_fast import read_common_shape
from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.hashing import keccak256
from tests.test_objects import envelopes


def _fast(data: bytes) -> BallotEnvelope | None:
    """The envelope as the fast reader builds it, or None where it declines."""
    return BallotEnvelope.decode(data) if read_common_shape(data, MAX_PATH) is not None else None


def _reference_ballot_decode(data: bytes) -> BallotEnvelope:
    """Written here independently of ledger/: strict codec plus the typed field readers."""
    f = codec.as_list(codec.decode(data), 6, "ballot")
    proof = codec.as_list(f[3], 2, "proof")
    return BallotEnvelope(
        chain_id=codec.as_text(f[0], "chain", max_size=64),
        election_id=codec.as_text(f[1], "election", max_size=64),
        credential=codec.as_bytes(f[2], "credential", size=33),
        proof=CredentialProof.of(codec.as_int(proof[0], "index"),
                              codec.as_bytes_list(proof[1], "path", size=32, max_items=64)),
        payload=codec.as_bytes(f[4], "payload"),
        signature=codec.as_bytes(f[5], "signature", size=64),
    )


def _mutated(env: BallotEnvelope, data: st.DataObject) -> bytes:
    encoded = bytearray(env.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(0, len(encoded) - 1)))
        if op == "flip" and encoded:
            encoded[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            encoded[pos:pos] = data.draw(st.binary(min_size=1, max_size=3))
        elif encoded:
            del encoded[pos]
    return bytes(encoded)


@given(envelopes, st.data())
def test_common_shape_reader_accepts_nothing_the_generic_path_refuses(env: BallotEnvelope, data: st.DataObject) -> None:
    assert _fast(env.encode()) in (None, env)
    blob = _mutated(env, data)
    fast = _fast(blob)
    if fast is not None:
        reference = _reference_ballot_decode(blob)
        assert fast == reference and fast.encode() == blob
        # the hashes the fast path makes from spans are the ones made from the fields
        assert fast.digest() == ballot_digest(reference.chain_id, reference.election_id, reference.credential,
                                              reference.payload)
        assert fast.tracking_code == keccak256(blob)


def test_real_ballots_take_the_common_shape_path() -> None:
    key = SigningKey.from_seed(b"voter")
    for index, payload in [(0, b"\x00"), (5, b"\x02"), (200, b"\x7f"), (70_000, b"\x80" * 40)]:
        proof = CredentialProof.of(index, [bytes([i]) * 32 for i in range(17)])
        env = BallotEnvelope.create(key, chain_id="c", election_id="national-2026", proof=proof, payload=payload)
        fast = _fast(env.encode())
        assert fast == env and fast is not None
        assert fast.digest() == ballot_digest("c", "national-2026", key.public_key, payload)
        assert fast.tracking_code == keccak256(env.encode())


@given(envelopes, st.data())
def test_fast_ballot_decoder_agrees_with_the_generic_path(env: BallotEnvelope, data: st.DataObject) -> None:
    blob = _mutated(env, data)
    try:
        expected = _reference_ballot_decode(blob)
    except LedgerError:
        with pytest.raises(LedgerError):
            BallotEnvelope.decode(blob)
        return
    got = BallotEnvelope.decode(blob)
    assert got == expected and got.encode() == blob and dataclasses.replace(got).encode() == blob




@given(envelopes, st.data())
def test_plain_decoder_agrees_with_the_reference(env: BallotEnvelope, data: st.DataObject) -> None:
    blob = _mutated(env, data)
    try:
        expected = _reference_ballot_decode(blob)
    except LedgerError:
        with pytest.raises(LedgerError):
            BallotEnvelope.decode_plain(blob)
        return
    got = BallotEnvelope.decode_plain(blob)
    assert got == expected and got.encode() == blob


def _envelope_bytes(*, index: bytes, chain: bytes = b"\x61", path_items: int = 2) -> bytes:
    """An envelope assembled by hand, so each field's header can be made non-canonical."""
    key = SigningKey.from_seed(b"voter")
    path = codec.encode([bytes([i]) * 32 for i in range(path_items)])
    proof_payload = index + path
    proof = codec.list_header(len(proof_payload)) + proof_payload
    body = chain + codec.encode(b"e") + codec.encode(key.public_key) + proof + codec.encode(b"\x01")
    body += codec.encode(b"\x07" * 64)
    return codec.list_header(len(body)) + body


@pytest.mark.parametrize(
    ("what", "index", "chain"),
    [
        ("index with a leading zero", b"\x82\x00\x05", b"\x61"),
        ("small index as a one-byte string", b"\x81\x05", b"\x61"),
        ("one-byte chain id as a string", b"\x05", b"\x81\x61"),
    ],
)
def test_non_canonical_fields_are_refused_by_both_decoders(what: str, index: bytes, chain: bytes) -> None:
    """Fails when the fast reader drops any of its canonical-form conditions (tried by
    hand: removing the leading-zero check on the index made the first case decode)."""
    good = _envelope_bytes(index=b"\x05")
    assert _fast(good) == BallotEnvelope.decode_plain(good), "the hand-made envelope is a common-shape ballot"
    blob = _envelope_bytes(index=index, chain=chain)
    with pytest.raises(LedgerError):
        BallotEnvelope.decode_plain(blob)
    with pytest.raises(LedgerError):
        BallotEnvelope.decode(blob)


def test_uncommon_but_valid_shapes_go_to_the_plain_decoder() -> None:
    blob = _envelope_bytes(index=b"\x89" + b"\x01" * 9)  # a valid index longer than the fast reader takes
    assert read_common_shape(blob, MAX_PATH) is None
    assert BallotEnvelope.decode(blob) == BallotEnvelope.decode_plain(blob) == _reference_ballot_decode(blob)
