"""Prometheus metrics of one gateway process (own registry, so tests can make many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("gateway_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "gateway_request_seconds", "Time to answer a request", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.accepted = Counter("gateway_ballots_accepted", "Ballots newly made durable (202)", registry=r)
        self.repeated = Counter("gateway_ballots_repeated", "Repeats of an accepted ballot (202, same answer)",
                                registry=r)
        self.refused = Counter("gateway_ballots_refused", "Ballots refused at the gateway", ["code"], registry=r)
        self.rate_limited = Counter("gateway_rate_limited", "Requests refused by a rate limit", ["frontend"],
                                    registry=r)
        self.commit_size = Histogram("gateway_outbox_commit_ballots", "Ballots per synced outbox batch",
                                     buckets=BATCH_BUCKETS, registry=r)
        self.outbox_depth = Gauge("gateway_outbox_depth", "Ballots durable but not yet final", registry=r)
        self.forwarded = Counter("gateway_forwarded", "Ballots sent to validators, by answer", ["answer"], registry=r)
        self.forward_failures = Counter("gateway_forward_failures", "Forwarding attempts no validator took",
                                        registry=r)
        self.chain_refused = Counter("gateway_chain_refused", "Ballots a validator refused after a 202", ["code"],
                                     registry=r)
        self.finalized = Counter("gateway_ballots_final", "Ballots seen final in a committed block", registry=r)
        self.validator_up = Gauge("gateway_validator_up", "1 if the validator answered lately", ["url"], registry=r)
        self.failovers = Gauge("gateway_upstream_failovers", "Calls that moved on to another validator", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
