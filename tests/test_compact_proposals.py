"""Compact proposals (node.compact): ballots named by tracking code, put back from a mempool."""

from __future__ import annotations

from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.block import MAX_BLOCK_BYTES, Block
from ledger.errors import BadEncoding, BadSignature, LedgerError
from ledger.hashing import keccak256
from ledger.state import ChainTip
from node.compact import (
    SentProposals,
    compact_proposal,
    decode_proposal_request,
    encode_proposal_request,
    rebuild_proposal,
)
from node.consensus.messages import Proposal
from tests.helpers import certify, kit, next_block

K = kit(validators=4, voters=24)


@lru_cache(maxsize=1)
def ballots() -> tuple[bytes, ...]:
    return tuple(K.ballot(v, v % 3).encode() for v in range(24))


def proposal_of(raws: list[bytes], round_: int = 0, txs: tuple[bytes, ...] = ()) -> Proposal:
    block = next_block(K, ChainTip.at_genesis(K.genesis), raws, None)
    if txs:  # the codec carries any transaction bytes; the rules are not this module's concern
        block = Block(block.header, block.ballots, txs, certify(K, block))
    return Proposal.sign(K.validator_keys[1], chain_id=K.genesis.chain_id, height=1, round_=round_,
                         block=block.encode(), valid_round=-1, proposer_index=1)


def mempool_of(raws: list[bytes]) -> dict[bytes, bytes]:
    return {keccak256(r): r for r in raws}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 23), unique=True, max_size=24), st.integers(0, 5),
       st.lists(st.binary(max_size=40), max_size=3))
def test_rebuilt_from_a_mempool_holding_its_ballots_is_the_signed_proposal_byte_for_byte(
    picks: list[int], round_: int, txs: list[bytes]
) -> None:
    raws = [ballots()[i] for i in picks]
    proposal = proposal_of(raws, round_, tuple(txs))
    payload = compact_proposal(proposal, keccak256)
    others = [b for i, b in enumerate(ballots()) if i not in picks]
    rebuilt = rebuild_proposal(payload, mempool_of(raws + others).get)  # more than it needs
    assert rebuilt.proposal == proposal and rebuilt.missing == ()
    assert (rebuilt.height, rebuilt.round) == (1, round_)
    rebuilt.proposal.verify(K.genesis.validators)
    # Each ballot costs its 33-byte name instead of its own bytes.
    assert len(payload) <= len(proposal.encode()) - sum(len(r) for r in raws) + 33 * len(raws)


def test_missing_ballots_are_named_not_guessed() -> None:
    raws = list(ballots()[:6])
    payload = compact_proposal(proposal_of(raws), keccak256)
    held = mempool_of(raws[:2] + raws[3:5])
    rebuilt = rebuild_proposal(payload, held.get)
    assert rebuilt.proposal is None and (rebuilt.height, rebuilt.round) == (1, 0)
    assert rebuilt.missing == (keccak256(raws[2]), keccak256(raws[5]))


def test_a_name_for_another_ballot_rebuilds_a_block_its_signature_refuses() -> None:
    """A forged name cannot slip a different ballot in: the rebuilt block is not the one
    the proposer signed."""
    raws = list(ballots()[:4])
    proposal = proposal_of(raws)
    swapped = {keccak256(raws[0]): raws[1], **{keccak256(r): r for r in raws[1:]}}
    rebuilt = rebuild_proposal(compact_proposal(proposal, keccak256), swapped.get)
    assert rebuilt.proposal is not None and rebuilt.proposal != proposal
    with pytest.raises(BadSignature):
        rebuilt.proposal.verify(K.genesis.validators)


def test_a_name_of_the_wrong_size_is_refused() -> None:
    payload = compact_proposal(proposal_of(list(ballots()[:2])), lambda raw: keccak256(raw)[:31])
    with pytest.raises(BadEncoding, match="31 bytes"):
        rebuild_proposal(payload, lambda code: b"x")


def test_one_name_over_and_over_cannot_build_a_block_past_the_limit() -> None:
    big = bytes(1024 * 1024)
    proposal = proposal_of([ballots()[0]] * 70)  # 70 names for one ballot, each "1 MiB" here
    payload = compact_proposal(proposal, keccak256)
    assert 70 * len(big) > MAX_BLOCK_BYTES
    with pytest.raises(BadEncoding, match="block limit"):
        rebuild_proposal(payload, lambda code: big)


@pytest.mark.parametrize("payload", [b"", b"\xc0", bytes(40), encode_proposal_request(1, 0)[:-1]])
def test_malformed_compact_proposals_and_requests_are_refused(payload: bytes) -> None:
    with pytest.raises(LedgerError):
        rebuild_proposal(payload, lambda code: None)
    with pytest.raises(LedgerError):
        decode_proposal_request(payload)


@given(st.integers(0, 2**63), st.integers(0, 2**31))
def test_proposal_requests_round_trip(height: int, round_: int) -> None:
    assert decode_proposal_request(encode_proposal_request(height, round_)) == (height, round_)


def test_a_sent_proposal_goes_whole_to_each_peer_once() -> None:
    sent = SentProposals()
    sent.keep(5, 0, b"h5r0")
    assert sent.answer(b"peer-a", 5, 0) == b"h5r0"
    assert sent.answer(b"peer-a", 5, 0) is None  # asking again gets nothing more
    assert sent.answer(b"peer-b", 5, 0) == b"h5r0"
    assert sent.answer(b"peer-a", 5, 1) is None  # never proposed
    sent.keep(6, 2, b"h6r2")  # a later height: the earlier ones are decided
    assert sent.answer(b"peer-c", 5, 0) is None and sent.answer(b"peer-c", 6, 2) == b"h6r2"
    for round_ in range(3, 3 + SentProposals.KEPT):
        sent.keep(6, round_, b"r%d" % round_)
    assert sent.answer(b"peer-d", 6, 2) is None  # only the latest rounds are kept
    assert sent.answer(b"peer-d", 6, 2 + SentProposals.KEPT) == b"r%d" % (2 + SentProposals.KEPT)
