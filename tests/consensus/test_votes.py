"""The vote sets of one height (``node/consensus/votes.py``), on their own.

Signatures are not checked here (the core checks them before it stores a vote), so votes
carry a dummy one: these are pure unit and property tests of the data structure.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from ledger.block import VoteKind
from ledger.genesis import ValidatorInfo, ValidatorSet
from ledger.hashing import keccak256
from node.consensus.messages import Vote
from node.consensus.votes import MAX_VALUES_PER_SENDER, HeightVotes, VoteSet

VALUES = (b"", keccak256(b"a"), keccak256(b"b"), keccak256(b"c"), keccak256(b"d"))
KINDS = (VoteKind.PREVOTE, VoteKind.PRECOMMIT)


def validator_set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet(
        tuple(ValidatorInfo(f"v{i}", bytes([2]) + bytes([i + 1]) * 32, p) for i, p in enumerate(powers))
    )


def make_vote(sender: int, round_: int, kind: VoteKind, value: bytes, height: int = 1) -> Vote:
    return Vote("c", kind, height, round_, value, sender, b"\x00" * 64)


@dataclass(frozen=True)
class Advance:
    round: int


powers = st.lists(st.integers(1, 5), min_size=3, max_size=7)


@st.composite
def vote_streams(draw: st.DrawFn) -> tuple[ValidatorSet, list[Vote | Advance]]:
    """A validator set and votes (some equivocating) interleaved with round advances."""
    vset = validator_set(draw(powers))
    ops: list[Vote | Advance] = []
    current = 0
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.integers(0, 9)) == 0:
            current += draw(st.integers(0, 2))
            ops.append(Advance(current))
        else:
            ops.append(
                make_vote(
                    draw(st.integers(0, len(vset) - 1)),
                    draw(st.integers(0, 6)),
                    draw(st.sampled_from(KINDS)),
                    draw(st.sampled_from(VALUES)),
                )
            )
    return vset, ops


def replay(vset: ValidatorSet, ops: list[Vote | Advance], *, window: int = 16) -> HeightVotes:
    """Feed ``ops`` the way the core does: per-sender value bound (nil always kept), then
    the round window, then store."""
    votes = HeightVotes(vset, max_future_rounds=window)
    for op in ops:
        if isinstance(op, Advance):
            votes.advance(op.round)
            continue
        if op.block_hash in votes.versions(op.round, op.kind, op.sender):
            continue
        if not votes.has_room(op) and op.block_hash:
            continue
        if votes.admit(op.sender, op.round).kept:
            votes.add(op)
    return votes


@given(powers, st.lists(st.tuples(st.integers(0, 6), st.sampled_from(VALUES)), max_size=30), st.data())
def test_removing_a_sender_undoes_its_votes(
    power_list: list[int], raw: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    """A VoteSet without a sender equals one it never entered; fails when remove_sender
    forgets to take back the sender's power from a value or from the "any" total."""
    vset = validator_set(power_list)
    votes = [make_vote(s % len(vset), 0, VoteKind.PREVOTE, v) for s, v in raw]
    sender = data.draw(st.integers(0, len(vset) - 1))
    with_sender = VoteSet(vset, 0, VoteKind.PREVOTE)
    without = VoteSet(vset, 0, VoteKind.PREVOTE)
    for v in votes:
        with_sender.add(v)
        if v.sender != sender:
            without.add(v)
    with_sender.remove_sender(sender)
    assert with_sender == without
    for value in VALUES:
        assert with_sender.has_quorum_for(value) == without.has_quorum_for(value)
    assert with_sender.has_quorum_any() == without.has_quorum_any()


