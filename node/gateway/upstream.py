"""The validators as one upstream: JSON-RPC over HTTP with priority order and failover.

Calls go to the first healthy URL in the configured order; a URL that fails at the
transport level is skipped for a growing back-off and the call moves on to the next.
A node's JSON-RPC error is an answer, not a failure: it is raised to the caller as is.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ledger import jsonbound
from ledger.errors import LedgerError
from verifier.rpc_client import RpcError

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
# A validator's answer is JSON from outside too: a page of tracking codes is the largest.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
MAX_ANSWER_DEPTH = 32


class UpstreamUnavailable(Exception):
    """No validator answered."""


@dataclass
class Endpoint:
    url: str
    down_until: float = 0.0
    backoff_s: float = 0.5
    failures: int = 0
    calls: int = 0
    last_ok: float = 0.0  # monotonic time of the last good answer
    height: int = 0
    wrong_chain: bool = False  # serves another genesis: never used

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def failed(self, now: float) -> None:
        self.failures += 1
        self.down_until = now + self.backoff_s
        self.backoff_s = min(MAX_BACKOFF_S, self.backoff_s * 2)

    def succeeded(self, now: float) -> None:
        self.down_until = 0.0
        self.backoff_s = 0.5
        self.last_ok = now


class Upstream:
    def __init__(self, urls: tuple[str, ...], *, timeout_s: float = 5.0, genesis_hash: str | None = None) -> None:
        self.endpoints = [Endpoint(u) for u in urls]
        self.genesis_hash = genesis_hash
        self._http = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=32))
        self._ids = itertools.count(1)
        self.failovers = 0

    async def close(self) -> None:
        await self._http.aclose()

    def order(self, now: float) -> list[Endpoint]:
        """Healthy endpoints in priority order, then the rest (tried as a last resort)."""
        usable = [e for e in self.endpoints if not e.wrong_chain]
        healthy = [e for e in usable if e.healthy(now)]
        return healthy + sorted((e for e in usable if not e.healthy(now)), key=lambda e: e.down_until)

    async def call(self, method: str, *params: Any) -> Any:
        first = True
        for endpoint in self.order(time.monotonic()):
            if not first:
                self.failovers += 1
            first = False
            try:
                return await self.call_one(endpoint, method, *params)
            except UpstreamUnavailable as exc:
                log.warning("validator %s failed (%s); trying the next", endpoint.url, exc)
        raise UpstreamUnavailable(f"no validator answered {method}")

    async def call_one(self, endpoint: Endpoint, method: str, *params: Any) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        endpoint.calls += 1
        try:
            response = await self._http.post(endpoint.url, json=request)
            if response.status_code != 200:
                raise UpstreamUnavailable(f"HTTP {response.status_code}")
            body = jsonbound.loads(response.content, max_bytes=MAX_ANSWER_BYTES, max_depth=MAX_ANSWER_DEPTH,
                                   what=f"{method} answer")
            if not isinstance(body, dict):
                raise ValueError(f"{method} answer is not a JSON-RPC response")
        except (httpx.HTTPError, ValueError, LedgerError) as exc:
            endpoint.failed(time.monotonic())
            raise UpstreamUnavailable(f"{endpoint.url}: {exc!r}") from exc
        except UpstreamUnavailable:
            endpoint.failed(time.monotonic())
            raise
        endpoint.succeeded(time.monotonic())
        if "error" in body:
            err = body["error"]
            raise RpcError(str(err.get("message")), rpc_code=int(err.get("code", 0)), data=err.get("data"))
        return body["result"]

    async def probe(self) -> None:
        """Ask every validator for its status; revives endpoints that came back."""

        async def one(endpoint: Endpoint) -> None:
            try:
                status = await self.call_one(endpoint, "ballot_status")
                endpoint.height = int(status.get("height", 0))
                if self.genesis_hash is not None and status.get("genesis_hash") != self.genesis_hash:
                    if not endpoint.wrong_chain:
                        log.error("validator %s serves another genesis; not using it", endpoint.url)
                    endpoint.wrong_chain = True
            except (UpstreamUnavailable, RpcError, ValueError, TypeError, AttributeError):
                pass

        await asyncio.gather(*(one(e) for e in self.endpoints))

    def any_healthy(self, within_s: float) -> bool:
        now = time.monotonic()
        return any(e.last_ok and now - e.last_ok <= within_s and not e.wrong_chain for e in self.endpoints)
