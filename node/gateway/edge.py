"""The outermost ASGI layer: the body limit, request metrics, and the fast path for
ballot submissions (:func:`node.gateway.routes.ballots.fast_submit`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from node.gateway.http_problems import problem_response
from node.gateway.problems import Problem
from node.gateway.routes import ballots
from node.gateway.state import GatewayState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _ClientGone(Exception):
    """The connection closed before the whole body arrived: nobody to answer."""


class EdgeMiddleware:
    """Reads every body once (refusing it past ``max_request_bytes`` whatever
    Content-Length says), answers submissions on the fast path when it can, and hands
    everything else to FastAPI with the body it read."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state: GatewayState = app.state.gateway
        self.max_body = self.state.config.max_request_bytes
        self.metrics = self.state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        label = "unmatched"

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            try:
                body = await self._read_body(scope, receive)
            except _ClientGone:
                return
            if body is None:
                problem = Problem("payload_too_large", f"request body over {self.max_body} bytes")
                await problem_response(problem, scope["path"])(scope, receive, send_wrapper)
                return
            election_id = ballots.submit_target(scope)
            if election_id is not None:
                label = ballots.SUBMIT_ROUTE
                response = await ballots.fast_submit(self.state, scope, election_id, body)
                if response is not None:
                    await response(scope, receive, send_wrapper)
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", label)
            self.metrics.requests.labels(label, scope["method"], str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None once it exceeds the limit (whatever Content-Length says)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > self.max_body:
                        return None
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone  # disconnected, or cut off by the body deadline
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)
