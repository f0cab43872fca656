"""Real validator processes on loopback: finality, crashes, catch-up, halting without forks."""

from __future__ import annotations

import json
import socket
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from ledger.block import Block
from ledger.hashing import keccak256
from node.config import ConsensusTimeouts
from tests.helpers import wait_until
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration

FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=100)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("net")
    with Localnet.create(directory, validators=4, voters=400, timeouts=FAST) as localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


@pytest.fixture(scope="module")
def ballots(net: Localnet) -> list[bytes]:
    return make_ballots(net.directory, 400)


def _status(net: Localnet, i: int) -> dict:  # type: ignore[type-arg]
    with RpcClient(net.rpc_urls[i], timeout=5) as c:
        return c.call("ballot_status")  # type: ignore[no-any-return]



def _submit(net: Localnet, node: int, raws: list[bytes]) -> list[str]:
    with RpcClient(net.rpc_urls[node]) as c:
        answers = c.call("ballot_submitBatch", [r.hex() for r in raws])
    assert all("tracking_code" in a for a in answers), answers
    return [a["tracking_code"] for a in answers]


def _final(net: Localnet, node: int, codes: list[str]) -> bool:
    with RpcClient(net.rpc_urls[node]) as c:
        return all(c.call("ballot_getReceipt", code)["status"] == "final" for code in codes)


def _same_chain(net: Localnet, nodes: list[int], height: int) -> None:
    """Every node has the same block at every height up to ``height``."""
    hashes = set()
    for i in nodes:
        with RpcClient(net.rpc_urls[i]) as c:
            start = max(1, height - 20)
            page = c.call("ballot_getBlocks", start, height - start + 1)
            assert len(page["blocks"]) == height - start + 1
            hashes.add(tuple(b["block"] for b in page["blocks"]))
    assert len(hashes) == 1, "validators disagree on committed blocks"


def test_four_validators_finalize_and_agree(net: Localnet, ballots: list[bytes]) -> None:
    codes = _submit(net, 0, ballots[:100]) + _submit(net, 2, ballots[100:150])
    wait_until(lambda: _final(net, 3, codes), what="ballots final on validator 3")
    height = min(_status(net, i)["height"] for i in range(4))
    _same_chain(net, [0, 1, 2, 3], height)
    with RpcClient(net.rpc_urls[1]) as c:
        receipt = c.call("ballot_getReceipt", codes[0])
        again = c.call("ballot_submit", ballots[0].hex())
    assert receipt["status"] == "final" and receipt["receipt"]["tracking_code"] == codes[0]
    assert again == {"tracking_code": codes[0], "status": "final"}  # idempotent, never a second ballot
    # the followers' view: each block's tracking codes, as the blocks themselves give them
    with RpcClient(net.rpc_urls[2]) as c:
        blocks = c.call("ballot_getBlocks", 1, height)["blocks"]
        followed = c.call("ballot_getTrackingCodes", 1, height)["blocks"]
    assert [f["height"] for f in followed] == list(range(1, height + 1))
    for entry, f in zip(blocks, followed, strict=True):
        block = Block.decode(bytes.fromhex(entry["block"]))
        assert f["codes"] == b"".join(keccak256(raw) for raw in block.ballots).hex()
        assert f["time_ms"] == block.header.time_ms
    assert set(codes) <= {f["codes"][i : i + 64] for f in followed for i in range(0, len(f["codes"]), 64)}


def test_refusals_carry_the_ledger_code(net: Localnet, ballots: list[bytes]) -> None:
    with RpcClient(net.rpc_urls[0]) as c:
        with pytest.raises(Exception) as info:
            c.call("ballot_submit", ballots[0][:-2].hex())
        assert getattr(info.value, "code", None) == "bad_encoding"
        forged = bytearray(ballots[399])
        forged[-5] ^= 1
        with pytest.raises(Exception) as info:
            c.call("ballot_submit", bytes(forged).hex())
        assert getattr(info.value, "code", None) == "bad_signature"


def test_rpc_survives_garbage(net: Localnet) -> None:
    url = net.rpc_urls[0]
    bodies = [b"{", b"[]", b'{"jsonrpc":"2.0","id":1,"method":"nope"}', b'{"jsonrpc":"2.0","id":1}',
              b'{"jsonrpc":"2.0","id":1,"method":"ballot_getBlocks","params":["x"]}',
              b'{"jsonrpc":"2.0","id":1,"method":"ballot_getBlocks","params":[1,2,3,4]}']
    expected = [-32700, -32600, -32601, -32600, -32602, -32602]
    for body, code in zip(bodies, expected, strict=True):
        answer = httpx.post(url, content=body, headers={"content-type": "application/json"}).json()
        assert answer["error"]["code"] == code, (body, answer)
    # a peer-port client speaking garbage is cut off; the node keeps serving
    host, port = tomllib.loads(net.configs[0].read_text())["p2p"]["listen"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\xff" * 4096)
    assert _status(net, 0)["height"] >= 1


def test_crash_one_chain_goes_on_restart_catches_up(net: Localnet, ballots: list[bytes]) -> None:
    net.kill(3)
    codes = _submit(net, 1, ballots[150:250])
    wait_until(lambda: _final(net, 0, codes), what="ballots final with one validator down")
    grown_to = _status(net, 0)["height"]
    net.start(3)
    net.wait_ready(indexes=[3])
    wait_until(lambda: _status(net, 3)["height"] >= grown_to, what="restarted validator catching up")
    _same_chain(net, [0, 1, 2, 3], grown_to)
    assert _final(net, 3, codes)
    # No peer frame ended in a traceback (one racing the restart's start-up is held for after it).
    for i in range(4):
        text = net.log_path(i).read_text(errors="replace")
        assert "on_frame failed" not in text and "call start() first" not in text, net.log_path(i)


def test_two_down_halts_without_fork_then_resumes(net: Localnet, ballots: list[bytes]) -> None:
    net.kill(2)
    net.kill(3)
    time.sleep(1.0)
    halted_at = max(_status(net, i)["height"] for i in (0, 1))
    codes = _submit(net, 0, ballots[250:300])
    time.sleep(4.0)
    assert max(_status(net, i)["height"] for i in (0, 1)) <= halted_at + 1  # no quorum: no progress
    assert not _final(net, 0, codes)
    net.start(2)
    net.wait_ready(indexes=[2])
    wait_until(lambda: _final(net, 0, codes), timeout=60, what="progress after one validator returns")
    net.start(3)
    net.wait_ready(indexes=[3])
    top = _status(net, 0)["height"]
    wait_until(lambda: all(_status(net, i)["height"] >= top for i in range(4)), what="all four at the same height")
    _same_chain(net, [0, 1, 2, 3], top)


def test_localnet_json_written(net: Localnet) -> None:
    path = net.write_description()
    desc = json.loads(Path(path).read_text())
    assert [n["rpc"] for n in desc["nodes"]] == net.rpc_urls and desc["chain_id"] == net.genesis.chain_id
