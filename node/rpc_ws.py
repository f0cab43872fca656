"""JSON-RPC over WebSocket on the RPC port (path ``/``): every method of the table, and
the Ethereum subscriptions ``eth_subscribe("newHeads")``, ``eth_subscribe("logs",
{address, topics})`` and ``eth_unsubscribe`` for dashboards.

Bounded like the HTTP RPC, with :class:`WsLimits`:

| limit | default | a client over it gets |
|---|---|---|
| ``max_connections``: open WebSockets | 100 | the handshake refused (HTTP 403) |
| ``max_message_bytes``: one message | 1 MiB | closed with 1009 (message too big) |
| ``max_subscriptions``: per connection | 16 | error -32005 ``too_many_subscriptions`` |
| ``send_queue``: notifications a client has not read | 256 | closed with 1008 (too slow) |

A message is handled like an HTTP body (``node.jsonrpc.handle_body``: the same size,
depth, parse and batch budgets), except for the two subscription methods. One
:class:`Subscriptions` hub per server follows the chain by polling the tip and, for each
new block, reads its header and its logs once (through the table, so on the read worker
in a node) and hands them to every matching subscription. Every block is final: a
notification is never retracted (``removed`` is always false).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from contracts.engine import EvmLog
from ledger import jsonbound
from ledger.errors import LedgerError
from node.eth_filters import LogQuery
from node.jsonrpc import INVALID_PARAMS, MAX_DEPTH, Method, current_client, handle_body
from node.rpc_limits import LIMIT_EXCEEDED

MAX_CATCH_UP = 64  # blocks one tick of the hub publishes; it goes on at the next


@dataclass(frozen=True)
class WsLimits:
    max_connections: int = 100
    max_message_bytes: int = 1 << 20
    max_subscriptions: int = 16
    send_queue: int = 256
    poll_s: float = 0.25  # how often the hub looks for a new tip

    def uvicorn_options(self) -> dict[str, Any]:
        return {"ws_max_size": self.max_message_bytes, "ws_per_message_deflate": False}


@dataclass(eq=False)
class _Connection:
    websocket: WebSocket
    queue: asyncio.Queue[str]
    heads: set[str] = field(default_factory=set)
    logs: dict[str, LogQuery] = field(default_factory=dict)
    too_slow: bool = False
    sender: asyncio.Task[None] | None = None

    @property
    def subscriptions(self) -> int:
        return len(self.heads) + len(self.logs)

    def push(self, subscription: str, result: Any) -> None:
        message = {"jsonrpc": "2.0", "method": "eth_subscription",
                   "params": {"subscription": subscription, "result": result}}
        self.enqueue(message)

    def enqueue(self, message: Any) -> None:
        """Queue a message for the client; one that leaves ``send_queue`` unread is dropped."""
        if self.too_slow:
            return
        try:
            self.queue.put_nowait(json.dumps(message, separators=(",", ":")))
        except asyncio.QueueFull:
            self.too_slow = True
            if self.sender is not None:  # it may be stuck writing to a client that reads nothing
                self.sender.cancel()
            asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        with contextlib.suppress(Exception):  # whatever state the socket is in, it ends here
            await asyncio.wait_for(self.websocket.close(code=1008, reason="notifications not read in time"), 5)


def _log_of(obj: dict[str, Any]) -> EvmLog:
    return EvmLog(bytes.fromhex(obj["address"][2:]), tuple(bytes.fromhex(t[2:]) for t in obj["topics"]), b"")


class Subscriptions:
    """The WebSocket endpoint and the hub that feeds its subscriptions."""

    def __init__(self, methods: Mapping[str, Method], limits: WsLimits | None = None) -> None:
        self.methods = methods
        self.limits = limits or WsLimits()
        self.connections: set[_Connection] = set()
        self._hub: asyncio.Task[None] | None = None

    # --- the endpoint -----------------------------------------------------------------
    async def endpoint(self, websocket: WebSocket) -> None:
        if len(self.connections) >= self.limits.max_connections:
            await websocket.close()  # before accept: the handshake is refused with 403
            return
        await websocket.accept()
        client = websocket.client.host if websocket.client else ""
        conn = _Connection(websocket, asyncio.Queue(self.limits.send_queue))
        self.connections.add(conn)
        sender = conn.sender = asyncio.create_task(self._send(conn))
        try:
            while not conn.too_slow:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("bytes") or (message.get("text") or "").encode()
                current_client.set(client)
                answer = await self._answer(conn, raw)
                if answer is not None:
                    conn.enqueue(answer)
        except WebSocketDisconnect:
            pass
        finally:
            self.connections.discard(conn)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send(self, conn: _Connection) -> None:
        while True:
            text = await conn.queue.get()
            try:
                await conn.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError):
                return

    async def _answer(self, conn: _Connection, raw: bytes) -> Any:
        """A message's answer: the subscription methods here, the rest by the table."""
        try:
            request = jsonbound.loads(raw, max_bytes=self.limits.max_message_bytes, max_depth=MAX_DEPTH)
        except LedgerError:
            request = None  # handle_body answers the parse error itself
        if isinstance(request, dict) and request.get("method") in ("eth_subscribe", "eth_unsubscribe"):
            return self._subscription_call(conn, request)
        return await handle_body(self.methods, raw)

    def _subscription_call(self, conn: _Connection, request: dict[str, Any]) -> dict[str, Any]:
        rid = request.get("id")
        params = request.get("params") or []
        if not isinstance(params, list) or not params:
            return _error(rid, INVALID_PARAMS, "params must be a non-empty list")
        if request["method"] == "eth_unsubscribe":
            sid = params[0]
            found = sid in conn.heads or sid in conn.logs
            conn.heads.discard(sid)
            conn.logs.pop(sid, None)
            return {"jsonrpc": "2.0", "id": rid, "result": found}
        if conn.subscriptions >= self.limits.max_subscriptions:
            return _error(rid, LIMIT_EXCEEDED, f"at most {self.limits.max_subscriptions} subscriptions a connection",
                          {"code": "too_many_subscriptions"})
        kind = params[0]
        sid = "0x" + secrets.token_hex(16)
        if kind == "newHeads" and len(params) == 1:
            conn.heads.add(sid)
        elif kind == "logs" and len(params) <= 2:
            criteria = params[1] if len(params) == 2 else {}
            if not isinstance(criteria, dict) or set(criteria) - {"address", "topics"}:
                return _error(rid, INVALID_PARAMS, "a logs subscription takes address and topics only")
            try:
                conn.logs[sid] = LogQuery.parse(criteria)
            except LedgerError as exc:
                return _error(rid, INVALID_PARAMS, exc.message)
        else:
            return _error(rid, INVALID_PARAMS, f"subscriptions served: newHeads, logs (not {str(kind)[:40]!r})")
        self._start_hub()
        return {"jsonrpc": "2.0", "id": rid, "result": sid}

    # --- the hub ----------------------------------------------------------------------
    def _start_hub(self) -> None:
        if self._hub is None or self._hub.done():
            self._hub = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        """Publish every block after the tip seen when the first subscription came, for as
        long as any connection subscribes to anything."""
        current_client.set("subscriptions")
        last = int(await self.methods["eth_blockNumber"](), 16)
        while any(c.subscriptions for c in self.connections):
            await asyncio.sleep(self.limits.poll_s)
            try:
                tip = int(await self.methods["eth_blockNumber"](), 16)
                for height in range(last + 1, min(tip, last + MAX_CATCH_UP) + 1):
                    await self._publish(height)
                    last = height
            except LedgerError:
                continue  # the read worker is busy: the same blocks at the next tick

    async def _publish(self, height: int) -> None:
        subscribed = [c for c in self.connections if c.subscriptions]
        if any(c.heads for c in subscribed):
            block = await self.methods["eth_getBlockByNumber"](hex(height), False)
            header = {k: v for k, v in block.items() if k != "transactions"}
            for c in subscribed:
                for sid in c.heads:
                    c.push(sid, header)
        if any(c.logs for c in subscribed):
            logs = await self.methods["eth_getLogs"]({"fromBlock": hex(height), "toBlock": hex(height)})
            parsed = [(obj, _log_of(obj)) for obj in logs]
            for c in subscribed:
                for sid, query in c.logs.items():
                    for obj, log in parsed:
                        if query.keeps(log):
                            c.push(sid, obj)


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": err}

