"""The ``elgamal-secp256k1/v1`` payload: encodings, proofs, refusals, audits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.elgamal import Ciphertext, EncryptedSum, decrypt_with_secret, discrete_log
from ledger.encrypted_ballot import (
    BallotContext,
    BallotOpening,
    ContestShape,
    EncryptedBallot,
    EncryptedContest,
    _layout,
    check_opening,
    encrypt_ballot,
    verify_ballot,
    verify_payload,
)
from ledger.errors import BadBallotProof, BadBallotShape, BadEncoding, BadOpening, BadPoint, BadScalar
from ledger.group import ORDER, base_mul, random_scalar
from ledger.range_fast import range_commitments_fast
from ledger.sigma import RangeProof, range_commitments
from tests.crypto.helpers import forge_ballot, make_context

SECRET, CTX = make_context()
RAW, OPENING = (lambda b: (b[0].encode(), b[1]))(encrypt_ballot(CTX, [[0, 0, 1, 0, 0]]))


@pytest.mark.parametrize(
    "shape,selections",
    [
        (((5, 1),), [[0, 0, 0, 0, 1]]),
        (((5, 1),), [[0, 0, 0, 0, 0]]),
        (((3, 2), (2, 1)), [[1, 0, 1], [0, 1]]),
        (((4, 4),), [[1, 1, 1, 1]]),
        (((1, 1),), [[1]]),
    ],
)
def test_honest_ballots_verify_and_decrypt(shape: tuple[tuple[int, int], ...], selections: list[list[int]]) -> None:
    secret, ctx = make_context(shape)
    ballot, opening = encrypt_ballot(ctx, selections)
    raw = ballot.encode()
    checked = verify_payload(ctx, raw)
    assert checked.ballot == EncryptedBallot.decode(raw, max_size=len(raw))
    assert checked.ballot.encode() == raw
    assert len(raw) <= ctx.max_payload_size()
    plain = [discrete_log(decrypt_with_secret(EncryptedSum.of([c]), secret), 1) for c in ballot.ciphertexts()]
    assert plain == [m for row in selections for m in row]
    check_opening(ctx, ballot, opening)
    assert BallotOpening.decode(opening.encode()) == opening
    assert "1" not in repr(opening)


def test_trailing_and_truncated_bytes_refused() -> None:
    with pytest.raises(BadEncoding):
        verify_payload(CTX, RAW + b"\x00")
    with pytest.raises(BadEncoding):
        verify_payload(CTX, RAW[:-1])


def test_oversized_refused_before_parsing() -> None:
    with pytest.raises(BadEncoding):
        verify_payload(CTX, b"\xc0" * (CTX.max_payload_size() + 1))


def _replace_selection_bytes(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert raw.count(old) == 1
    return raw.replace(old, new)


def test_non_canonical_scalar_refused() -> None:
    """Values >= ORDER (v + ORDER would act like v if the decoder reduced) are refused."""
    ballot = EncryptedBallot.decode(RAW, max_size=len(RAW))
    v = ballot.contests[0].selections[0].proof.responses[0]
    for bad in (ORDER, ORDER + 1, 2**256 - 1):
        mutated = _replace_selection_bytes(RAW, v.to_bytes(32, "big"), bad.to_bytes(32, "big"))
        with pytest.raises(BadScalar):
            verify_payload(CTX, mutated)


def test_off_curve_and_infinity_points_refused() -> None:
    ballot = EncryptedBallot.decode(RAW, max_size=len(RAW))
    alpha = ballot.contests[0].selections[1].ciphertext.alpha.encode()
    x = int.from_bytes(alpha[1:], "big")
    p = 2**256 - 2**32 - 977
    while pow((x**3 + 7) % p, (p - 1) // 2, p) == 1:
        x += 1
    for bad in (alpha[:1] + x.to_bytes(32, "big"), b"\x00" * 33):
        with pytest.raises(BadPoint):
            verify_payload(CTX, _replace_selection_bytes(RAW, alpha, bad))


def test_selection_encrypting_two_is_refused() -> None:
    """Fails when the selection proof stops binding the plaintext to 0 or 1 (tried by
    making verify_range accept without its hash check)."""
    forged = forge_ballot(CTX, [[2, 0, 0, 0, 0]], [[1, 0, 0, 0, 0]], claimed_sums=[1])
    with pytest.raises(BadBallotProof) as info:
        verify_payload(CTX, forged.encode())
    assert info.value.where == "contest 0 selection 0"


def test_over_limit_contest_is_refused() -> None:
    """Every selection is honestly 0 or 1, but two are selected where the limit is 1.
    Fails when the contest proof is skipped (tried by hand)."""
    forged = forge_ballot(CTX, [[1, 0, 1, 0, 0]], [[1, 0, 1, 0, 0]], claimed_sums=[1])
    with pytest.raises(BadBallotProof) as info:
        verify_payload(CTX, forged.encode())
    assert info.value.where == "contest 0"


def test_limit_two_contest_refuses_three() -> None:
    _, ctx = make_context(((4, 2),))
    forged = forge_ballot(ctx, [[1, 1, 1, 0]], [[1, 1, 1, 0]], claimed_sums=[2])
    with pytest.raises(BadBallotProof):
        verify_payload(ctx, forged.encode())


@pytest.mark.parametrize(
    "field,value",
    [
        ("chain_id", "chain-b"),
        ("election_id", "e-2027"),
        ("credential", make_context(voter=b"voter-2")[1].credential),
        ("joint_key", make_context()[1].joint_key),
        ("contests", (ContestShape(5, 2),)),
    ],
)
def test_proofs_are_bound_to_their_context(field: str, value: object) -> None:
    """Fails when the ballot statement stops hashing the chain, election, key,
    credential or shape (checked by removing the credential from it)."""
    other = dataclasses.replace(CTX, **{field: value})
    with pytest.raises((BadBallotProof, BadBallotShape)):
        verify_payload(other, RAW)


def test_swapped_ciphertexts_refused() -> None:
    ballot = EncryptedBallot.decode(RAW, max_size=len(RAW))
    sels = list(ballot.contests[0].selections)
    sels[0], sels[2] = sels[2], sels[0]
    swapped = EncryptedBallot((EncryptedContest(tuple(sels), ballot.contests[0].proof),))
    with pytest.raises(BadBallotProof):
        verify_ballot(CTX, swapped)


def test_ciphertext_from_another_ballot_refused() -> None:
    other, _ = encrypt_ballot(CTX, [[0, 0, 1, 0, 0]])
    ballot = EncryptedBallot.decode(RAW, max_size=len(RAW))
    sels = (other.contests[0].selections[0], *ballot.contests[0].selections[1:])
    mixed = EncryptedBallot((EncryptedContest(sels, ballot.contests[0].proof),))
    with pytest.raises(BadBallotProof):
        verify_ballot(CTX, mixed)


def test_wrong_shape_refused() -> None:
    _, ctx = make_context(((4, 1),))
    with pytest.raises(BadEncoding):  # too long for this shape: refused before parsing
        verify_payload(ctx, RAW)
    _, ctx = make_context(((5, 1), (2, 1)))
    with pytest.raises(BadBallotShape):
        verify_payload(ctx, RAW)
    with pytest.raises(BadBallotShape):
        ContestShape(3, 4)
    with pytest.raises(BadBallotShape):
        BallotContext("c", "e", CTX.joint_key, CTX.credential, ())


@given(st.data())
def test_random_mutations_never_verify(data: st.DataObject) -> None:
    """Any change of one to three bytes gives an encoding error or a failed proof, never
    a ballot that verifies."""
    raw = bytearray(RAW)
    for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=3, unique=True)):
        raw[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises((BadEncoding, BadBallotProof)):
        verify_payload(CTX, bytes(raw))


def test_fast_commitments_agree_with_the_reference() -> None:
    """Fails when the fast twin's arithmetic drifts from ``sigma.range_commitments``."""
    table = CTX.key.table
    ballot = EncryptedBallot.decode(RAW, max_size=len(RAW))
    for sel in ballot.contests[0].selections:
        ct = sel.ciphertext
        for proof in (sel.proof, RangeProof((random_scalar(), random_scalar()), (random_scalar(), random_scalar())),
                      RangeProof((1, 2, 3), (4, 5, 6))):
            fast = range_commitments_fast(table, ct.alpha.raw, ct.beta.raw, proof.challenges, proof.responses)
            assert fast == b"".join(range_commitments(table, ct, proof))


