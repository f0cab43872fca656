"""Real processes on loopback: a follower that syncs and serves, and validator-set changes
made by authority transactions (a follower promoted, a validator removed) with the chain
finalizing throughout and the verifier following the set in force."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from ledger.block import Checkpoint
from node.config import ConsensusTimeouts
from verifier.rpc_client import RpcClient, RpcError

pytestmark = pytest.mark.integration

FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=100)
VALIDATORS = 4
FOLLOWER = VALIDATORS  # the follower's index in the localnet


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("valset")
    with Localnet.create(directory, validators=VALIDATORS, voters=50, timeouts=FAST, followers=1) as localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


def _call(net: Localnet, i: int, method: str, *params: object) -> object:
    with RpcClient(net.rpc_urls[i], timeout=5) as c:
        return c.call(method, *params)


def _status(net: Localnet, i: int) -> dict[str, object]:
    answer = _call(net, i, "ballot_status")
    assert isinstance(answer, dict)
    return answer


def _height(net: Localnet, i: int) -> int:
    return int(str(_status(net, i)["height"]))


def _checkpoint(net: Localnet, i: int, height: int) -> Checkpoint:
    answer = _call(net, i, "ballot_getCheckpoint", height)
    assert isinstance(answer, dict)
    return Checkpoint.decode(bytes.fromhex(answer["checkpoint"]))


def _wait(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_follower_syncs_checks_and_serves_but_never_votes(net: Localnet, tmp_path: Path) -> None:
    status = _status(net, FOLLOWER)
    assert status["role"] == "follower" and status["validator_index"] is None
    target = _height(net, 0) + 3
    _wait(lambda: _height(net, FOLLOWER) >= target, what="the follower to follow the chain")
    # Its blocks are the validators' blocks.
    h = _height(net, FOLLOWER)
    # Its blocks are the validators' (each node keeps the certificate it saw first).
    assert _checkpoint(net, FOLLOWER, h).header == _checkpoint(net, 0, h).header
    assert int(str(_call(net, FOLLOWER, "eth_blockNumber")), 16) >= h
    # It takes no ballots: they go to a validator.
    raw = make_ballots(net.directory, 1)[0]
    with RpcClient(net.rpc_urls[FOLLOWER], timeout=5) as c, pytest.raises(RpcError) as refused:
        c.call("ballot_submit", raw.hex())
    assert refused.value.data is not None and refused.value.data.get("code") == "follower_read_only"
    # The validators count it as a follower, not a validator peer.
    assert "follower" in " ".join(str(p) for p in _status(net, 0)["peers"])  # type: ignore[union-attr]
