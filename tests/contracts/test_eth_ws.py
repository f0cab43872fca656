"""eth_subscribe over WebSocket: web3.py's WebSocketProvider, unmodified, follows new
heads and the registry's events from the node's own server (real uvicorn, real EVM), and
the endpoint's bounds hold against a raw WebSocket client."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from web3 import AsyncWeb3, Web3
from web3.providers.persistent import WebSocketProvider

from contracts import REGISTRY_ADDRESS, Phase, election_key, registry
from node.rpc_server import RpcServer
from node.rpc_ws import WsLimits

from .test_eth_rpc import EID, Served, _free_port

LIMITS = WsLimits(max_connections=3, max_subscriptions=3, max_message_bytes=4096, poll_s=0.05)


class Live:
    def __init__(self) -> None:
        self.served = Served()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = _free_port()
        self.server = RpcServer(self.served.methods.table(), "127.0.0.1", self.port, ws_limits=LIMITS)
        self.on_loop(self.server.start())

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def add_block(self, txs: list[bytes]) -> None:
        """A new block, built on the server's loop (where the RPC reads the chain)."""

        async def add() -> None:
            self.served.chain.add(txs)

        self.on_loop(add())

    def close(self) -> None:
        self.on_loop(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def live() -> Iterator[Live]:
    node = Live()
    try:
        yield node
    finally:
        node.close()


def test_web3_follows_new_heads_and_registry_events(live: Live) -> None:
    s = live.served
    reg = registry()

    async def session() -> tuple[list[int], list[Any], bool]:
        async with AsyncWeb3(WebSocketProvider(live.url)) as w3:
            assert await w3.eth.chain_id == s.executor.chain_id
            assert await w3.eth.block_number == 0  # plain methods over the same socket
            heads = await w3.eth.subscribe("newHeads")
            changes = await w3.eth.subscribe("logs", {
                "address": Web3.to_checksum_address(REGISTRY_ADDRESS),
                "topics": [reg.events["PhaseChanged"].topic, election_key(EID)]})
            await asyncio.to_thread(live.add_block, [s.tx(reg.close_election(EID))])
            await asyncio.to_thread(live.add_block, [])
            numbers: list[int] = []
            events: list[Any] = []
            async with asyncio.timeout(20):
                async for message in w3.socket.process_subscriptions():
                    if message["subscription"] == heads:
                        numbers.append(message["result"]["number"])
                    elif message["subscription"] == changes:
                        events.append(message["result"])
                    if len(numbers) == 2 and events:
                        break
            return numbers, events, await w3.eth.unsubscribe(heads)

    numbers, events, unsubscribed = asyncio.run(session())
    assert numbers == [1, 2] and unsubscribed
    assert len(events) == 1 and events[0]["blockNumber"] == 1
    decoded = reg.decode_log(tuple(bytes(t) for t in events[0]["topics"]), bytes(events[0]["data"]))
    assert decoded is not None and decoded[1]["new_phase"] == Phase.CLOSED


async def _call(ws: Any, method: str, params: list[Any], rid: int = 1) -> dict[str, Any]:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
    answer: dict[str, Any] = json.loads(await ws.recv())
    return answer


def test_the_bounds_hold(live: Live) -> None:
    """Subscriptions per connection, message size and connections are bounded.
    Fails when a bound is removed (checked by hand with max_subscriptions ignored)."""

    async def session() -> None:
        async with websockets.connect(live.url) as ws:
            assert (await _call(ws, "eth_subscribe", ["newPendingTransactions"]))["error"]["code"] == -32602
            assert (await _call(ws, "eth_subscribe", ["logs", {"fromBlock": "0x0"}]))["error"]["code"] == -32602
            ids = [(await _call(ws, "eth_subscribe", ["newHeads"]))["result"] for _ in range(LIMITS.max_subscriptions)]
            assert len(set(ids)) == LIMITS.max_subscriptions
            over = await _call(ws, "eth_subscribe", ["logs", {}])
            assert over["error"]["code"] == -32005 and over["error"]["data"]["code"] == "too_many_subscriptions"
            assert (await _call(ws, "eth_unsubscribe", [ids[0]]))["result"] is True
            assert (await _call(ws, "eth_unsubscribe", [ids[0]]))["result"] is False
            assert "result" in await _call(ws, "eth_subscribe", ["logs", {"address": "0x" + "00" * 20}])
            # a normal call over the socket is held to the same parse rules as over HTTP
            assert (await _call(ws, "eth_blockNumber", []))["result"] == "0x0"
            await ws.send(b"{not json")
            assert json.loads(await ws.recv())["error"]["code"] == -32700
        async with websockets.connect(live.url) as ws:
            await ws.send("[" + " " * LIMITS.max_message_bytes + "]")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        open_sockets = [await websockets.connect(live.url) for _ in range(LIMITS.max_connections)]
        try:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(live.url)
            assert refused.value.response.status_code == 403
        finally:
            for ws in open_sockets:
                await ws.close()

    asyncio.run(session())


def test_a_client_that_reads_nothing_is_dropped_at_its_queue_bound() -> None:
    """Notifications beyond send_queue are not kept: the connection is marked, its sender
    stopped and the socket closed with 1008. Fails when enqueue keeps queueing."""
    from node.rpc_ws import _Connection

    class Socket:
        closed_with: int | None = None

        async def close(self, code: int = 1000, reason: str = "") -> None:
            self.closed_with = code

    async def run() -> tuple[_Connection, Socket, asyncio.Task[None]]:
        socket = Socket()
        conn = _Connection(socket, asyncio.Queue(2))  # type: ignore[arg-type]
        conn.sender = asyncio.create_task(asyncio.sleep(60))
        for n in range(5):
            conn.push("0x01", {"number": hex(n)})
        await asyncio.sleep(0.01)
        return conn, socket, conn.sender

    conn, socket, sender = asyncio.run(run())
    assert conn.too_slow and conn.queue.qsize() == 2 and sender.cancelled() and socket.closed_with == 1008
