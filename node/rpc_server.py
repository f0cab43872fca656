"""The node's JSON-RPC over HTTP (POST /) and WebSocket (/, :mod:`node.rpc_ws`), its
Prometheus metrics (GET /metrics, :mod:`node.metrics`), and the voter's and observer's
page: a Starlette app served by uvicorn in the node's loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Generator, Mapping

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from node.http_limits import HttpLimits
from node.jsonrpc import INVALID_REQUEST, MAX_BODY, Method, current_client, handle_body
from node.rpc_ws import Subscriptions, WsLimits
from node.web import WebAssets

Metrics = Callable[[], bytes]  # the Prometheus text, rendered on the RPC's thread
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def make_app(
    methods: Mapping[str, Method], subscriptions: Subscriptions | None = None, metrics: Metrics | None = None
) -> Starlette:
    async def endpoint(request: Request) -> Response:
        current_client.set(request.client.host if request.client else "")  # limits are per address
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            return _json({"jsonrpc": "2.0", "id": None,
                          "error": {"code": INVALID_REQUEST, "message": f"body exceeds {MAX_BODY} bytes"}}, 413)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > MAX_BODY:
                    return _json({"jsonrpc": "2.0", "id": None,
                                  "error": {"code": INVALID_REQUEST, "message": f"body exceeds {MAX_BODY} bytes"}},
                                 413)
        except ClientDisconnect:  # gone, or cut off by the body deadline: nobody to answer
            return Response(status_code=400)
        answer = await handle_body(methods, bytes(body))
        if answer is None:
            return Response(status_code=204)
        return _json(answer, 200)

    # GET / and /receipt, /observer: the voter's and observer's page, reading this node's
    # JSON-RPC (an observer can point a browser at their own follower).
    routes: list[BaseRoute] = [Route("/", endpoint, methods=["POST"]), *WebAssets().routes(docs=False)]
    if metrics is not None:
        async def scrape(request: Request) -> Response:
            return Response(metrics(), media_type=METRICS_CONTENT_TYPE)

        routes.append(Route("/metrics", scrape, methods=["GET"]))
    if subscriptions is not None:  # JSON-RPC over WebSocket, with eth_subscribe (node.rpc_ws)
        routes.append(WebSocketRoute("/", subscriptions.endpoint))
    return Starlette(routes=routes)


def _json(obj: object, status: int) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")), status_code=status, media_type="application/json")


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the node owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class RpcServer:

    def __init__(self, methods: Mapping[str, Method], host: str, port: int, limits: HttpLimits | None = None,
                 ws_limits: WsLimits | None = None, metrics: Metrics | None = None) -> None:
        ws = ws_limits or WsLimits()
        self.subscriptions = Subscriptions(methods, ws)
        # log_config None: uvicorn's records go to the process's handlers (node.logs), in its format
        config = uvicorn.Config(
            make_app(methods, self.subscriptions, metrics), host=host, port=port, log_level="warning",
            log_config=None, lifespan="off", access_log=False, **(limits or HttpLimits()).uvicorn_options(),
            **ws.uvicorn_options(),
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raise a bind failure
                raise RuntimeError("RPC server stopped during start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
