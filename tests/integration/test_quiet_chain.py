"""A quiet chain of real validator processes: no block without work, a lone ballot final
at once, and a validator restarted during a quiet period catching up without a block."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from node.config import ConsensusTimeouts
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration

CHECKPOINT_S = 30  # longer than the test: every block here is made by work
QUIET = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=100,
                          checkpoint_interval_s=CHECKPOINT_S)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("quiet")
    with Localnet.create(directory, validators=4, voters=8, timeouts=QUIET) as localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


def _status(net: Localnet, i: int) -> dict:  # type: ignore[type-arg]
    with RpcClient(net.rpc_urls[i], timeout=5) as c:
        return c.call("ballot_status")  # type: ignore[no-any-return]


def _submit_and_time(net: Localnet, node: int, raw: bytes, timeout: float = 10.0) -> float:
    """Seconds from submitting ``raw`` to ``node`` until that node reports it final."""
    with RpcClient(net.rpc_urls[node], timeout=5) as c:
        started = time.monotonic()
        code = c.call("ballot_submit", raw.hex())["tracking_code"]
        while c.call("ballot_getReceipt", code)["status"] != "final":
            assert time.monotonic() - started < timeout, "the ballot did not become final"
            time.sleep(0.02)
        return time.monotonic() - started


def test_idle_validators_make_no_block_and_a_lone_ballot_is_final_at_once(net: Localnet) -> None:
    """Fails when heights start without work (blocks every 100 ms), or when the proposer
    does not learn of the ballot before its round (finality then waits out a proposal
    timeout, 1 s, and more)."""
    ballots = make_ballots(net.directory, 3)
    before = [_status(net, i)["height"] for i in range(4)]
    time.sleep(3.0)
    assert [_status(net, i)["height"] for i in range(4)] == before, "a block was made with nothing pending"
    for raw in ballots:
        height = _status(net, 0)["height"]
        proposer = (height + 1) % 4  # round 0's proposer of the next height
        elapsed = _submit_and_time(net, (proposer + 1) % 4, raw)  # submitted to a validator that is not
        assert elapsed < 1.0, f"a lone ballot took {elapsed:.2f}s to become final"
    time.sleep(1.0)
    top = max(_status(net, i)["height"] for i in range(4))
    assert top == before[0] + 3, "one block per ballot, and none after"


def test_a_validator_restarted_in_a_quiet_period_catches_up_without_a_block(net: Localnet) -> None:
    """It asks each peer it connects to for blocks past its tip. Fails when it waits for
    a vote to show it is behind (none comes before the checkpoint, 30 s away)."""
    net.kill(3)
    raw = make_ballots(net.directory, 1, offset=3)[0]
    _submit_and_time(net, 0, raw)
    top = _status(net, 0)["height"]
    net.start(3)
    net.wait_ready(indexes=[3])
    deadline = time.monotonic() + 10
    while _status(net, 3)["height"] < top:
        assert time.monotonic() < deadline, "the restarted validator did not catch up"
        time.sleep(0.1)
    assert _status(net, 0)["height"] == top  # caught up by sync alone: no block was made
