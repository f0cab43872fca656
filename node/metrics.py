"""Prometheus metrics of one validator, served at ``GET /metrics`` on its RPC port.

Two threads touch them: the consensus loop updates them, the RPC thread renders them.
Updates are cheap and never wait on a scrape for more than a lock held around a few
additions: counters and histograms are prometheus_client's (one lock a value), the
finality histogram takes a whole block's ballots under one lock (:class:`BatchHistogram`),
and the state gauges (height, round, step, peers, mempool) are read at scrape time from
single attributes, so the loop does nothing for them. A scrape renders at most once per
:data:`RENDER_EVERY_S`: a flood of scrapes costs the HTTP answers, not the rendering.

Names follow Prometheus's conventions: the ``ballotledger_`` prefix, the unit in the name,
``_total`` on counters (prometheus_client appends it), ``_seconds`` histograms. Labels
take values from small fixed sets only (ledger error codes, method names in the RPC
table, round-change reasons), never from what a client sends.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily, Metric

PREFIX = "ballotledger_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RENDER_EVERY_S = 0.5
# Proposal to commit, and a ballot's first sighting to its block's commit: sub-second
# when healthy, seconds while a round fails, tens of seconds when a quorum is lost.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
# One synced LevelDB put: tens of microseconds on a fast SSD, milliseconds on a disk.
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STEPS = "0 new_height (between a commit and the next round), 1 propose, 2 prevote, 3 precommit"


class BatchHistogram:
    """A histogram without labels that takes many observations under one lock.

    prometheus_client's ``Histogram.observe`` costs about a microsecond each, so a block
    of 4,000 ballots would hold the consensus loop for 4 ms; here the buckets are found
    before the lock is taken and added under it at once."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(buckets)
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.bounds) + 1)  # the last is +Inf
        self._sum = 0.0

    def observe_many(self, values: Iterable[float]) -> None:
        found = [0] * len(self._counts)
        total = 0.0
        for v in values:
            found[bisect.bisect_left(self.bounds, v)] += 1
            total += v
        with self._lock:
            for i, n in enumerate(found):
                self._counts[i] += n
            self._sum += total

    def snapshot(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self._counts), self._sum

    def collect(self) -> Iterator[Metric]:
        counts, total = self.snapshot()
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            running += n
            cumulative.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], cumulative, total)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)


class NodeMetrics:
    """Every metric a validator exposes, in a registry of its own (so tests can make many)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        p = PREFIX
        self.info = Gauge(p + "node_info", "Always 1; the node's name, chain and validator index as labels",
                          ["name", "chain_id", "validator_index"], registry=r)
        self.height = Gauge(p + "height", "Height of the last committed block", registry=r)
        self.round = Gauge(p + "consensus_round", "Consensus round at the current height", registry=r)
        self.step = Gauge(p + "consensus_step", "Consensus step: " + STEPS, registry=r)
        self.peers = Gauge(p + "peers_connected", "Validators connected and authenticated", registry=r)
        self.mempool = Gauge(p + "mempool_ballots", "Ballots admitted and waiting for a block", registry=r)
        self.sync_behind = Gauge(p + "sync_behind_heights",
                                 "Heights the peers announce beyond this node's last committed block", registry=r)
        self.synced = Gauge(p + "synced", "1 while the node is at its peers' height, 0 while it catches up",
                            registry=r)
        self.commit_latency = Histogram(
            p + "commit_latency_seconds", "From the first sight of the decided round's proposal to the block on disk",
            buckets=LATENCY_BUCKETS, registry=r)
        self.finality = BatchHistogram(
            p + "finality_latency_seconds", "From a ballot's first admission here to its block on disk",
            LATENCY_BUCKETS)
        r.register(self.finality)
        self.blocks = Counter(p + "blocks_committed", "Blocks committed (by consensus or block sync)", registry=r)
        self.blocks_synced = Counter(p + "sync_blocks", "Blocks committed through block sync", registry=r)
        self.finalized = Counter(p + "ballots_finalized", "Ballots committed in blocks", registry=r)
        self.refused = Counter(p + "ballots_refused", "Ballots refused at admission (RPC and gossip), by code",
                               ["code"], registry=r)
        self.round_changes = Counter(p + "round_changes", "Rounds left without a decision, by reason",
                                     ["reason"], registry=r)
        self.proposals = Counter(p + "proposals", "Compact proposals: rebuilt here from held ballots, asked for "
                                 "whole (a ballot was missing), or sent whole to a peer that asked", ["how"],
                                 registry=r)
        self.wal_fsync = Histogram(p + "wal_fsync_seconds", "One synced write of the signing log",
                                   buckets=FSYNC_BUCKETS, registry=r)
        self.rpc_requests = Counter(p + "rpc_requests", "JSON-RPC calls answered, by method", ["method"],
                                    registry=r)
        self.rpc_errors = Counter(p + "rpc_errors", "JSON-RPC calls answered with an error, by method and error",
                                  ["method", "error"], registry=r)
        self.rpc_seconds = Histogram(p + "rpc_request_seconds", "Time to answer one JSON-RPC call, by method",
                                     ["method"], buckets=RPC_BUCKETS, registry=r)
        self._rpc_children: dict[str, tuple[Counter, Histogram]] = {}
        self._rpc_error_children: dict[tuple[str, str], Counter] = {}
        self._lock = threading.Lock()
        self._rendered = b""
        self._rendered_at = float("-inf")

    def read_state(
        self, *, height: Callable[[], float], round_: Callable[[], float], step: Callable[[], float],
        peers: Callable[[], float], mempool: Callable[[], float], behind: Callable[[], float],
        synced: Callable[[], float],
    ) -> None:
        """The state gauges, read when scraped (each function reads one attribute or
        ``len`` of one dict: atomic under the GIL, so safe from the RPC thread)."""
        for gauge, fn in ((self.height, height), (self.round, round_), (self.step, step), (self.peers, peers),
                          (self.mempool, mempool), (self.sync_behind, behind), (self.synced, synced)):
            gauge.set_function(fn)

    def observe_rpc(self, method: str, seconds: float, error: str | None) -> None:
        """One JSON-RPC call answered (``node.jsonrpc.MethodTable.observe``), on the RPC's
        thread. The labelled children are kept, since ``labels()`` costs more than the
        update: a flood of refused calls pays about 2 us a call for its metrics."""
        children = self._rpc_children.get(method)
        if children is None:
            children = self._rpc_children[method] = (self.rpc_requests.labels(method),
                                                     self.rpc_seconds.labels(method))
        children[0].inc()
        children[1].observe(seconds)
        if error is not None:
            errors = self._rpc_error_children.get((method, error))
            if errors is None:
                errors = self._rpc_error_children[(method, error)] = self.rpc_errors.labels(method, error)
            errors.inc()

    def render(self) -> bytes:
        """The text format, rendered afresh at most every :data:`RENDER_EVERY_S`."""
        with self._lock:
            now = time.monotonic()
            if now - self._rendered_at >= RENDER_EVERY_S:
                self._rendered = generate_latest(self.registry)
                self._rendered_at = now
            return self._rendered
