"""Followers as outside peers: what the transport lets one link and cost (real TCP on
127.0.0.1), and the node's per-follower budget of served blocks (node.followers).

A whole follower node syncing from validator processes is in
tests/integration/test_validator_changes.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import LedgerError
from node.config import FollowerLimits
from node.followers import FollowerGate
from node.frames import FrameType
from node.transport import PeerTransport, TransportConfig
from tests.test_transport import CHAIN, FAST, GENESIS, KEYS, OUTSIDER, VALIDATORS, Net, run, wait_until

OPEN = replace(FAST, max_outsiders=1)


def _follower(key_index: int, got: list[tuple[bytes, FrameType, bytes]]) -> PeerTransport:
    def on_frame(key: bytes, ftype: FrameType, payload: bytes) -> None:
        got.append((key, ftype, payload))

    return PeerTransport(KEYS[key_index], chain_id=CHAIN, genesis_hash=GENESIS, validators=VALIDATORS,
                         on_frame=on_frame, config=FAST)


def test_a_follower_links_gets_no_broadcast_and_only_one_fits() -> None:
    """Fails when broadcast reaches outsiders or max_outsiders is not enforced."""

    async def body() -> None:
        net = Net(2, OPEN)
        await net.start()
        await wait_until(net.meshed)
        got: list[tuple[bytes, FrameType, bytes]] = []
        follower = _follower(5, got)
        await follower.start()
        follower.connect_to(node.address for node in net.nodes)
        await wait_until(lambda: all(OUTSIDER.public_key in n.peers() for n in net.nodes))
        assert [n.outsiders() for n in net.nodes] == [[OUTSIDER.public_key]] * 2
        assert not net.nodes[0].is_validator(OUTSIDER.public_key)
        assert net.nodes[0].peer_name(OUTSIDER.public_key).startswith("follower ")
        # A broadcast reaches the other validator only; a reply reaches the follower.
        assert net.nodes[0].broadcast(FrameType.CONSENSUS, b"vote") == 1
        assert net.nodes[0].send(OUTSIDER.public_key, FrameType.SYNC_RESPONSE, b"blocks")
        await wait_until(lambda: any(t is FrameType.SYNC_RESPONSE for _, t, _ in got))
        assert all(t is not FrameType.CONSENSUS for _, t, _ in got)
        # Its frames reach the application (which decides what a follower may send).
        follower.send(KEYS[0].public_key, FrameType.SYNC_REQUEST, b"ask")
        await wait_until(lambda: (OUTSIDER.public_key, FrameType.SYNC_REQUEST, b"ask") in net.got[0])
        # A second follower does not fit.
        second = _follower(4, [])
        await second.start()
        second.connect_to([net.nodes[0].address])
        await wait_until(lambda: net.nodes[0].handshake_failures >= 1)
        assert KEYS[4].public_key not in net.nodes[0].peers()
        await second.stop()
        await follower.stop()
        await net.stop()

    run(body)


def test_follower_keys_allow_list_and_none_by_default() -> None:
    async def body() -> None:
        closed = Net(1)  # max_outsiders = 0: no follower at all
        pinned = Net(1, replace(OPEN, outsider_keys=frozenset({KEYS[4].public_key})))
        for net in (closed, pinned):
            await net.start()
        follower = _follower(5, [])
        await follower.start()
        follower.connect_to([closed.nodes[0].address, pinned.nodes[0].address])
        await wait_until(lambda: closed.nodes[0].handshake_failures >= 1 and pinned.nodes[0].handshake_failures >= 1)
        assert closed.nodes[0].peers() == [] and pinned.nodes[0].peers() == []
        await follower.stop()
        for net in (closed, pinned):
            await net.stop()

    run(body)


def test_a_follower_cannot_send_a_large_frame() -> None:
    """Fails when an outsider's link keeps the validators' frame size."""

    async def body() -> None:
        net = Net(1, OPEN)
        await net.start()
        follower = _follower(5, [])
        await follower.start()
        follower.connect_to([net.nodes[0].address])
        await wait_until(lambda: OUTSIDER.public_key in net.nodes[0].peers())
        assert follower.send(KEYS[0].public_key, FrameType.SYNC_REQUEST, b"x" * 4096)
        await wait_until(lambda: net.nodes[0].stats(OUTSIDER.public_key).link_errors >= 1)
        assert not any(len(p) == 4096 for _, _, p in net.got[0])
        await follower.stop()
        await net.stop()

    run(body)


def test_a_set_change_relinks_a_promoted_follower_as_a_validator() -> None:
    async def body() -> None:
        net = Net(1, OPEN)
        await net.start()
        got: list[tuple[bytes, FrameType, bytes]] = []
        follower = _follower(5, got)
        await follower.start()
        follower.connect_to([net.nodes[0].address])
        await wait_until(lambda: OUTSIDER.public_key in net.nodes[0].peers())
        promoted = {**VALIDATORS, OUTSIDER.public_key: "v5"}
        follower.set_validators(promoted)
        net.nodes[0].set_validators(promoted)
        # The follower's link is closed and it redials, now admitted as a validator.
        await wait_until(lambda: net.nodes[0].stats(OUTSIDER.public_key).connects == 2
                         and OUTSIDER.public_key in net.nodes[0].peers())
        assert net.nodes[0].outsiders() == []
        assert net.nodes[0].broadcast(FrameType.CONSENSUS, b"now a vote") == 1
        await wait_until(lambda: (KEYS[0].public_key, FrameType.CONSENSUS, b"now a vote") in got)
        await follower.stop()
        await net.stop()

    run(body)


def test_served_bytes_per_follower_are_bounded() -> None:
    """A follower asking 100 times a second for 6 MiB responses is served about its rate
    over a minute. Fails when may_serve always answers yes (it would get 36 GiB)."""
    now = [0.0]
    rate = 1 << 20
    gate = FollowerGate(FollowerLimits(max_followers=2, follower_sync_bytes_per_s=rate), clock=lambda: now[0])
    peer, response = b"\x02" * 33, 6 << 20
    served = 0
    for _ in range(6000):
        if gate.may_serve(peer, [peer]):
            gate.charge(peer, response)
            served += response
        now[0] += 0.01
    burst = 2 * response
    assert 60 * rate - response <= served <= burst + 60 * rate + response
    assert gate.dropped > 5900
    assert gate.admits(FrameType.SYNC_REQUEST) and not gate.admits(FrameType.CONSENSUS)
    assert not gate.admits(FrameType.TXS) and not gate.admits(FrameType.EVM_TX)


def test_read_only_admission_refuses_with_its_code() -> None:
    from node.followers import ReadOnlyAdmission

    admission = ReadOnlyAdmission.__new__(ReadOnlyAdmission)
    answers = asyncio.run(admission.admit([b"x", b"y"]))
    assert [a.code for a in answers if isinstance(a, LedgerError)] == ["follower_read_only"] * 2


def test_transport_config_default_has_no_followers() -> None:
    assert TransportConfig().max_outsiders == 0


# --- the node's side (a real ValidatorNode, the network recorded) ------------------------
class _Recorder:
    """The transport as the node uses it; FOLLOWER_KEY is linked as a follower."""

    def __init__(self, follower: bytes) -> None:
        self.follower = follower
        self.blamed: list[tuple[bytes, str]] = []
        self.sent: list[tuple[bytes, FrameType, bytes]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def connect_to(self, addresses: object) -> None:
        pass

    def broadcast(self, frame_type: FrameType, payload: bytes) -> int:
        return 3

    def send(self, peer: bytes, frame_type: FrameType, payload: bytes) -> bool:
        self.sent.append((peer, frame_type, payload))
        return True

    def report_misbehaviour(self, peer: bytes, penalty: float, reason: str) -> None:
        self.blamed.append((peer, reason))

    def peers(self) -> list[bytes]:
        return [self.follower]

    def is_validator(self, peer: bytes) -> bool:
        return peer != self.follower

    def outsiders(self) -> list[bytes]:
        return [self.follower]

    def set_validators(self, validators: object) -> None:
        pass

    def peer_name(self, peer: bytes) -> str:
        return "follower"


def test_a_validator_takes_only_sync_requests_from_a_follower_within_budget(tmp_path: Path) -> None:
    """Fails when a follower's consensus, ballot or transaction frames reach the node, or
    when its sync requests are served beyond its budget."""
    from ballotledger.netsetup import init_network
    from node.blocksync import RESPONSE_BYTES, encode_request
    from node.config import NodeConfig
    from node.validator import ValidatorNode
    from tests.test_validator_wal import TIMEOUTS, NoRpc

    layout = init_network(tmp_path, validators=4, voters=8, timeouts=TIMEOUTS)
    config = replace(NodeConfig.load(layout.configs[0]),
                     followers=FollowerLimits(max_followers=1, follower_sync_bytes_per_s=1))
    follower = KEYS[5].public_key

    async def scenario() -> None:
        node = ValidatorNode(config)
        recorder = _Recorder(follower)
        node.transport = recorder  # type: ignore[assignment]
        node.rpc = NoRpc()  # type: ignore[assignment]
        await node.start()
        try:
            before = dict(node.core.stats)
            for frame_type in (FrameType.CONSENSUS, FrameType.TXS, FrameType.EVM_TX, FrameType.SYNC_RESPONSE):
                await node.on_frame(follower, frame_type, b"\xc0")
            assert [reason for _, reason in recorder.blamed] == [
                "CONSENSUS from a follower", "TXS from a follower", "EVM_TX from a follower",
                "SYNC_RESPONSE from a follower"]
            assert node.core.stats == before and len(node.mempool) == 0
            await node.on_frame(follower, FrameType.SYNC_REQUEST, encode_request(1))
            assert [t for _, t, _ in recorder.sent] == [FrameType.SYNC_RESPONSE]
            node.gate.charge(follower, 4 * RESPONSE_BYTES)  # as if it had been served its burst
            for _ in range(4):  # at a byte a second, nothing more for a long while
                await node.on_frame(follower, FrameType.SYNC_REQUEST, encode_request(1))
            assert len(recorder.sent) == 1 and node.counters["follower_sync_over_budget"] == 4
        finally:
            await node.close()

    asyncio.run(scenario())


def test_a_follower_node_never_votes_and_takes_no_submissions(tmp_path: Path) -> None:
    from ballotledger.netsetup import init_network
    from node.config import NodeConfig
    from node.validator import ValidatorNode
    from tests.test_validator_wal import TIMEOUTS

    layout = init_network(tmp_path, validators=4, voters=8, timeouts=TIMEOUTS, followers=1)
    config = NodeConfig.load(layout.configs[4])
    assert config.role == "follower" and config.key_file.name == "node.key"
    node = ValidatorNode(config)
    try:
        assert node.core.index is None and node.follower
        answers = asyncio.run(node.admission.admit([b"\x00"]))
        assert [a.code for a in answers if isinstance(a, LedgerError)] == ["follower_read_only"]
    finally:
        node.prechecker.close()
        node.wal.close()
        node.chain.close()
    # A follower with a validator's key would pass for it: refused at start.
    validator_key_file = layout.configs[0].parent / "validator.key"
    with pytest.raises(LedgerError, match="must not be a validator's key"):
        ValidatorNode(replace(config, key_file=validator_key_file, data_dir=tmp_path / "other"))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("max_followers =", "max_folowers ="), "unknown key 'max_folowers' in [p2p]"),
    (lambda t: t.replace('role = "follower"', 'role = "observer"'), "role must be one of validator, follower"),
    (lambda t: t.replace("max_followers = 8", "max_followers = -1"), "max_followers must be 0"),
    (lambda t: t.replace("follower_keys = []", 'follower_keys = ["02ab"]'), "each key is 33 bytes"),
    (lambda t: t.replace("follower_sync_bytes_per_s = 4194304", "follower_sync_bytes_per_s = 0"),
     "follower_sync_bytes_per_s must be a positive integer"),
], ids=["misspelt", "role", "negative", "short key", "zero rate"])
def test_follower_settings_are_checked_strictly(tmp_path: Path, edit: Any, expected: str) -> None:
    """Fails when a misspelt or bad follower setting is ignored (its default would apply)."""
    from ballotledger.netsetup import init_network
    from node.config import NodeConfig
    from tests.test_validator_wal import TIMEOUTS

    layout = init_network(tmp_path, validators=4, voters=8, timeouts=TIMEOUTS, followers=1)
    path = layout.configs[4]
    text = path.read_text()
    assert edit(text) != text
    path.write_text(edit(text))
    with pytest.raises(LedgerError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        NodeConfig.load(path)
