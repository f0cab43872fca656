"""The relay attack of issue-13 on real sockets: a man in the middle between two real
PeerTransports on loopback, forwarding, rewriting and injecting handshake and data bytes.

v0 and v1 are never told each other's address: any link between them runs through the
relay, so "v1 logged 'connected to v0'" can only come from what the relay did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

import pytest

from node.frames import HANDSHAKE_MAX_FRAME_SIZE, HEADER_SIZE, Frame, FrameType, encode_frame, parse_header
from node.peerlink import Finish, Init, Response, ephemeral_public
from node.transport import PeerTransport, TransportConfig
from tests.test_transport import CHAIN, GENESIS, KEYS, VALIDATORS, closed_by_peer, run, wait_until

CONFIG = TransportConfig(  # a budget large enough that the host limit never gets in the way
    handshake_timeout=1.0, ping_interval=0.2, dead_timeout=1.0, write_timeout=1.0,
    backoff_base=0.05, backoff_cap=0.3, ban_seconds=60, handshake_burst_per_host=500,
)
X, Y = 0, 1  # the impersonated validator and the one that is attacked


class Pair:
    """v0 and v1, each recording the frames it is handed."""

    def __init__(self) -> None:
        self.got: list[list[tuple[bytes, FrameType, bytes]]] = [[], []]
        self.nodes = [self._make(i) for i in (X, Y)]

    def _make(self, i: int) -> PeerTransport:
        got = self.got[i]

        def on_frame(key: bytes, ftype: FrameType, payload: bytes) -> None:
            got.append((key, ftype, payload))

        return PeerTransport(KEYS[i], chain_id=CHAIN, genesis_hash=GENESIS, validators=VALIDATORS,
                             on_frame=on_frame, config=CONFIG)

    async def start(self) -> None:
        for node in self.nodes:
            await node.start()

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()

    def x_untouched_at_y(self) -> bool:
        y, x_key = self.nodes[Y], KEYS[X].public_key
        return y.ban_remaining(x_key) == 0 and y.misbehaviour_points(x_key) == 0


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    ftype, size = parse_header(await reader.readexactly(HEADER_SIZE), HANDSHAKE_MAX_FRAME_SIZE)
    return Frame(ftype, await reader.readexactly(size))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               transform: Callable[[bytes], bytes] = lambda b: b) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(transform(data))
            await writer.drain()
    writer.close()


class Relay:
    """A TCP man in the middle: accepts v0's dials and relays each to v1, through
    ``on_link(from_x_reader, from_x_writer, to_y_reader, to_y_writer)``."""

    def __init__(self, target_port: int,
                 on_link: Callable[..., Awaitable[None]]) -> None:
        self.target_port, self.on_link = target_port, on_link
        self.links = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return ("127.0.0.1", self._server.sockets[0].getsockname()[1])

    async def _accept(self, xr: asyncio.StreamReader, xw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.links += 1
        try:
            yr, yw = await asyncio.open_connection("127.0.0.1", self.target_port)
            await self.on_link(xr, xw, yr, yw)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            xw.close()
            self._tasks.discard(task)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


def test_forwarded_signature_for_a_claimed_key_gets_no_link(caplog: pytest.LogCaptureFixture) -> None:
    """The issue's attack, step for step: the relay claims v0's key to v1 and, to finish,
    gets v0 to sign by dialling v0 too (v0 signs for any validator key that dials it,
    as the old HELLO_ACK did). v1 refuses: v0 signed as a responder, over v0's own
    ephemeral. The relay then sends malformed frames on the socket, twelve times over.
    Nothing connects, v1 never logs 'connected to v0', and v0's score at v1 stays 0.
    Fails when each side signs only the other's ephemeral and the two keys, as the old
    HELLO_ACK did (checked by hand: v1 then accepted the relayed signature)."""
    caplog.set_level(logging.INFO, "node.transport")

    async def body() -> None:
        pair = Pair()
        await pair.start()
        x, y = pair.nodes
        for _ in range(12):
            yr, yw = await asyncio.open_connection("127.0.0.1", y.port)
            claim = Init(1, CHAIN, GENESIS, KEYS[X].public_key, ephemeral_public(secrets.token_bytes(32)))
            yw.write(encode_frame(FrameType.LINK_INIT, claim.encode()))
            response = Response.decode((await read_frame(yr)).payload)
            # Dial v0 under v1's name with v1's own ephemeral: v0 answers with a signature.
            xr, xw = await asyncio.open_connection("127.0.0.1", x.port)
            ask = Init(1, CHAIN, GENESIS, KEYS[Y].public_key, response.ephemeral)
            xw.write(encode_frame(FrameType.LINK_INIT, ask.encode()))
            x_signature = Response.decode((await read_frame(xr)).payload).signature
            xw.close()
            yw.write(encode_frame(FrameType.LINK_FINISH, Finish(x_signature).encode()))
            yw.write(b"\xff" * 64)  # "malformed frames on that link"
            assert await closed_by_peer(yr)
            yw.close()
        await wait_until(lambda: y.handshake_failures >= 12)
        assert y.peers() == [] and x.peers() == []
        assert pair.x_untouched_at_y()
        await pair.stop()

    run(body)
    assert "FINISH signature does not verify" in caplog.text
    assert "connected to" not in caplog.text


def test_faithful_relay_then_injection_costs_v0_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """The relay forwards the handshake unchanged (so v0 and v1 do get a link, to each
    other, through it) and then injects bytes into v0's direction, again and again.
    Each injection only drops the link (a frame that fails to open is charged to
    nobody); v0 is never scored or banned at v1, and once the relay stops injecting the
    two talk normally. Fails when LinkCorrupted is charged to the link's key like a
    BadFrame (checked by hand: v0 was then scored at v1 from the first injection on)."""
    caplog.set_level(logging.INFO, "node.transport")
    injections = 6

    async def body() -> None:
        pair = Pair()
        await pair.start()
        x, y = pair.nodes
        x_key = KEYS[X].public_key
        state = {"inject": True}

        async def on_link(xr: asyncio.StreamReader, xw: asyncio.StreamWriter,
                          yr: asyncio.StreamReader, yw: asyncio.StreamWriter) -> None:
            def tamper(data: bytes) -> bytes:
                if not state["inject"] or len(data) < 200:  # leave the handshake alone
                    return data
                corrupted = bytearray(data)
                corrupted[-1] ^= 0x01  # the tag of the last frame in this chunk
                return bytes(corrupted)

            await asyncio.gather(pipe(xr, yw, tamper), pipe(yr, xw))

        relay = Relay(y.port, on_link)
        x.connect_to([await relay.start()])
        for n in range(injections):
            await wait_until(lambda: x_key in y.peers())
            x.broadcast(FrameType.CONSENSUS, b"v" * 300 + bytes([n]))
            await wait_until(lambda n=n: y.stats(x_key).link_errors == n + 1)  # type: ignore[misc]
            assert pair.x_untouched_at_y()
        state["inject"] = False
        await wait_until(lambda: x_key in y.peers())
        x.broadcast(FrameType.CONSENSUS, b"clean " * 60)
        await wait_until(lambda: any(p == b"clean " * 60 for _, _, p in pair.got[Y]))
        assert all(key == x_key for key, _, _ in pair.got[Y])
        assert not any(p.startswith(b"v" * 300) for _, _, p in pair.got[Y])  # never delivered
        assert pair.x_untouched_at_y() and y.stats(x_key).bad_frames == 0
        assert relay.links >= injections + 1
        await relay.stop()
        await pair.stop()

    run(body)
    assert "banning" not in caplog.text


def test_swapped_ephemeral_gets_no_link(caplog: pytest.LogCaptureFixture) -> None:
    """The relay replaces v0's ephemeral with its own (to read and write the traffic):
    v0 refuses v1's RESPONSE, v1 never gets a FINISH, and nobody logs a connection.
    Fails when the initiator's ephemeral is not under the responder's signature."""
    caplog.set_level(logging.INFO, "node.transport")

    async def body() -> None:
        pair = Pair()
        await pair.start()
        x, y = pair.nodes

        async def on_link(xr: asyncio.StreamReader, xw: asyncio.StreamWriter,
                          yr: asyncio.StreamReader, yw: asyncio.StreamWriter) -> None:
            init = Init.decode((await read_frame(xr)).payload)
            mine = ephemeral_public(secrets.token_bytes(32))
            swapped = Init(init.version, init.chain_id, init.genesis_hash, init.static_key, mine)
            yw.write(encode_frame(FrameType.LINK_INIT, swapped.encode()))
            await asyncio.gather(pipe(xr, yw), pipe(yr, xw))

        relay = Relay(y.port, on_link)
        x.connect_to([await relay.start()])
        await wait_until(lambda: x.handshake_failures >= 3 and y.handshake_failures >= 2)
        assert x.peers() == [] and y.peers() == []
        assert pair.x_untouched_at_y()
        await relay.stop()
        await pair.stop()

    run(body)
    assert "RESPONSE signature does not verify" in caplog.text
    assert "connected to" not in caplog.text


def test_unauthenticated_host_is_held_to_its_budget(caplog: pytest.LogCaptureFixture) -> None:
    """Sockets that never authenticate: past the per-host limit they are closed before a
    byte is read; failed handshakes claiming v0's key leave v0's score at 0; and v0, once
    the flood is over, still connects."""
    caplog.set_level(logging.INFO, "node.transport")
    config = TransportConfig(
        handshake_timeout=1.0, ping_interval=0.2, dead_timeout=1.0, backoff_base=0.05,
        backoff_cap=0.3, max_handshaking_per_host=4, handshakes_per_second_per_host=5,
        handshake_burst_per_host=60,
    )

    async def body() -> None:
        y = PeerTransport(KEYS[Y], chain_id=CHAIN, genesis_hash=GENESIS, validators=VALIDATORS,
                          config=config)
        await y.start()
        idle = [await asyncio.open_connection("127.0.0.1", y.port) for _ in range(10)]
        closed = [await closed_by_peer(r, timeout=0.3) for r, _ in idle]
        assert closed.count(True) >= 6 and y.refused_by_budget >= 6  # 4 held in handshake
        for _, w in idle:
            w.close()
        await asyncio.sleep(1.2)  # the held ones time out
        for _ in range(6):  # claims of v0's key that never finish
            r, w = await asyncio.open_connection("127.0.0.1", y.port)
            claim = Init(1, CHAIN, GENESIS, KEYS[X].public_key, ephemeral_public(secrets.token_bytes(32)))
            w.write(encode_frame(FrameType.LINK_INIT, claim.encode()))
            w.write(encode_frame(FrameType.LINK_FINISH, Finish(bytes(64)).encode()))
            assert await closed_by_peer(r)
            w.close()
        await wait_until(lambda: y.handshake_failures == 4 + 6)  # each reached the handshake
        assert y.misbehaviour_points(KEYS[X].public_key) == 0 and y.ban_remaining(KEYS[X].public_key) == 0
        x = PeerTransport(KEYS[X], chain_id=CHAIN, genesis_hash=GENESIS, validators=VALIDATORS,
                          config=config)
        await x.start()
        x.connect_to([y.address])
        await wait_until(lambda: x.peers() == [KEYS[Y].public_key])
        await x.stop()
        await y.stop()

    run(body)
    assert "refused connections" in caplog.text
