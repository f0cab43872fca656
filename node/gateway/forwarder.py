"""Drains the outbox to the validators and watches the chain for finality.

Choice: an outbox entry is kept until its ballot is *final* (in a committed block), not
merely "pending" in one node's mempool: a node killed before gossiping or proposing
would otherwise lose it. Entries a node acknowledged are re-sent after
``resubmit_after_s`` if still not final; the chain is idempotent by tracking code, so
a re-send answers pending/final and never makes a second ballot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ledger.errors import LedgerError
from ledger.hashing import HASH_SIZE
from node.gateway.metrics import Metrics
from node.gateway.outbox import Outbox
from node.gateway.upstream import Upstream, UpstreamUnavailable
from verifier.rpc_client import RpcError

log = logging.getLogger(__name__)

# Refusals that say "later", not "never": the ballot stays queued.
TRANSIENT_CODES = frozenset({"mempool_full", "rpc_unavailable", "invalid_params", "internal_error"})
BLOCKS_PAGE = 50


Settled = tuple[list[bytes], list[bytes], dict[bytes, tuple[str, str]]]


def classify(answers: list[dict[str, Any]], codes: list[bytes]) -> Settled:
    """Pure: a ``ballot_submitBatch`` answer split into (pending, final, rejected)."""
    pending: list[bytes] = []
    final: list[bytes] = []
    rejected: dict[bytes, tuple[str, str]] = {}
    for code, answer in zip(codes, answers, strict=True):
        error = answer.get("error")
        if error is not None:
            err_code = str(error.get("code", "ledger_error"))
            if err_code not in TRANSIENT_CODES:
                rejected[code] = (err_code, str(error.get("message", "")))
        elif answer.get("status") == "final":
            final.append(code)
        elif answer.get("status") == "pending":
            pending.append(code)
    return pending, final, rejected


class Forwarder:
    def __init__(
        self,
        outbox: Outbox,
        upstream: Upstream,
        metrics: Metrics,
        *,
        batch: int = 1000,
        interval_s: float = 0.02,
        resubmit_after_s: float = 10.0,
    ) -> None:
        self.outbox = outbox
        self.upstream = upstream
        self.metrics = metrics
        self.batch = batch
        self.interval_s = interval_s
        self.resubmit_after_s = resubmit_after_s
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._guard(self.submit_loop), name="forwarder-submit"),
            loop.create_task(self._guard(self.watch_loop), name="forwarder-watch"),
            loop.create_task(self._guard(self.probe_loop), name="forwarder-probe"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _guard(self, body: Any) -> None:
        """Keep a loop alive through anything a node could send us."""
        while True:
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # logged; the loop restarts after a pause
                log.exception("%s failed; restarting", body.__name__)
                await asyncio.sleep(1.0)

    async def submit_once(self) -> int:
        """Send one batch; returns how many ballots it carried."""
        items = self.outbox.unsent(self.batch, time.monotonic() - self.resubmit_after_s)
        if not items:
            return 0
        codes = [code for code, _ in items]
        try:
            answers = await self.upstream.call("ballot_submitBatch", [q.raw.hex() for _, q in items])
        except (UpstreamUnavailable, RpcError) as exc:  # RpcError: the whole batch refused; try later
            log.warning("ballot_submitBatch failed: %s", exc)
            self.outbox.retry_later(codes)
            self.metrics.forward_failures.inc()
            await asyncio.sleep(0.5)
            return 0
        if not isinstance(answers, list) or len(answers) != len(codes):
            log.warning("ballot_submitBatch answered %r for %d ballots", type(answers), len(codes))
            self.outbox.retry_later(codes)
            await asyncio.sleep(0.5)
            return 0
        pending, final, rejected = classify(answers, codes)
        settled = set(pending) | set(final) | set(rejected)
        self.outbox.retry_later(c for c in codes if c not in settled)  # transient refusals
        self.outbox.mark_sent(pending)
        self.outbox.settle(dict.fromkeys(final, 0), rejected)
        if len(settled) < len(codes):
            await asyncio.sleep(0.2)  # a validator said "later" (mempool full): don't spin
        self.metrics.forwarded.labels("pending").inc(len(pending))
        self.metrics.forwarded.labels("final").inc(len(final))
        self.metrics.forwarded.labels("rejected").inc(len(rejected))
        for err, _ in rejected.values():
            self.metrics.chain_refused.labels(err).inc()
        return len(items)

    async def submit_loop(self) -> None:
        while True:
            sent = await self.submit_once()
            if sent < self.batch:
                await asyncio.sleep(self.interval_s)

    async def watch_once(self) -> int:
        """Scan the next page of committed blocks; settle our ballots found in them."""
        height = self.outbox.next_height()
        if height is None:
            # First start: nothing of ours can be in older blocks (re-sends cover any gap).
            status = await self.upstream.call("ballot_status")
            height = int(status["height"]) + 1
            self.outbox.set_next_height(height)
        page = await self.upstream.call("ballot_getTrackingCodes", height, BLOCKS_PAGE)
        blocks = page.get("blocks", [])
        final: dict[bytes, int] = {}
        queue = self.outbox.queue
        for offset, entry in enumerate(blocks):
            if entry["height"] != height + offset:
                raise ValueError(f"asked for block {height + offset}, got {entry['height']}")
            codes = bytes.fromhex(entry["codes"])
            for i in range(0, len(codes), HASH_SIZE):
                code = codes[i : i + HASH_SIZE]
                if code in queue:
                    final[code] = height + offset
        self.outbox.settle(final, {})
        self.metrics.finalized.inc(len(final))
        if blocks:
            self.outbox.set_next_height(height + len(blocks))
        return len(blocks)

    async def watch_loop(self) -> None:
        while True:
            try:
                got = await self.watch_once()
            except (UpstreamUnavailable, RpcError, LedgerError, KeyError, ValueError) as exc:
                log.debug("watch: %r", exc)
                got = 0
            if got < BLOCKS_PAGE:
                await asyncio.sleep(0.1)

    async def probe_loop(self) -> None:
        while True:
            await self.upstream.probe()
            await asyncio.sleep(1.0)
