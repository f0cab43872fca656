"""node.frames (pure) and node.transport (real TCP on 127.0.0.1, OS-assigned ports).

The handshake and sealed frames are tested purely in tests/test_peerlink.py; the relay
attack over real sockets in tests/test_peer_relay.py.

Each async test runs in its own ``asyncio.run``; no pytest plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto import SigningKey
from ledger.hashing import keccak256
from node.frames import (
    HANDSHAKE_MAX_FRAME_SIZE,
    HEADER_SIZE,
    Backoff,
    BadFrame,
    Frame,
    FrameType,
    Misbehaviour,
    OversizedFrame,
    TokenBucket,
    UnknownFrameType,
    decode_batch,
    encode_batch,
    encode_frame,
    parse_header,
)
from node.peerlink import Initiator, LinkParams, Session
from node.transport import PeerTransport, TransportConfig

CHAIN = "test-chain"
GENESIS = keccak256(b"test genesis")
KEYS = [SigningKey.from_seed(bytes([i])) for i in range(6)]
VALIDATORS = {k.public_key: f"v{i}" for i, k in enumerate(KEYS[:4])}
OUTSIDER = KEYS[5]  # a well-formed key that is not a validator
FAST = TransportConfig(
    handshake_timeout=2.0, ping_interval=0.2, dead_timeout=1.0, write_timeout=1.0,
    backoff_base=0.05, backoff_cap=0.5,
)


# --- frames: pure ----------------------------------------------------------------------
frame_st = st.builds(
    Frame, st.sampled_from(list(FrameType)), st.binary(max_size=300)
)


@given(frame=frame_st)
def test_handshake_framing_round_trips(frame: Frame) -> None:
    wire = frame.encode()
    assert parse_header(wire[:HEADER_SIZE], 512) == (frame.type, len(frame.payload))
    assert wire[HEADER_SIZE:] == frame.payload


def test_bad_headers_refused_before_the_body() -> None:
    with pytest.raises(OversizedFrame):
        parse_header((101).to_bytes(4, "big") + bytes([FrameType.LINK_INIT]), 100)
    with pytest.raises(UnknownFrameType):
        parse_header((1).to_bytes(4, "big") + b"\xee", 100)
    with pytest.raises(BadFrame, match="length 0"):
        parse_header(b"\x00\x00\x00\x00\x07", 100)
    with pytest.raises(OversizedFrame):
        encode_frame(FrameType.TXS, b"x" * 10, max_frame_size=10)
    assert OversizedFrame("x").code == "oversized_frame"


def test_batch_round_trip() -> None:
    items = [b"", b"a", b"ballot" * 50]
    assert decode_batch(encode_batch(items), max_items=3) == tuple(items)
    with pytest.raises(BadFrame):
        decode_batch(encode_batch(items), max_items=2)
    with pytest.raises(BadFrame):
        decode_batch(b"\xff", max_items=2)


def test_policy_core() -> None:
    backoff = Backoff(0.1, 5.0, random.Random(1))
    delays = [backoff.next() for _ in range(12)]
    caps = [min(5.0, 0.1 * 2**i) for i in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    backoff.reset()
    assert backoff.next() <= 0.1

    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.1)

    m = Misbehaviour(threshold=10, decay_per_second=1, ban_seconds=60)
    assert not m.offend(b"k", 6, now=0.0)
    assert not m.offend(b"k", 6, now=5.0)  # decayed to 1, now 7
    assert m.offend(b"k", 3, now=5.0)
    assert m.ban_remaining(b"k", 6.0) == 59.0 and m.ban_remaining(b"other", 6.0) == 0.0


# --- transport: helpers ----------------------------------------------------------------
class Net:
    """N transports on one loop, each recording the frames it is handed."""

    def __init__(self, n: int, config: TransportConfig = FAST) -> None:
        self.got: list[list[tuple[bytes, FrameType, bytes]]] = [[] for _ in range(n)]
        self.nodes = [self.make(i, config) for i in range(n)]

    def make(self, i: int, config: TransportConfig, port: int = 0) -> PeerTransport:
        got = self.got[i]

        if i % 2:  # both callback styles in use
            async def on_frame(key: bytes, ftype: FrameType, payload: bytes) -> None:
                got.append((key, ftype, payload))
        else:
            def on_frame(key: bytes, ftype: FrameType, payload: bytes) -> None:  # type: ignore[misc]
                got.append((key, ftype, payload))

        return PeerTransport(
            KEYS[i], chain_id=CHAIN, genesis_hash=GENESIS, validators=VALIDATORS, port=port,
            on_frame=on_frame, config=config,
        )

    async def start(self) -> None:
        for node in self.nodes:
            await node.start()
        addresses = [node.address for node in self.nodes]
        for node in self.nodes:
            node.connect_to(addresses)  # our own address too: it must be skipped

    def meshed(self) -> bool:
        keys = {node.public_key for node in self.nodes}
        return all(
            set(node.peers()) == keys - {node.public_key}
            and node.open_connections() == len(keys) - 1
            for node in self.nodes
        )

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _await_chain(task: asyncio.Task[Any]) -> list[str]:
    out: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def checked() -> None:
        try:
            async with asyncio.timeout(20):  # a hang fails the test, with every task's stack
                await test()
        except TimeoutError:
            for task in asyncio.all_tasks():
                print(task.get_name(), " <- ".join(_await_chain(task)))
            raise
        # stop() must leave nothing behind (otherwise asyncio.run would cancel it silently)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(checked())


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    ftype, size = parse_header(await reader.readexactly(HEADER_SIZE), HANDSHAKE_MAX_FRAME_SIZE)
    return Frame(ftype, await reader.readexactly(size))


class RawPeer:
    """A validator key on a raw socket: authenticates by hand (the initiator's side of
    node.peerlink), then misbehaves in ways PeerTransport never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 session: Session) -> None:
        self.reader, self.writer, self.session = reader, writer, session
        self._inbox: list[Frame] = []

    @classmethod
    async def connect(cls, key: SigningKey, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        params = LinkParams(key, CHAIN, GENESIS, VALIDATORS, 1 << 24)
        initiator = Initiator(params, secrets.token_bytes(32))
        writer.write(encode_frame(FrameType.LINK_INIT, initiator.init()))
        response = await read_frame(reader)
        assert response.type is FrameType.LINK_RESPONSE
        finish, session = initiator.on_response(response.payload)
        writer.write(encode_frame(FrameType.LINK_FINISH, finish))
        return cls(reader, writer, session)

    def send(self, frame_type: FrameType, payload: bytes) -> None:
        self.writer.write(self.session.sealer.seal(frame_type, payload))

    async def read(self) -> Frame:
        while not self._inbox:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed")
            self._inbox += self.session.opener.feed(data)
        return self._inbox.pop(0)


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 3.0) -> bool:
    """Drain until EOF or reset; False if the socket is still open after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def still_exchanging(net: Net, tag: bytes) -> None:
    """Every node broadcasts; every other node gets it."""
    for i, node in enumerate(net.nodes):
        node.broadcast(FrameType.CONSENSUS, tag + bytes([i]))
    n = len(net.nodes)
    await wait_until(lambda: all(
        sum(1 for _, _, p in got if p.startswith(tag)) == n - 1 for got in net.got
    ))


# --- transport: tests ------------------------------------------------------------------
def test_mesh_and_broadcast_exactly_once() -> None:
    async def body() -> None:
        net = Net(4)
        await net.start()
        await wait_until(net.meshed)
        for i, node in enumerate(net.nodes):
            assert node.broadcast(FrameType.CONSENSUS, b"hello from %d" % i) == 3
        assert net.nodes[0].send(KEYS[2].public_key, FrameType.TXS, encode_batch([b"b1"]))
        await wait_until(lambda: all(len(g) >= 3 for g in net.got) and len(net.got[2]) == 4)
        await asyncio.sleep(0.3)  # time for any duplicate to show up
        for i, got in enumerate(net.got):
            consensus = sorted((k, p) for k, t, p in got if t is FrameType.CONSENSUS)
            expected = sorted(
                (KEYS[j].public_key, b"hello from %d" % j) for j in range(4) if j != i
            )
            assert consensus == expected  # each once, attributed to the sender's key
        assert (KEYS[0].public_key, FrameType.TXS, encode_batch([b"b1"])) in net.got[2]
        stats = net.nodes[2].stats(KEYS[0].public_key)
        assert stats.frames_in >= 2 and stats.bytes_in > 0 and stats.bad_frames == 0
        assert net.meshed()  # still exactly one connection per pair
        await net.stop()
        assert [(n.peers(), n.open_connections()) for n in net.nodes] == [([], 0)] * 4

    run(body)


def test_unknown_key_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "node.transport")

    async def body() -> None:
        net = Net(3)
        await net.start()
        everyone = {**VALIDATORS, OUTSIDER.public_key: "outsider"}
        intruder = PeerTransport(
            OUTSIDER, chain_id=CHAIN, genesis_hash=GENESIS, validators=everyone, config=FAST
        )
        await intruder.start()
        intruder.connect_to(node.address for node in net.nodes)
        await wait_until(lambda: all(node.handshake_failures >= 1 for node in net.nodes))
        await wait_until(net.meshed)
        assert intruder.peers() == []
        assert all(OUTSIDER.public_key not in node.peers() for node in net.nodes)
        await intruder.stop()
        await net.stop()

    run(body)
    assert "is not a validator" in caplog.text


@pytest.mark.parametrize(
    ("chain_id", "genesis", "reason"),
    [("other-chain", GENESIS, "is on chain"), (CHAIN, keccak256(b"other"), "has genesis")],
)
def test_wrong_chain_or_genesis_refused(
    chain_id: str, genesis: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "node.transport")

    async def body() -> None:
        net = Net(2)
        await net.start()
        stray = PeerTransport(  # a real validator key, configured for another chain
            KEYS[3], chain_id=chain_id, genesis_hash=genesis, validators=VALIDATORS, config=FAST
        )
        await stray.start()
        stray.connect_to(node.address for node in net.nodes)
        await wait_until(lambda: all(node.handshake_failures >= 1 for node in net.nodes))
        assert stray.peers() == [] and all(len(node.peers()) == 1 for node in net.nodes)
        await stray.stop()
        await net.stop()

    run(body)
    assert reason in caplog.text


def test_raw_socket_attacks_are_cut_off_others_unaffected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "node.transport")
    config = TransportConfig(
        handshake_timeout=2.0, ping_interval=0.2, dead_timeout=1.0, write_timeout=1.0,
        backoff_base=0.05, backoff_cap=0.5, max_frame_size=64 * 1024,
        max_frames_per_second=200, frame_burst=200, ban_seconds=30,
    )

    async def body() -> None:
        net = Net(3, config)
        await net.start()
        await wait_until(net.meshed)
        target = net.nodes[0]
        port = target.port

        # Unauthenticated: garbage, an oversized length, a frame before the handshake.
        attacks = [
            b"\xff" * 100,
            (2**31).to_bytes(4, "big") + bytes([FrameType.CONSENSUS]),
            encode_frame(FrameType.CONSENSUS, b"vote before hello"),
        ]
        for attack in attacks:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(attack)
            assert await closed_by_peer(reader)
            writer.close()
        await still_exchanging(net, b"after-raw")

        # Authenticated as validator 3, then an impossible length: anyone on the path could
        # have written it, so the link is cut and nobody is charged.
        intruder = KEYS[3].public_key
        peer = await RawPeer.connect(KEYS[3], port)
        await wait_until(lambda: intruder in target.peers())
        peer.writer.write((10**6).to_bytes(4, "big") + bytes(20))
        assert await closed_by_peer(peer.reader)
        peer.writer.close()
        assert target.stats(intruder).link_errors == 1 and target.stats(intruder).bad_frames == 0
        assert target.ban_remaining(intruder) == 0

        # A frame that opens under the session key but breaks the protocol (a handshake
        # frame after the handshake) is validator 3's own doing: charged, no ban yet.
        peer = await RawPeer.connect(KEYS[3], port)
        await wait_until(lambda: intruder in target.peers())
        peer.send(FrameType.LINK_INIT, b"again")
        peer.send(FrameType.CONSENSUS, b"after the bad one")
        await wait_until(lambda: target.stats(intruder).bad_frames == 1)
        assert target.ban_remaining(intruder) == 0 and intruder in target.peers()

        # Authenticated flood: past the rate limit the points add up to a ban.
        for _ in range(2000):
            peer.send(FrameType.CONSENSUS, b"spam")
        await still_exchanging(net, b"during-flood")
        assert await closed_by_peer(peer.reader)
        peer.writer.close()
        assert target.stats(intruder).rate_limited > 0  # 50 points left from the bad frame
        assert target.ban_remaining(intruder) > 20
        # ... and while banned it cannot come back.
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await RawPeer.connect(KEYS[3], port)
        assert all(p.startswith(b"spam") is False for got in net.got[1:] for _, _, p in got)
        await still_exchanging(net, b"after-flood")
        assert net.meshed()
        await net.stop()

    run(body)
    assert "banning v3" in caplog.text and "is banned for another" in caplog.text


def test_keepalive_ping_pong_and_dead_peer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "node.transport")

    async def body() -> None:
        net = Net(1)
        await net.start()
        node = net.nodes[0]
        peer = await RawPeer.connect(KEYS[3], node.port)
        assert (await peer.read()).type is FrameType.PING  # within ping_interval
        peer.send(FrameType.PING, b"abc")
        while (frame := await peer.read()).type is not FrameType.PONG:
            pass
        assert frame.payload == b"abc"
        # From now on validator 3 sends nothing: dead after dead_timeout (1 s here).
        started = time.monotonic()
        assert await closed_by_peer(peer.reader)
        assert 0.8 < time.monotonic() - started < 2.5
        peer.writer.close()
        await net.stop()

    run(body)
    assert "dead peer" in caplog.text


def test_slow_peer_costs_drops_not_blocking_then_is_cut(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "node.transport")
    config = TransportConfig(
        handshake_timeout=2.0, ping_interval=0.2, dead_timeout=5.0, write_timeout=0.5,
        queue_size=4, max_frame_size=2 * 1024 * 1024,
    )

    async def body() -> None:
        net = Net(1, config)
        await net.start()
        node = net.nodes[0]
        # Validator 3 authenticates and keeps pinging (so it is alive) but never reads.
        peer = await RawPeer.connect(KEYS[3], node.port)
        writer = peer.writer
        key = KEYS[3].public_key

        async def keep_pinging() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    peer.send(FrameType.PING, b"")
                    await asyncio.sleep(0.1)

        pinger = asyncio.create_task(keep_pinging())
        await wait_until(lambda: key in node.peers())
        started = time.monotonic()
        results = [node.send(key, FrameType.SYNC_RESPONSE, b"x" * 1_000_000) for _ in range(50)]
        assert time.monotonic() - started < 0.5  # send() never waits for the peer
        assert results.count(False) > 0 and node.stats(key).drops == results.count(False)
        # Keep sending, as a validator would: once the kernel's socket buffers are full a
        # write stalls past write_timeout and the peer is cut.
        deadline = time.monotonic() + 8.0
        while key in node.peers():
            assert time.monotonic() < deadline, "slow peer never cut off"
            node.send(key, FrameType.SYNC_RESPONSE, b"x" * 1_000_000)
            await asyncio.sleep(0.02)
        assert node.stats(key).disconnects == 1
        pinger.cancel()
        await asyncio.gather(pinger, return_exceptions=True)
        writer.close()
        await net.stop()

    run(body)
    assert "slow peer" in caplog.text


def test_restarted_peer_is_reconnected_by_the_others() -> None:
    async def body() -> None:
        net = Net(4)
        await net.start()
        await wait_until(net.meshed)
        gone = net.nodes[3]
        port = gone.port
        await gone.stop()
        await wait_until(lambda: all(len(n.peers()) == 2 for n in net.nodes[:3]))
        await asyncio.sleep(0.5)  # let the others' backoff grow a little
        net.nodes[3] = net.make(3, FAST, port=port)
        await net.nodes[3].start()  # no connect_to: the others must find it on their own
        await wait_until(net.meshed, timeout=8.0)
        await still_exchanging(net, b"after-restart")
        await net.stop()

    run(body)


def test_send_refuses_control_frames_and_oversized_payloads() -> None:
    async def body() -> None:
        net = Net(1, TransportConfig(max_frame_size=2048))
        await net.start()
        node = net.nodes[0]
        with pytest.raises(ValueError):
            node.broadcast(FrameType.PING, b"")
        with pytest.raises(OversizedFrame):
            node.broadcast(FrameType.CONSENSUS, b"x" * 2048)
        assert not node.send(KEYS[1].public_key, FrameType.CONSENSUS, b"not connected")
        await net.stop()

    run(body)


def test_outgoing_bytes_per_peer_are_bounded() -> None:
    """A peer that asks for large frames and never reads them: past max_queue_bytes,
    send() drops. Fails when only the frame count bounds the queue (checked by hand:
    all 50 frames, 50 MB, were queued)."""
    config = TransportConfig(handshake_timeout=2.0, ping_interval=0.2, dead_timeout=5.0,
                             max_frame_size=2 * 1024 * 1024, max_queue_bytes=2_500_000)

    async def body() -> None:
        net = Net(1, config)
        await net.start()
        node = net.nodes[0]
        peer = await RawPeer.connect(KEYS[3], node.port)
        key = KEYS[3].public_key
        await wait_until(lambda: key in node.peers())
        results = [node.send(key, FrameType.SYNC_RESPONSE, b"x" * 1_000_000) for _ in range(50)]
        assert results.count(True) == 2 and node.stats(key).drops == 48
        peer.writer.close()
        await net.stop()

    run(body)


def test_dialling_our_own_address_stops_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """The listener never answers its own key, so the dialler must learn it dialled
    itself from the listener. Fails when it does not (checked by hand: it redialled
    itself every backoff interval, a handshake failure each time)."""
    caplog.set_level(logging.INFO, "node.transport")

    async def body() -> None:
        node = Net(1).nodes[0]
        await node.start()
        node.connect_to([node.address])
        await wait_until(lambda: "is our own address" in caplog.text)
        await asyncio.sleep(0.3)  # several backoff intervals: no redial
        assert node.handshake_failures == 0
        assert node.open_connections() == 0
        # Somebody else claiming our key is a failed handshake, not a self-dial.
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        params = LinkParams(KEYS[0], CHAIN, GENESIS, VALIDATORS, 1 << 20)
        writer.write(encode_frame(FrameType.LINK_INIT, Initiator(params, bytes(range(32))).init()))
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: node.handshake_failures == 1)
        await node.stop()

    run(body)
