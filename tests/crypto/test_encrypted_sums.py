"""The canonical sums (``ledger.encrypted_tally``) and the check of a published encrypted
result (``ledger.result_check``), pure: a real key ceremony among in-memory trustees,
real ballots, sums, shares and counts, and every way the result can be wrong."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import codec
from ledger.elgamal import EncryptedSum
from ledger.encrypted_ballot import BallotContext, ContestShape, EncryptedBallot, encrypt_ballot
from ledger.encrypted_tally import (
    MAX_SUMS_BYTES,
    SUMS_FORMAT,
    EncryptedTally,
    pack_points,
    read_sums_file,
    sum_counted,
    sum_packed,
    sums_file_obj,
)
from ledger.errors import BadEncoding, BadPoint, BadTally, InsufficientShares, LedgerError, Oversized
from ledger.genesis import ENCRYPTED_SCHEME, IDENTIFIER_PATTERN, MAX_CHOICES, Contest, ElectionDef
from ledger.group import base_mul
from ledger.result_check import check_result, decode_posted_shares
from ledger.tally_crypto import DecryptionShare, TallyContext, make_decryption_share
from tests.crypto.ceremony import run_ceremony

CHAIN, ELECTION = "chain-a", "e-2026"
CONTESTS = (Contest("chair", ("ada", "grace", "alan"), 1), Contest("board", ("x", "y", "z"), 2))
SHAPES = tuple(ContestShape(len(c.choices), c.limit) for c in CONTESTS)
VOTES = [
    [[1, 0, 0], [1, 1, 0]],
    [[0, 1, 0], [0, 1, 1]],
    [[1, 0, 0], [0, 0, 1]],
    [[0, 0, 0], [1, 0, 0]],
    [[0, 0, 1], [0, 0, 0]],
    [[0, 1, 0], [1, 0, 1]],
]
COUNTS = [2, 2, 1, 3, 2, 3]  # per choice, contest by contest

CEREMONY = run_ceremony(5, 3, chain=CHAIN, election=ELECTION)
SECRETS = {j: s.share for j, s in CEREMONY.secrets.items() if s.share is not None}
TCTX = TallyContext.from_ceremony(CEREMONY.ctx, CEREMONY.commitments)
ELECTION_DEF = ElectionDef(
    election_id=ELECTION, question="Board", choices=(), credential_root=bytes(32), credential_count=len(VOTES),
    opens_at_ms=0, closes_at_ms=1, payload_scheme=ENCRYPTED_SCHEME, contests=CONTESTS,
    joint_key=CEREMONY.key.encode(),
)


def _credential(voter: int) -> bytes:
    point = base_mul(1000 + voter)
    assert point is not None
    return point.encode()


def _payloads() -> list[bytes]:
    out = []
    for v, votes in enumerate(VOTES):
        context = BallotContext(CHAIN, ELECTION, CEREMONY.key.encode(), _credential(v), SHAPES)
        out.append(encrypt_ballot(context, votes)[0].encode())
    return out


PAYLOADS = _payloads()
SUMS = sum_counted(CHAIN, ELECTION_DEF, PAYLOADS)


def _naive(payloads: list[bytes]) -> tuple[EncryptedSum, ...]:
    """The sums by the reference decoder and point additions one by one."""
    ballots = [EncryptedBallot.decode(raw, max_size=len(raw)).ciphertexts() for raw in payloads]
    return tuple(EncryptedSum.of([b[c] for b in ballots]) for c in range(6))


def _shares(sums: EncryptedTally, trustees: tuple[int, ...]) -> list[DecryptionShare]:
    return [make_decryption_share(TCTX, sums.sums, j, SECRETS[j]) for j in trustees]


# --- the sums and their encoding ------------------------------------------------------
def test_every_way_of_summing_agrees() -> None:
    """In one process, in packed chunks of any size (as worker processes sum them), and
    the reference sum: the same points, and the ballots counted."""
    assert SUMS.sums == _naive(PAYLOADS) and SUMS.ballots == len(VOTES)
    for per_chunk in (1, 4, 6, 100):
        chunks = list(pack_points(SHAPES, PAYLOADS, per_chunk))
        assert sum(n for n, _ in chunks) == len(VOTES) and all(len(p) == n * 6 * 66 for n, p in chunks)
        total = EncryptedTally.empty(CHAIN, ELECTION_DEF)
        for _, packed in chunks:
            total = total.plus(sum_packed(CHAIN, ELECTION, 6, packed))
        assert total == SUMS
    assert sum_counted(CHAIN, ELECTION_DEF, []) == EncryptedTally.empty(CHAIN, ELECTION_DEF)


def test_a_point_that_does_not_parse_is_refused() -> None:
    """Fails when the packed path trusts its input: a point off the curve would be summed."""
    (_, packed), = pack_points(SHAPES, PAYLOADS[:1])
    broken = packed[:1] + bytes(32) + packed[33:]  # x = 0 is not on secp256k1
    with pytest.raises(BadPoint):
        sum_packed(CHAIN, ELECTION, 6, broken)
    with pytest.raises(LedgerError):
        sum_counted(CHAIN, ELECTION_DEF, [PAYLOADS[0][:-1]])


identifiers = st.from_regex(IDENTIFIER_PATTERN.replace("$", r"\Z"), fullmatch=True)
points = st.one_of(st.none(), st.integers(1, 2**250).map(base_mul))


@st.composite
def tallies(draw: st.DrawFn) -> EncryptedTally:
    pairs = draw(st.lists(st.tuples(points, points), min_size=1, max_size=6))
    return EncryptedTally(draw(identifiers), draw(identifiers), draw(st.integers(0, 2**64 - 1)),
                          tuple(EncryptedSum(a, b) for a, b in pairs))


@given(tallies())
def test_sums_round_trip_exactly(total: EncryptedTally) -> None:
    raw = total.encode()
    assert EncryptedTally.decode(raw) == total and EncryptedTally.decode(raw).encode() == raw
    assert len(raw) <= MAX_SUMS_BYTES
    again, _ = read_sums_file(json.dumps(sums_file_obj(total, genesis_hash=bytes(32), tip_height=3,
                                                       voting_closed=True)).encode())
    assert again == total


RAW = SUMS.encode()


@given(st.lists(st.tuples(st.integers(0, len(RAW) - 1), st.integers(1, 255)), min_size=1, max_size=3))
def test_only_canonical_encodings_decode(flips: list[tuple[int, int]]) -> None:
    """Changed bytes are refused, or decode to sums whose encoding is exactly those bytes
    (a changed point that is still a point, say): never a second encoding of any sums.
    Fails when the decoder skips a check (the format's bytes, say)."""
    raw = bytearray(RAW)
    for pos, xor in flips:
        raw[pos] ^= xor
    try:
        decoded = EncryptedTally.decode(bytes(raw))
    except BadEncoding:
        return
    assert decoded.encode() == bytes(raw)


def test_cut_or_extended_encodings_are_refused() -> None:
    for n in range(len(RAW)):
        with pytest.raises(BadEncoding):
            EncryptedTally.decode(RAW[:n])
    for extra in (b"\x00", b"\x80", RAW):
        with pytest.raises(BadEncoding):
            EncryptedTally.decode(RAW + extra)


def _items(**change: codec.Item) -> bytes:
    fields = {"format": SUMS_FORMAT, "chain": CHAIN.encode(), "election": ELECTION.encode(), "ballots": b"\x06",
              "pairs": [[s.alpha.encode() if s.alpha else b"", s.beta.encode() if s.beta else b""]
                        for s in SUMS.sums]}
    fields.update(change)
    return codec.encode(list(fields.values()))


@pytest.mark.parametrize(("raw", "match"), [
    (_items(), None),
    (_items(format=b"ballot-ledger/encrypted-sums/v2"), "format"),
    (_items(chain=b"Chain-A"), "chain id"),
    (_items(election=b""), "election id"),
    (_items(ballots=b"\x00\x06"), "leading zero"),
    (_items(ballots=b"\x01" + bytes(8)), "more ballots"),
    (_items(pairs=[]), "0 choices"),
    (_items(pairs=[[b"", b""]] * (MAX_CHOICES + 1)), "256 choices"),
    (_items(pairs=[[b"\x02" + bytes(32), b""]]), "not on the secp256k1 curve"),
    (_items(pairs=[[b"\x04" + bytes(32), b""]]), "compressed point"),
    (_items(pairs=[[b""]]), "2 fields"),
    (_items() + b"\x00", "trailing"),
])
def test_malformed_sums_are_refused_with_a_reason(raw: bytes, match: str | None) -> None:
    if match is None:
        assert EncryptedTally.decode(raw) == SUMS
        return
    with pytest.raises(BadEncoding, match=match):
        EncryptedTally.decode(raw)


def test_oversized_sums_are_refused_unread() -> None:
    with pytest.raises(Oversized):
        EncryptedTally.decode(bytes(MAX_SUMS_BYTES + 1))


def test_a_sums_file_must_agree_with_its_encoding() -> None:
    obj = sums_file_obj(SUMS, genesis_hash=bytes(32), tip_height=9, voting_closed=True)
    assert read_sums_file(json.dumps(obj).encode())[0] == SUMS
    for key, value in (("ballots_summed", 5), ("ballots_summed", True), ("election_id", "other"),
                       ("sums_sha256", "00" * 32), ("sums", obj["sums"].upper()), ("voting_closed", 1),
                       ("genesis_hash", "AB" * 32), ("format", "x")):
        with pytest.raises(BadEncoding):
            read_sums_file(json.dumps({**obj, key: value}).encode())
    with pytest.raises(BadEncoding):
        read_sums_file(json.dumps({**obj, "extra": 1}).encode())


# --- checking a published result ------------------------------------------------------
def test_an_honest_result_with_an_absent_trustee_checks_out() -> None:
    """Trustees 1, 3, 5 post (2 and 4 absent): the counts check out. Fails when the
    counts are not compared with the decryption (see the wrong-count tests)."""
    outcome = check_result(TCTX, SUMS, _shares(SUMS, (1, 3, 5)), COUNTS)
    assert outcome.counts == tuple(COUNTS) and outcome.used == (1, 3, 5) and not outcome.refused


def test_a_wrong_share_is_named_and_the_result_stands_on_t_good_ones() -> None:
    """Fails when a share's proof goes unchecked: trustee 4's wrong share would be combined."""
    posted = _shares(SUMS, (1, 3, 5))
    posted.insert(2, make_decryption_share(TCTX, SUMS.sums, 4, SECRETS[4] + 1))
    outcome = check_result(TCTX, SUMS, posted, COUNTS)
    assert outcome.used == (1, 3, 5) and set(outcome.refused) == {4}
    assert outcome.refused[4].startswith("bad_decryption_share at trustee 4 choice 0")
    outsider = dataclasses.replace(posted[0], trustee=6)
    outcome = check_result(TCTX, SUMS, [*posted, outsider], COUNTS)
    assert set(outcome.refused) == {4, 6} and "not a trustee" in outcome.refused[6]


def test_shares_as_posted_are_decoded_or_refused_by_their_poster() -> None:
    """Bytes that do not decode, and a share posted by one trustee as another's, are
    named by who posted them; the result stands on the rest."""
    good = _shares(SUMS, (1, 3, 5))
    posted = [(1, good[0].encode()), (2, b"\xc0"), (3, good[1].encode()), (4, good[0].encode()),
              (5, good[2].encode())]
    shares, refused = decode_posted_shares(posted)
    assert [s.trustee for s in shares] == [1, 3, 5] and set(refused) == {2, 4}
    assert refused[2].startswith("bad_encoding at trustee 2")
    assert refused[4] == "bad_decryption_share at trustee 4: posted by trustee 4 as trustee 1's share"
    outcome = check_result(TCTX, SUMS, shares, COUNTS, refused=refused)
    assert outcome.used == (1, 3, 5) and set(outcome.refused) == {2, 4}
    with pytest.raises(InsufficientShares) as info:
        check_result(TCTX, SUMS, shares[:2], COUNTS, refused=refused)
    assert "trustee 4" in info.value.message and "trustee 2" in info.value.message


def test_fewer_than_t_good_shares_is_insufficient() -> None:
    posted = [*_shares(SUMS, (1, 2)), make_decryption_share(TCTX, SUMS.sums, 3, SECRETS[1])]
    with pytest.raises(InsufficientShares) as info:
        check_result(TCTX, SUMS, posted, COUNTS)
    assert info.value.where == "decryption shares" and "trustee 3" in info.value.message


@pytest.mark.parametrize("choice", range(6))
def test_a_wrong_count_is_named_by_its_choice(choice: int) -> None:
    """Fails when any one choice's count escapes the comparison."""
    counts = list(COUNTS)
    counts[choice] += 1
    with pytest.raises(BadTally) as info:
        check_result(TCTX, SUMS, _shares(SUMS, (2, 3, 4)), counts)
    assert info.value.where == f"choice {choice}"


def test_a_ballot_dropped_from_the_sum_is_found() -> None:
    """Voter 5 ([0, 1, 0], [1, 0, 1]) left out. Counts of the short sum, shares over the
    full one: named by the first choice it changes. Shares and counts both over the short
    sum: no share verifies against the recomputed sums."""
    short = sum_counted(CHAIN, ELECTION_DEF, PAYLOADS[:-1])
    short_counts = [c - v for c, v in zip(COUNTS, [0, 1, 0, 1, 0, 1], strict=True)]
    assert check_result(TCTX, short, _shares(short, (1, 2, 3)), short_counts).counts == tuple(short_counts)
    with pytest.raises(BadTally) as info:
        check_result(TCTX, SUMS, _shares(SUMS, (1, 2, 3)), short_counts)
    assert info.value.where == "choice 1"
    with pytest.raises(InsufficientShares) as refused:
        check_result(TCTX, SUMS, _shares(short, (1, 2, 3)), short_counts)
    assert all(f"trustee {j}" in refused.value.message for j in (1, 2, 3))


@pytest.mark.parametrize(("counts", "where"), [
    (COUNTS[:-1], "counts"),
    ([*COUNTS, 0], "counts"),
    ([7, *COUNTS[1:]], "choice 0"),  # more than the 6 ballots summed
    ([*COUNTS[:3], -1, *COUNTS[4:]], "choice 3"),
])
def test_counts_of_the_wrong_shape_or_range_are_named(counts: list[int], where: str) -> None:
    with pytest.raises(BadTally) as info:
        check_result(TCTX, SUMS, _shares(SUMS, (1, 2, 3)), counts)
    assert info.value.where == where


def test_sums_of_another_election_are_refused() -> None:
    other = dataclasses.replace(SUMS, election_id="e-2027")
    with pytest.raises(BadTally) as info:
        check_result(TCTX, other, _shares(SUMS, (1, 2, 3)), COUNTS)
    assert info.value.where == "sums"