def test_zero_scalars_take_the_reference_path() -> None:
    table = CTX.key.table
    ct = EncryptedBallot.decode(RAW, max_size=len(RAW)).contests[0].selections[0].ciphertext
    zero = RangeProof((0, 5), (7, 0))
    assert range_commitments_fast(table, ct.alpha.raw, ct.beta.raw, zero.challenges, zero.responses) is None
    assert len(range_commitments(table, ct, zero)) == 4
    # beta g^-1 is the identity when beta = g: the reference handles it.
    g_ct = Ciphertext(ct.alpha, base_mul(1))  # type: ignore[arg-type]
    proof = RangeProof((3, 4), (5, 6))
    assert range_commitments_fast(table, g_ct.alpha.raw, g_ct.beta.raw, proof.challenges, proof.responses) is None
    assert range_commitments(table, g_ct, proof)[3] == CTX.key.point.mul(6).encode()  # K^6 (identity)^-4


def test_opening_checks() -> None:
    """Fails when an opening with another choice or nonce is accepted."""
    ballot = EncryptedBallot.decode(RAW, max_size=len(RAW))
    check_opening(CTX, ballot, OPENING)
    lie = BallotOpening(((0, 1, 0, 0, 0),), OPENING.nonces)
    with pytest.raises(BadOpening) as info:
        check_opening(CTX, ballot, lie)
    assert info.value.where == "contest 0 selection 1"
    rs = list(OPENING.nonces[0])
    rs[4] = (rs[4] + 1) % ORDER
    with pytest.raises(BadOpening):
        check_opening(CTX, ballot, BallotOpening(OPENING.choices, (tuple(rs),)))
    with pytest.raises(BadOpening):
        check_opening(CTX, ballot, BallotOpening(((0, 0, 1, 0),), (OPENING.nonces[0][:4],)))
    with pytest.raises(BadEncoding):
        BallotOpening.decode(OPENING.encode() + b"\x00")


