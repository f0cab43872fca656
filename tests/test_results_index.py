"""The results follower: the count at every height equals a replay from block 1."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from ledger.ballot import BallotEnvelope
from ledger.tally import Tally
from node.results import ResultsIndex
from tests.helpers import kit

VOTERS = 6


@dataclass(frozen=True)
class _Block:  # ResultsIndex reads a block's ballots only
    ballots: tuple[bytes, ...]


@cache
def _ballot(revoting: str, voter: int, choice: int) -> bytes:
    return kit(voters=VOTERS, revoting=revoting).ballot(voter, choice).encode()


def _chain(revoting: str, votes: list[list[tuple[int, int]]]) -> list[_Block]:
    """Blocks as the rules would let them be: under first-counts a credential votes once,
    and no ballot is recorded twice."""
    seen_ballots: set[bytes] = set()
    seen_voters: set[int] = set()
    blocks = []
    for block_votes in votes:
        ballots = []
        for voter, choice in block_votes:
            raw = _ballot(revoting, voter, choice)
            if raw in seen_ballots or (revoting == "first-counts" and voter in seen_voters):
                continue
            seen_ballots.add(raw)
            seen_voters.add(voter)
            ballots.append(raw)
        blocks.append(_Block(tuple(ballots)))
    return blocks


def _replay(revoting: str, blocks: list[_Block], height: int) -> dict[str, object]:
    tally = Tally(kit(voters=VOTERS, revoting=revoting).genesis)
    for block in blocks[:height]:
        for raw in block.ballots:
            tally.record(BallotEnvelope.decode(raw))
    tally.height = height
    return tally.to_json_obj()


@given(
    revoting=st.sampled_from(["first-counts", "last-counts"]),
    votes=st.lists(st.lists(st.tuples(st.integers(0, VOTERS - 1), st.integers(0, 2)), max_size=4), max_size=8),
    slice_ballots=st.integers(1, 5),
)
def test_every_height_answers_as_a_replay_from_genesis(
    revoting: str, votes: list[list[tuple[int, int]]], slice_ballots: int
) -> None:
    """Fails when a revote's previous choice is not taken back (last-counts) or a block's
    counts are recorded at the wrong height."""
    blocks = _chain(revoting, votes)
    index = ResultsIndex(kit(voters=VOTERS, revoting=revoting).genesis, lambda h: blocks[h - 1], {})  # type: ignore[arg-type,return-value]
    tip = len(blocks)
    while index.height < tip:  # bounded slices, as the read worker runs them
        before = index.height
        index.extend(tip, slice_ballots)
        assert index.height > before
    for height in range(tip + 1):
        assert index.at(height) == _replay(revoting, blocks, height)
