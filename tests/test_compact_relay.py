"""A validator's side of compact proposals (node.compact): it rebuilds a proposal from
the ballots it holds, asks the proposer for the whole proposal when it lacks one, and,
as a proposer, sends the whole proposal once to each peer that asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballotledger.loadgen import make_ballots
from ballotledger.netsetup import init_network
from ledger.block import Block, VoteKind
from ledger.hashing import keccak256
from node.compact import compact_proposal, encode_proposal_request
from node.consensus.core import ScheduleTimeout, TimerKind
from node.consensus.messages import Proposal, Vote, encode_message
from node.frames import FrameType, encode_batch
from node.validator import ValidatorNode, wall_clock_ms
from tests.test_validator_wal import TIMEOUTS, Events, Net, RecordingTransport, open_node, run, until

PEER = b"peer"


@pytest.fixture
def net(tmp_path: Path) -> Net:
    return Net(init_network(tmp_path, validators=4, voters=8, timeouts=TIMEOUTS))


def signed_proposal(net: Net, raws: list[bytes]) -> Proposal:
    """The proposal of height 1, round 0 carrying ``raws``, as its proposer builds it."""
    proposer = net.layout.genesis.validators.proposer(1, 0)
    builder = ValidatorNode(net.config(proposer))
    for raw in raws:
        builder.mempool.admit(raw, wall_clock_ms())
    block = builder.app.build_block(1, 0)
    run(builder.close)
    return Proposal.sign(net.key(proposer), chain_id=net.chain_id, height=1, round_=0, block=block,
                         valid_round=-1, proposer_index=proposer)


def prevotes(events: Events, index: int) -> list[bytes]:
    return [m.block_hash for m in events.own_sent(index) if isinstance(m, Vote) and m.kind == VoteKind.PREVOTE]


def a_voter(net: Net) -> int:
    return next(i for i in range(4) if i != net.layout.genesis.validators.proposer(1, 0))


def test_ballots_gossiped_but_still_being_checked_rebuild_the_proposal(net: Net) -> None:
    """The proposal comes right behind the gossip of its ballots, before their checks end:
    it is rebuilt from them, and the block's validation checks them in full."""
    raws = make_ballots(net.layout.directory, 3)
    proposal = signed_proposal(net, raws)
    index = a_voter(net)
    events = Events()

    async def scenario() -> None:
        node = open_node(net, index, events)
        transport = node.transport
        assert isinstance(transport, RecordingTransport)
        await node.start()
        await node.on_frame(PEER, FrameType.TXS, encode_batch(raws))
        assert not any(node.mempool.pending_bytes(keccak256(r)) for r in raws)  # still being checked
        await node.on_frame(PEER, FrameType.COMPACT_PROPOSAL, compact_proposal(proposal, keccak256))
        assert transport.direct == [] and node.counters.get("proposals_rebuilt") == 1
        block_hash = Block.decode(proposal.block).hash()
        await until(lambda: block_hash in prevotes(events, index), "a prevote for the block")
        await node.close()

    run(scenario)


@pytest.mark.parametrize("holds", [3, 2, 0])
def test_a_validator_rebuilds_what_it_holds_and_asks_for_the_rest(net: Net, holds: int) -> None:
    """Holding all three ballots it prevotes the block at once; missing any, it asks the
    sender for the whole proposal (once), signs nothing for the block until that comes,
    and then prevotes it."""
    raws = make_ballots(net.layout.directory, 3)
    proposal = signed_proposal(net, raws)
    block_hash = Block.decode(proposal.block).hash()
    index = a_voter(net)
    events = Events()

    async def scenario() -> None:
        node = open_node(net, index, events)
        transport = node.transport
        assert isinstance(transport, RecordingTransport)
        for raw in raws[:holds]:
            node.mempool.admit(raw, wall_clock_ms())
        await node.start()
        await node.on_frame(PEER, FrameType.COMPACT_PROPOSAL, compact_proposal(proposal, keccak256))
        if holds < len(raws):
            assert transport.direct == [(PEER, FrameType.PROPOSAL_REQUEST, encode_proposal_request(1, 0))]
            assert block_hash not in prevotes(events, index)
            assert node.counters.get("proposals_asked_whole") == 1
            assert node.metrics.registry.get_sample_value("ballotledger_proposals_total", {"how": "asked_whole"}) == 1
            await node.on_frame(PEER, FrameType.CONSENSUS, encode_message(proposal))
        else:
            assert transport.direct == [] and node.counters.get("proposals_rebuilt") == 1
        await until(lambda: block_hash in prevotes(events, index), "a prevote for the block")
        await node.close()

    run(scenario)
    assert prevotes(events, index) == [block_hash]


def test_a_proposer_sends_compact_and_answers_each_peer_once_with_the_whole(net: Net) -> None:
    proposer = net.layout.genesis.validators.proposer(1, 0)
    raws = make_ballots(net.layout.directory, 3)
    events = Events()
    whole: list[bytes] = []

    async def scenario() -> None:
        node = open_node(net, proposer, events)
        transport = node.transport
        assert isinstance(transport, RecordingTransport)
        transport.ballot_by_code = node.mempool.pending_bytes
        for raw in raws:
            node.mempool.admit(raw, wall_clock_ms())
        await node.start()
        await until(lambda: any(isinstance(m, Proposal) for m in events.own_sent(proposer)), "a proposal")
        [sent] = [m for m in events.own_sent(proposer) if isinstance(m, Proposal)]
        assert len(node.app._decode(sent.block).ballots) == 3
        whole.append(encode_message(sent))
        request = encode_proposal_request(1, 0)
        for peer in (b"peer-a", b"peer-a", b"peer-b"):
            await node.on_frame(peer, FrameType.PROPOSAL_REQUEST, request)
        await node.on_frame(b"peer-a", FrameType.PROPOSAL_REQUEST, encode_proposal_request(1, 1))  # never made
        assert transport.direct == [(b"peer-a", FrameType.CONSENSUS, whole[0]),
                                    (b"peer-b", FrameType.CONSENSUS, whole[0])]
        assert node.metrics.registry.get_sample_value("ballotledger_proposals_total", {"how": "sent_whole"}) == 2
        await node.close()

    run(scenario)


def test_the_pause_after_a_commit_is_skipped_when_a_full_block_is_waiting(net: Net) -> None:
    """``block_interval_ms`` lets the next block fill; with a full block's worth pending
    (a backlog) the next height starts at once."""
    node = ValidatorNode(net.config(0))
    node.app.max_block_ballots = 3
    pause = TIMEOUTS.block_interval_ms / 1000
    after_commit = ScheduleTimeout(height=2, round=0, step=TimerKind.NEW_HEIGHT, delay_s=pause)
    propose = ScheduleTimeout(height=2, round=0, step=TimerKind.PROPOSE, delay_s=0.4)
    raws = make_ballots(net.layout.directory, 3)
    for raw in raws[:2]:
        node.mempool.admit(raw, wall_clock_ms())
    assert node._timer_delay(after_commit) == pause
    node.mempool.admit(raws[2], wall_clock_ms())
    assert node._timer_delay(after_commit) == 0.0
    assert node._timer_delay(propose) == 0.4  # only that pause
    run(node.close)
