"""Consensus across validator set changes (ledger.validators): the core follows the set
in force at each height, and the simulator keeps safety and progress while validators
are added, removed and replaced mid-run."""

from __future__ import annotations

import pytest

from ledger.block import VoteKind
from ledger.genesis import ValidatorInfo, ValidatorSet
from ledger.hashing import keccak256
from node.consensus.core import ConsensusCore, Decide, Output, TimeoutParams
from node.consensus.messages import Proposal, Vote
from tests.consensus.simulator import CHAIN_ID, Crash, Partition, Schedule, Simulation, make_genesis, validator_key

OLD = make_genesis(4).validators  # v0..v3
# At height 2, v1 is replaced by v4 (which takes index 1).
NEW = ValidatorSet((OLD.validators[0], ValidatorInfo("v4", validator_key(4).public_key, 1),
                    *OLD.validators[2:]))
BLOCK = b"block at height 2"


class App:
    def build_block(self, height: int, round: int) -> bytes:
        return f"built h{height} r{round}".encode()

    def validate_block(self, height: int, block: bytes) -> bool:
        return True

    def block_hash(self, block: bytes) -> bytes:
        return keccak256(block)


def _in_force(height: int) -> ValidatorSet:
    return OLD if height < 2 else NEW


def _core(node: int, height: int) -> tuple[ConsensusCore, list[Output]]:
    core = ConsensusCore(chain_id=CHAIN_ID, validators=OLD, index=None, key=validator_key(node), height=height,
                         app=App(), timeouts=TimeoutParams(), validators_at=_in_force)
    return core, core.start()


def _precommit(signer: int, index: int, height: int = 2) -> Vote:
    return Vote.sign(validator_key(signer), chain_id=CHAIN_ID, kind=VoteKind.PRECOMMIT, height=height, round_=0,
                     block_hash=keccak256(BLOCK), validator_index=index)


def test_a_removed_key_no_longer_counts_and_the_added_one_does() -> None:
    """Fails when the core checks votes of height 2 against the genesis set (v1's vote at
    its old index would complete the quorum)."""
    follower, _ = _core(5, 2)
    proposer = NEW.proposer(2, 0)
    proposal = Proposal.sign(validator_key(proposer), chain_id=CHAIN_ID, height=2, round_=0, block=BLOCK,
                             valid_round=-1, proposer_index=proposer)
    # v0, v2 and the removed v1 (at the index it had): only two valid votes.
    outs: list[Output] = follower.on_message(proposal)
    for vote in (_precommit(0, 0), _precommit(2, 2), _precommit(1, 1)):
        outs += follower.on_message(vote)
    assert not [o for o in outs if isinstance(o, Decide)]
    assert follower.stats.get("bad_signature") == 1
    outs = follower.on_message(_precommit(4, 1))  # the added v4 completes it
    (decide,) = [o for o in outs if isinstance(o, Decide)]
    decide.certificate.check(NEW, chain_id=CHAIN_ID, height=2, block_hash=keccak256(BLOCK))


def test_a_node_votes_exactly_where_its_key_is_in_force() -> None:
    added, _ = _core(4, 1)
    assert added.index is None and added.validators == OLD  # height 1: not yet
    added2, _ = _core(4, 2)
    assert added2.index == 1 and added2.validators == NEW
    removed, _ = _core(1, 2)
    assert removed.index is None
    # Votes for the next height are checked by the next height's set before buffering.
    early, _ = _core(0, 1)
    early.on_message(_precommit(1, 1, height=2))
    early.on_message(_precommit(4, 1, height=2))
    assert early.stats.get("bad_signature") == 1 and early.stats.get("buffered") == 1


CHANGES = (
    (1, None, 4),  # v4 (a follower until then) added: in force from height 3
    (3, 1, None),  # v1 removed: from height 5
    (5, 0, 5),  # v0 replaced by v5: from height 7
)


@pytest.mark.parametrize("seed", range(4))
def test_simulation_keeps_safety_and_progress_across_set_changes(seed: int) -> None:
    """Agreement, every honest vote justified, every certificate by the set in force at its
    height (SimApp.commit checks it), and progress to height 9; the added validators sign
    certificates from their effective heights and the removed ones never after theirs.
    Fails when the core keeps the genesis set (the certificates of height 5 on are then
    refused) or when the rules read a change before its effective height."""
    schedule = Schedule(
        seed=7000 + seed, n=4, extra=2, changes=CHANGES, drop_rate=0.1 * (seed % 3), dup_rate=0.1,
        max_delay=0.3, partitions=(Partition(1.0, 3.0, frozenset({2})),) if seed % 2 else (),
        crashes=(Crash(3, 2.0, 4.0),) if seed >= 2 else (), gst=4.0, target_height=9,
        byzantine=((2, "equivocate_vote"),) if seed == 3 else (),
    )
    sim = Simulation(schedule)
    result = sim.run()
    assert min(result.heights[i] for i in (3, 4, 5)) >= 9
    signed_by: dict[int, set[int]] = {}
    for height, (_, cert) in enumerate(sim.nodes[4].store, start=1):
        in_force = sim.schedule.at(height)
        keys = {in_force.validators[s.validator_index].public_key for s in cert.signatures}
        signed_by[height] = {i for i in range(6) if validator_key(i).public_key in keys}
    assert all(4 not in signers for h, signers in signed_by.items() if h < 3)
    assert any(4 in signers for h, signers in signed_by.items() if h >= 3)
    assert all(1 not in signers for h, signers in signed_by.items() if h >= 5)
    assert all(5 not in signers for h, signers in signed_by.items() if h < 7)
    assert all(0 not in signers for h, signers in signed_by.items() if h >= 7)
    assert any(5 in signers for h, signers in signed_by.items() if h >= 7)
