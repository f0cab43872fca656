"""Encrypted tally end to end: ceremony, ballots, sums, shares, counts, and refusals."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.elgamal import Ciphertext, EncryptedSum
from ledger.encrypted_ballot import BallotContext, ContestShape, encoded_ciphertexts, encrypt_ballot, verify_payload
from ledger.errors import BadDecryptionShare, BadEncoding, BadTally, InsufficientShares
from ledger.group import base_mul
from ledger.tally_crypto import (
    CiphertextAccumulator,
    DecryptionShare,
    TallyContext,
    decrypt_tally,
    make_decryption_share,
    verify_decryption_share,
    verify_tally,
)
from ledger.trustees import public_share_key
from tests.crypto.ceremony import run_ceremony

SHAPE = (ContestShape(3, 1), ContestShape(3, 2))
VOTES = [
    [[1, 0, 0], [1, 1, 0]],
    [[0, 1, 0], [0, 1, 1]],
    [[1, 0, 0], [0, 0, 1]],
    [[0, 0, 0], [1, 0, 0]],
    [[0, 0, 1], [0, 0, 0]],
]
EXPECTED = [2, 1, 1, 2, 2, 2]


def _credential(voter: int) -> bytes:
    point = base_mul(100 + voter)
    assert point is not None
    return point.encode()


def _election() -> tuple[TallyContext, list[bytes], BallotContext, dict[int, int]]:
    cer = run_ceremony(5, 3)
    shares = {j: s.share for j, s in cer.secrets.items() if s.share is not None}
    tctx = TallyContext.from_ceremony(cer.ctx, cer.commitments)
    assert tctx.joint_key == cer.key.encode() and tctx.threshold == 3
    for j in range(1, 6):
        assert tctx.share_key(j) == public_share_key(j, cer.commitments)
    payloads = []
    bctx = BallotContext(cer.ctx.chain_id, cer.ctx.election_id, cer.key.encode(), _credential(0), SHAPE)
    for v, votes in enumerate(VOTES):
        payloads.append(encrypt_ballot(dataclasses.replace(bctx, credential=_credential(v)), votes)[0].encode())
    return tctx, payloads, bctx, shares


TCTX, PAYLOADS, BCTX, SHARES = _election()


def _sums(payloads: list[bytes]) -> tuple[EncryptedSum, ...]:
    acc = CiphertextAccumulator(6)
    for i, raw in enumerate(payloads):
        ctx = dataclasses.replace(BCTX, credential=_credential(i))
        checked = verify_payload(ctx, raw)
        acc.add_encoded(encoded_ciphertexts(ctx, raw))
        assert len(checked.ballot.ciphertexts()) == 6
    return acc.sums()


SUMS = _sums(PAYLOADS)
SHARE_RAW = make_decryption_share(TCTX, SUMS, 2, SHARES[2]).encode()


def test_t_of_n_tally_with_an_absent_trustee_and_a_bad_share() -> None:
    """Trustee 2 is absent, trustee 4 posts a wrong share: 4 is named, and 1, 3, 5 give
    the result. Fails when a share's proof is not checked (4's share would be combined)."""
    posted = [make_decryption_share(TCTX, SUMS, j, SHARES[j]) for j in (1, 3, 4, 5)]
    bad = make_decryption_share(TCTX, SUMS, 4, SHARES[4] + 1)
    posted[2] = bad
    outcome = decrypt_tally(TCTX, SUMS, posted, len(PAYLOADS))
    assert list(outcome.counts) == EXPECTED
    assert outcome.used == (1, 3, 5)
    assert set(outcome.rejected) == {4} and "trustee 4 choice 0" in outcome.rejected[4]
    again = verify_tally(TCTX, SUMS, posted, outcome.counts, len(PAYLOADS))
    assert again.rejected.keys() == {4}
    # and a different three (with the late trustee 2) give the same counts
    other = [make_decryption_share(TCTX, SUMS, j, SHARES[j]) for j in (2, 4, 5)]
    assert decrypt_tally(TCTX, SUMS, other, len(PAYLOADS)).counts == outcome.counts


def test_wrong_count_is_named() -> None:
    posted = [make_decryption_share(TCTX, SUMS, j, SHARES[j]) for j in (1, 2, 3)]
    counts = list(EXPECTED)
    counts[4] += 1
    with pytest.raises(BadTally) as info:
        verify_tally(TCTX, SUMS, posted, counts, len(PAYLOADS))
    assert info.value.where == "choice 4"


def test_too_few_valid_shares() -> None:
    posted = [make_decryption_share(TCTX, SUMS, j, SHARES[j]) for j in (1, 2)]
    posted.append(make_decryption_share(TCTX, SUMS, 3, SHARES[1]))  # trustee 3 using 1's share
    with pytest.raises(InsufficientShares):
        decrypt_tally(TCTX, SUMS, posted, len(PAYLOADS))


def test_share_from_a_non_trustee_and_duplicates() -> None:
    posted = [make_decryption_share(TCTX, SUMS, j, SHARES[j]) for j in (1, 2, 3)]
    outsider = dataclasses.replace(posted[0], trustee=6)
    with pytest.raises(BadDecryptionShare):
        verify_decryption_share(TCTX, SUMS, outsider)
    outcome = decrypt_tally(TCTX, SUMS, [*posted, outsider, posted[1]], len(PAYLOADS))
    assert list(outcome.counts) == EXPECTED and set(outcome.rejected) == {2, 6}


def test_a_ballot_dropped_from_the_sum_is_caught() -> None:
    """Shares made over a sum missing one ballot do not verify against the real sums."""
    short = _sums(PAYLOADS[:-1])
    posted = [make_decryption_share(TCTX, short, j, SHARES[j]) for j in (1, 2, 3)]
    with pytest.raises(InsufficientShares):
        verify_tally(TCTX, SUMS, posted, EXPECTED, len(PAYLOADS))


def test_share_encoding_round_trip() -> None:
    share = make_decryption_share(TCTX, SUMS, 2, SHARES[2])
    raw = share.encode()
    assert DecryptionShare.decode(raw) == share and DecryptionShare.decode(raw).encode() == raw
    with pytest.raises(BadEncoding):
        DecryptionShare.decode(raw + b"\x00")


def test_accumulator_paths_agree_across_chunks() -> None:
    """2,500 ballots cross two 1,024-point chunks; parsed and decoded paths agree."""
    from ledger.encrypted_ballot import EncryptedBallot

    ballots = [EncryptedBallot.decode(raw, max_size=len(raw)) for raw in PAYLOADS]
    a, b = CiphertextAccumulator(6), CiphertextAccumulator(6)
    for i in range(2500):
        raw = PAYLOADS[i % 5]
        a.add_encoded(encoded_ciphertexts(BCTX, raw))
        b.add_ciphertexts(ballots[i % 5].ciphertexts())
    assert a.sums() == b.sums() and a.ballots == 2500
    posted = [make_decryption_share(TCTX, a.sums(), j, SHARES[j]) for j in (1, 2, 3)]
    assert list(decrypt_tally(TCTX, a.sums(), posted, 2500).counts) == [500 * e for e in EXPECTED]


def test_cancelling_ballots_give_identity_sums() -> None:
    """Hostile ciphertexts can sum to the identity; the tally still completes."""
    ct = EncryptedSum.of([]).alpha
    assert ct is None
    ballot = verify_payload(dataclasses.replace(BCTX, credential=_credential(0)), PAYLOADS[0])
    cts = ballot.ballot.ciphertexts()
    neg = [Ciphertext(c.alpha.neg(), c.beta.neg()) for c in cts]
    acc = CiphertextAccumulator(6)
    acc.add_ciphertexts(cts)
    acc.add_ciphertexts(neg)
    sums = acc.sums()
    assert all(s.alpha is None and s.beta is None for s in sums)
    posted = [make_decryption_share(TCTX, sums, j, SHARES[j]) for j in (1, 2, 3)]
    assert all(e.point is None for e in posted[0].entries)
    assert list(decrypt_tally(TCTX, sums, posted, 2).counts) == [0] * 6


@given(st.data())
def test_mutated_shares_never_verify(data: st.DataObject) -> None:
    """A changed byte of a posted share is refused when decoded or when checked."""
    raw = bytearray(SHARE_RAW)
    for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=3, unique=True)):
        raw[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises((BadEncoding, BadDecryptionShare)):
        verify_decryption_share(TCTX, SUMS, DecryptionShare.decode(bytes(raw)))


def test_wide_ballots_accumulate_in_small_chunks() -> None:
    acc = CiphertextAccumulator(4000)
    assert acc._chunk == 16
    ct = verify_payload(dataclasses.replace(BCTX, credential=_credential(0)), PAYLOADS[0]).ballot.ciphertexts()[0]
    for _ in range(40):
        acc.add_ciphertexts([ct] * 4000)
    sums = acc.sums()
    assert sums[0] == sums[3999] == EncryptedSum(ct.alpha.mul(40), ct.beta.mul(40))