@given(vote_streams(), st.data())
def test_evicting_a_senders_round_undoes_everything_adding_it_did(
    stream: tuple[ValidatorSet, list[Vote | Advance]], data: st.DataObject
) -> None:
    """HeightVotes after ``evict(sender, round)`` compares equal to HeightVotes fed the same
    stream without that sender's votes in that round (and evicting all its rounds, to one
    where it never voted): no count, round-skip power, commit or empty set stays behind.
    Fails when evict leaves an empty VoteSet, keeps a commit, or skips the ahead tables."""
    vset, ops = stream
    sender = data.draw(st.integers(0, len(vset) - 1))
    round_ = data.draw(st.integers(0, 6))
    evicted = replay(vset, ops)
    evicted.evict(sender, round_)
    never = replay(vset, [op for op in ops if not (isinstance(op, Vote) and (op.sender, op.round) == (sender, round_))])
    assert evicted == never
    assert evicted.commits() == never.commits() and evicted.skip_target() == never.skip_target()
    for r in range(7):
        evicted.evict(sender, r)
    silent = replay(vset, [op for op in ops if not (isinstance(op, Vote) and op.sender == sender)])
    assert evicted == silent


@given(st.integers(5, 300), st.integers(1, 6), powers)
def test_a_sender_climbing_rounds_keeps_only_its_newest(top: int, window: int, power_list: list[int]) -> None:
    """One sender voting in rounds 1, 2, ..., top (both kinds, several values each) holds
    exactly what its last ``window`` rounds would: nothing of the older rounds remains,
    and the votes held stay within the documented bound whatever ``top`` is. Fails when
    eviction leaves empty entries behind (the retained structure then grows with top)."""
    vset = validator_set(power_list)
    flood = [
        make_vote(0, r, kind, value)
        for r in range(1, top + 1)
        for kind in KINDS
        for value in VALUES
    ]
    votes = replay(vset, flood, window=window)
    newest = replay(vset, [v for v in flood if v.round > top - window], window=window)
    assert votes == newest
    assert votes.rounds_ahead(0) == frozenset(range(max(1, top - window + 1), top + 1))
    # per round and kind: MAX_VALUES_PER_SENDER values plus nil, which is always wanted
    assert votes.size() <= window * len(KINDS) * (MAX_VALUES_PER_SENDER + 1)
    # and an older round than all kept is refused without storing anything
    assert not votes.admit(0, max(1, top - window)).kept or top <= window


def test_quorum_questions_by_name() -> None:
    """Powers 1, 2, 3 (total 6): exactly 2/3 (4) is not a quorum, 5 is; exactly 1/3 (2)
    does not skip a round, 3 does. Fails with ">= 2/3", "> 1/2" or ">= 1/3" thresholds."""
    vset = validator_set([1, 2, 3])
    a = VALUES[1]
    prevotes = VoteSet(vset, 0, VoteKind.PREVOTE)
    prevotes.add(make_vote(0, 0, VoteKind.PREVOTE, a))
    prevotes.add(make_vote(2, 0, VoteKind.PREVOTE, b""))
    assert prevotes.power_for(a) == 1 and not prevotes.has_quorum_any()  # 4 of 6
    assert prevotes.quorum_value() is None
    prevotes.add(make_vote(1, 0, VoteKind.PREVOTE, a))
    assert prevotes.has_quorum_any() and not prevotes.has_quorum_for(a)  # 5 of 6, split
    prevotes.add(make_vote(2, 0, VoteKind.PREVOTE, a))  # validator 2 equivocates: a too
    assert prevotes.has_quorum_for(a) and prevotes.quorum_value() == a  # 6 of 6 for a
    votes = HeightVotes(vset, max_future_rounds=4)
    votes.add(make_vote(1, 3, VoteKind.PREVOTE, b""))
    assert votes.skip_target() is None  # 2 of 6: exactly a third
    votes.add(make_vote(0, 3, VoteKind.PRECOMMIT, a))
    assert votes.skip_target() == 3  # 3 of 6
    votes.advance(3)
    assert votes.skip_target() is None and votes.rounds_ahead(0) == frozenset()
    commit = HeightVotes(vset, max_future_rounds=4)
    for i in (0, 2):
        commit.add(make_vote(i, 0, VoteKind.PRECOMMIT, a))
    assert commit.commits() == []  # 4 of 6
    commit.add(make_vote(1, 0, VoteKind.PRECOMMIT, a))
    assert commit.commits() == [(0, a)]
    assert [s.validator_index for s in commit.precommits(0).signatures_for(a)] == [0, 1, 2]
    commit.evict(1, 0)
    assert commit.commits() == []
