"""What a running validator tells its operator: the metrics (``node.metrics``) and the
event lines of its log (``node.logs``), fed by the driver at the few points where things
happen (a proposal seen, a block committed, a round left, ballots admitted, block sync).

Runs on the consensus loop; every hook is a few dictionary operations. Refusals are
logged in aggregate, one line every ``refusal_interval_s`` with the counts by code, so a
flood of bad ballots costs counters, not disk. Synced blocks are not logged one by one:
a catch-up is a ``sync_started`` and a ``sync_finished`` line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from ledger.errors import LedgerError
from ledger.rules import CheckedBallot
from node.consensus.core import RoundChange
from node.logs import event
from node.mempool import Admission
from node.metrics import NodeMetrics

log = logging.getLogger("node.events")

MAX_PROPOSALS_TRACKED = 64  # (height, round) first sightings kept for the commit latency
HASH_PREFIX_BYTES = 8
# A catch-up this many heights behind or more is logged at INFO; a block or so, which a
# validator a moment behind its peers fetches in the ordinary course, at DEBUG.
SYNC_LOG_MIN_BEHIND = 2


class NodeReporter:
    def __init__(
        self,
        metrics: NodeMetrics,
        *,
        refusal_interval_s: float = 10.0,
        max_tracked_ballots: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.refusal_interval_s = refusal_interval_s
        self.max_tracked_ballots = max_tracked_ballots
        self.clock = clock
        self._proposals: dict[tuple[int, int], float] = {}
        self._first_seen: dict[bytes, float] = {}  # tracking code: first admitted here
        self._refusals: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None
        self.peer_height = 0  # the highest height a peer's consensus message was for
        self.syncing = False
        self._sync_from = 0
        self._sync_started = 0.0
        self._sync_level = logging.DEBUG

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self.refusal_interval_s, self._tick, loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.log_refusals()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.log_refusals()
        self._timer = loop.call_later(self.refusal_interval_s, self._tick, loop)

    # --- consensus ----------------------------------------------------------------------
    def proposal_seen(self, height: int, round_: int) -> None:
        """A proposal for (height, round) arrived or was sent: the commit latency's start."""
        key = (height, round_)
        if key not in self._proposals and len(self._proposals) < MAX_PROPOSALS_TRACKED:
            self._proposals[key] = self.clock()

    def round_changed(self, change: RoundChange) -> None:
        self.metrics.round_changes.labels(change.reason).inc()
        log.info("height %d: round %d after %s (%s)", change.height, change.round, change.reason,
                 ", ".join(change.events) or "no timeout of its own",
                 extra=event("round_change", height=change.height, round=change.round, reason=change.reason,
                             events=list(change.events)))

    def committed(self, height: int, round_: int, block_hash: bytes, ballots: Sequence[CheckedBallot], *,
                  synced: bool) -> None:
        """A block is on disk (decided by consensus, or fetched by block sync)."""
        now = self.clock()
        m = self.metrics
        m.blocks.inc()
        m.finalized.inc(len(ballots))
        seen = self._first_seen
        if seen:
            m.finality.observe_many([now - t for t in (seen.pop(b.tracking_code, None) for b in ballots)
                                     if t is not None])
        started = self._proposals.pop((height, round_), None)
        if self._proposals:  # the next heights' only: a far one (a faulty peer's) would never go
            self._proposals = {k: t for k, t in self._proposals.items() if height < k[0] <= height + 2}
        if synced:
            m.blocks_synced.inc()
            return
        latency_ms = None
        if started is not None:
            m.commit_latency.observe(now - started)
            latency_ms = round((now - started) * 1000)
        if self.syncing:
            self._finish_sync(height)  # deciding by consensus again: caught up
        log.info("committed height %d round %d: %d ballots, block %s, %s ms", height, round_, len(ballots),
                 block_hash[:HASH_PREFIX_BYTES].hex(), "?" if latency_ms is None else latency_ms,
                 extra=event("block_committed", height=height, round=round_, ballots=len(ballots),
                             block_hash=block_hash[:HASH_PREFIX_BYTES].hex(), latency_ms=latency_ms))

    # --- admission ----------------------------------------------------------------------
    def admitted(self, answers: Sequence[Admission | LedgerError]) -> None:
        """A batch's answers (``node.admission.BallotAdmission.on_answers``)."""
        refused: Counter[str] = Counter()
        now = self.clock()
        seen = self._first_seen
        for a in answers:
            if isinstance(a, LedgerError):
                refused[a.code] += 1
            elif a.status == "pending" and a.tracking_code not in seen:
                seen[a.tracking_code] = now
        while len(seen) > self.max_tracked_ballots:  # left behind by ballots that never made a block
            del seen[next(iter(seen))]
        for code, n in refused.items():
            self.metrics.refused.labels(code).inc(n)
        self._refusals.update(refused)

    def log_refusals(self) -> None:
        """One line with the refusals since the last one, if there were any."""
        if not self._refusals:
            return
        counts, self._refusals = dict(sorted(self._refusals.items())), Counter()
        total = sum(counts.values())
        log.info("refused %d ballots in the last %g s: %s", total, self.refusal_interval_s,
                 ", ".join(f"{code} {n}" for code, n in counts.items()),
                 extra=event("ballots_refused", total=total, by_code=counts, interval_s=self.refusal_interval_s))

    # --- block sync ---------------------------------------------------------------------
    def peer_ahead(self, height: int) -> None:
        """A peer's consensus message was for ``height``, above ours."""
        self.peer_height = max(self.peer_height, height)

    def behind(self, committed: int) -> int:
        """Heights the peers announce beyond ``committed`` (ours)."""
        return max(0, self.peer_height - 1 - committed)

    def sync_received(self, applied: int, ask_more: bool, height: int) -> None:
        """A sync response took our chain to ``height`` with ``applied`` more blocks; the
        peer may hold more if ``ask_more``."""
        if applied and not self.syncing:
            self.syncing = True
            self._sync_from = height - applied
            self._sync_started = self.clock()
            far = max(applied, self.behind(self._sync_from)) >= SYNC_LOG_MIN_BEHIND
            self._sync_level = logging.INFO if far else logging.DEBUG
            log.log(self._sync_level, "block sync from height %d (peers at %d)", self._sync_from + 1,
                    max(self.peer_height - 1, height),
                    extra=event("sync_started", from_height=self._sync_from + 1,
                                peer_height=max(self.peer_height - 1, height)))
        if not ask_more:
            self.peer_height = min(self.peer_height, height + 1)  # the peer had no more
            if self.syncing:
                self._finish_sync(height)

    def _finish_sync(self, height: int) -> None:
        self.syncing = False
        seconds = round(self.clock() - self._sync_started, 3)
        log.log(self._sync_level, "block sync done at height %d: %d blocks in %.3f s", height,
                height - self._sync_from, seconds,
                extra=event("sync_finished", height=height, blocks=height - self._sync_from, seconds=seconds))
