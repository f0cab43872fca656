"""The node's JSON-RPC server on a thread and event loop of its own.

On the consensus loop, every HTTP request's parsing, dispatch and answer encoding was a
callback queued among the votes: under a flood of costly requests a vote waited behind
all of them. On its own loop the RPC shares only the GIL with consensus, which Python
hands over every switch interval, so a vote waits at most that long (or one bounded C
call, such as the parse of a body whose JSON values were counted first). The few methods
that change consensus state (submissions) are sent to the consensus loop with
:class:`ConsensusLoop`; reads go to ``node.read_pool``'s worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from node.http_limits import HttpLimits
from node.jsonrpc import Method, current_client
from node.rpc_server import Metrics, RpcServer

T = TypeVar("T")


class ConsensusLoop:
    """Runs coroutines on the validator's own loop, from the RPC's (or inline where
    there is only one loop, as in unit tests)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        loop = self.loop
        if loop is None or loop is asyncio.get_running_loop():
            return await fn(*args)
        client = current_client.get()

        async def there() -> T:
            current_client.set(client)
            return await fn(*args)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(there(), loop))


class RpcThread:
    """``RpcServer`` started and stopped from the consensus loop, served from its own."""

    def __init__(self, methods: Mapping[str, Method], host: str, port: int, limits: HttpLimits | None = None,
                 metrics: Metrics | None = None) -> None:
        self._server = RpcServer(methods, host, port, limits, metrics=metrics)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="rpc", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(self._started)  # re-raises a bind failure

    async def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        await self._stop.wait()
        await self._server.stop()
