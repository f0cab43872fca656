"""What every request of one gateway shares: configuration, genesis, keys and their rate
limits, metrics, and the outbox, upstream and forwarder the app's lifespan opens."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.genesis import Genesis
from ledger.rules import ProofCache
from node.gateway.admission import SubmissionChecker
from node.gateway.config import ApiKey, GatewayConfig, hash_key
from node.gateway.directory import ElectionDirectory
from node.gateway.forwarder import Forwarder
from node.gateway.metrics import Metrics
from node.gateway.outbox import Outbox
from node.gateway.problems import Problem
from node.gateway.public_limits import PublicLimiter
from node.gateway.ratelimit import TokenBucket, retry_after_header
from node.gateway.upstream import Upstream


@dataclass
class GatewayState:
    config: GatewayConfig
    genesis: Genesis
    keys: dict[bytes, ApiKey]
    metrics: Metrics
    clock_ms: Callable[[], int]
    proofs: ProofCache = field(default_factory=ProofCache)
    checker: SubmissionChecker | None = None  # built with the state (see __post_init__)
    buckets: dict[bytes, TokenBucket] = field(default_factory=dict)
    outbox: Outbox | None = None
    upstream: Upstream | None = None
    forwarder: Forwarder | None = None
    results: tuple[float, dict[str, Any]] | None = None
    recent_blocks: tuple[float, dict[str, Any]] | None = None
    chain_view: bytes | None = None  # GET /v1/chain, rendered once
    directory: ElectionDirectory = field(init=False)
    public: PublicLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.directory = ElectionDirectory(self.genesis)
        self.public = PublicLimiter(self.config.public_read_rate_per_s, self.config.public_read_burst)
        if self.checker is None:
            self.checker = SubmissionChecker(self.genesis, self.clock_ms, self.proofs, self.config.admission_workers)

    def submissions(self) -> SubmissionChecker:
        assert self.checker is not None  # set by __post_init__
        return self.checker

    def open_outbox(self) -> Outbox:
        if self.outbox is None or not self.outbox.is_open:
            raise Problem("unavailable", "the outbox is not open")
        return self.outbox

    def authorize(self, authorization: str | None) -> ApiKey:
        """The front end an ``Authorization`` header names, charged one request."""
        challenge = {"WWW-Authenticate": "Bearer"}
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem("unauthorized", "send Authorization: Bearer <API key>", headers=challenge)
        key_hash = hash_key(token.strip())
        key = self.keys.get(key_hash)
        if key is None:
            raise Problem("unauthorized", "unknown API key", headers=challenge)
        now = time.monotonic()
        bucket = self.buckets.get(key_hash)
        if bucket is None:
            bucket = self.buckets[key_hash] = TokenBucket.full(key.rate_per_s, key.burst, now)
        wait = bucket.take(now)
        if wait > 0:
            self.metrics.rate_limited.labels(key.name).inc()
            raise Problem("rate_limited", f"front end {key.name!r} is over {key.rate_per_s:g} requests/s",
                          headers={"Retry-After": retry_after_header(wait)})
        return key

    def authorize_public(self, address: str) -> None:
        """Charge one keyless read to a client address."""
        wait = self.public.take(address, time.monotonic())
        if wait > 0:
            self.metrics.rate_limited.labels("(keyless)").inc()
            raise Problem("rate_limited", f"reads without an API key are limited to "
                                          f"{self.public.rate_per_s:g}/s per client address",
                          headers={"Retry-After": retry_after_header(wait)})

    def rpc(self) -> Upstream:
        if self.upstream is None:
            raise Problem("unavailable", "no validators configured")
        return self.upstream
