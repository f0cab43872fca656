"""Followers as outside peers: what the transport lets one link and cost (real TCP on
127.0.0.1), and the node's per-follower budget of served blocks (node.followers).

A whole follower node syncing from validator processes is in
tests/integration/test_validator_changes.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

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