def test_encrypt_refuses_bad_selections() -> None:
    for bad in ([[1, 1, 0, 0, 0]], [[2, 0, 0, 0, 0]], [[0, 0, 0, 0]], []):
        with pytest.raises(ValueError):
            encrypt_ballot(CTX, bad)


def _outcome(read: Callable[[bytes], EncryptedBallot | None], raw: bytes) -> object:
    try:
        return read(raw)
    except BadEncoding as exc:
        return type(exc)


@given(st.data())
def test_layout_reader_agrees_with_the_generic_decoder(data: st.DataObject) -> None:
    """The fixed-layout reader gives the generic decoder's ballot or its error class on
    any mutation, or declines (None) and leaves the generic decoder to decide. Fails
    when the reader skips a check the decoder makes (tried: the scalar range check)."""
    layout = _layout(CTX.contests)
    raw = bytearray(RAW)
    for _ in range(data.draw(st.integers(0, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):  # a scalar at or above the order, in some field
        ballot = EncryptedBallot.decode(RAW, max_size=len(RAW))
        v = ballot.contests[0].selections[data.draw(st.integers(0, 4))].proof.challenges[1]
        raw = bytearray(bytes(raw).replace(v.to_bytes(32, "big"), (2**256 - 1).to_bytes(32, "big")))
    fast = _outcome(layout.read, bytes(raw))
    if fast is not None:
        assert fast == _outcome(lambda b: EncryptedBallot.decode(b, max_size=len(b)), bytes(raw))


class _CallLog:
    """Stands in for libsecp256k1's bindings and records the name of every call."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def call(*args: object) -> object:
            self.calls.append(name)
            return attr(*args)

        return call


@pytest.mark.parametrize("shape,votes", [
    (((5, 1),), [[[1, 0, 0, 0, 0]], [[0, 0, 0, 0, 1]], [[0, 0, 0, 0, 0]]]),
    (((3, 2),), [[[1, 1, 0]], [[0, 0, 0]], [[0, 1, 0]]]),
])
def test_encryption_makes_the_same_library_calls_whatever_the_vote(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[tuple[int, int], ...], votes: list[list[list[int]]]
) -> None:
    """The sequence of libsecp256k1 calls does not depend on the choices (a timing side
    channel would otherwise show the vote). Fails when g^t for t = 0 is formed by other
    calls than for t != 0 (tried: summing the identity apart, which skips a combine)."""
    import ledger.group

    _, ctx = make_context(shape)
    ctx.key.point.encode()
    sequences = []
    for selections in votes:
        log = _CallLog(ledger.group.lib)
        monkeypatch.setattr(ledger.group, "lib", log)
        encrypt_ballot(ctx, selections)
        monkeypatch.setattr(ledger.group, "lib", log.real)
        sequences.append(log.calls)
    assert sequences[0] and all(seq == sequences[0] for seq in sequences)


def test_deterministic_with_a_fixed_rng_and_picklable() -> None:
    import pickle

    def counter() -> Callable[[], int]:
        state = [0]

        def draw() -> int:
            state[0] += 1
            return (state[0] * 0x9E3779B97F4A7C15) % ORDER or 1

        return draw

    a, oa = encrypt_ballot(CTX, [[0, 1, 0, 0, 0]], counter())
    b, ob = encrypt_ballot(CTX, [[0, 1, 0, 0, 0]], counter())
    assert a.encode() == b.encode() and oa == ob
    checked = verify_payload(CTX, a.encode())
    assert pickle.loads(pickle.dumps(checked)) == checked
