"""What Prometheus scrapes cost a validator, and whether they slow finality.

    python scripts/bench/scrape.py [--quick] [--rate R] [--scrapes-per-s N]

1. The CPU cost of rendering a validator's metrics (``node.metrics.NodeMetrics``,
   populated as after a busy hour: every refusal code, every RPC method), in this process.
2. A 4-validator localnet under a fixed load, in alternating phases without and with
   N scrapes a second of every validator's ``GET /metrics``: submit-to-final latency
   (p50, p99) per phase, and the scrapes' own latency. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from prometheus_client import generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine

from ballotledger.loadgen import make_ballots, run_load
from ballotledger.localnet import Localnet
from ledger import errors
from node.config import ConsensusTimeouts
from node.metrics import NodeMetrics
from node.rpc_table import INLINE


def render_cost(runs: int) -> dict[str, float]:
    metrics = NodeMetrics()
    codes = [c.code for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.LedgerError)]
    for code in codes:
        metrics.refused.labels(code).inc()
    for method in [*INLINE, "ballot_submit", "ballot_submitBatch", "ballot_getReceipt", "ballot_getBlocks"]:
        for error in (None, "invalid_params", "limit_exceeded"):
            metrics.observe_rpc(method, 0.002, error)
    for reason in ("timeout_precommit", "round_skip"):
        metrics.round_changes.labels(reason).inc()
    metrics.finality.observe_many([0.3] * 1000)
    times = []
    for _ in range(runs):
        started = time.thread_time()  # CPU time: other processes on the machine do not count
        text = generate_latest(metrics.registry)
        times.append(time.thread_time() - started)
    times.sort()
    return {"render_cpu_ms_p50": round(times[len(times) // 2] * 1000, 3),
            "render_cpu_ms_p99": round(times[int(len(times) * 0.99)] * 1000, 3), "bytes": len(text),
            "series": text.count(b"\n") - text.count(b"\n#")}


class Scraper(threading.Thread):
    """GET /metrics on one node, ``per_s`` times a second."""

    def __init__(self, url: str, per_s: float) -> None:
        super().__init__(daemon=True)
        self.url, self.per_s = url, per_s
        self.stop_flag = threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self) -> None:
        interval = 1.0 / self.per_s
        due = time.perf_counter()
        with httpx.Client(timeout=5) as client:
            while not self.stop_flag.is_set():
                started = time.perf_counter()
                try:
                    if client.get(self.url + "/metrics").status_code == 200:
                        self.latencies.append(time.perf_counter() - started)
                    else:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1
                due += interval
                time.sleep(max(0.0, due - time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=300.0, help="offered ballots/s")
    parser.add_argument("--seconds", type=float, default=None, help="one phase's duration")
    parser.add_argument("--scrapes-per-s", type=float, default=50.0, help="scrapes a second of each validator")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    pairs = 1 if args.quick else 2
    per_phase = int(args.rate * seconds)
    figures: dict[str, object] = {"benchmark": "scrape", "quick": args.quick, "machine": machine(),
                                  "offered_rate": args.rate, "phase_s": seconds, "scrapes_per_s": args.scrapes_per_s}
    figures.update(render_cost(50 if args.quick else 500))
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        directory = Path(tmp)
        timeouts = ConsensusTimeouts(propose_ms=2000, prevote_ms=1000, precommit_ms=1000, delta_ms=500,
                                     block_interval_ms=200)
        net = Localnet.create(directory, validators=4, voters=2 * pairs * per_phase, timeouts=timeouts)
        ballots = make_ballots(directory, 2 * pairs * per_phase)
        phases: list[dict[str, object]] = []
        with net:
            net.start()
            net.wait_ready(timeout=120)
            for n in range(2 * pairs):
                scraping = n % 2 == 1
                scrapers = [Scraper(url, args.scrapes_per_s) for url in net.rpc_urls] if scraping else []
                for scraper in scrapers:
                    scraper.start()
                started = time.perf_counter()
                chunk = ballots[n * per_phase : (n + 1) * per_phase]
                result = asyncio.run(run_load(net.rpc_urls, chunk, rate=args.rate)).figures()
                phase: dict[str, object] = {"scraping": scraping, "finalized": result["finalized"],
                                            "p50_final_latency_s": result["p50_final_latency_s"],
                                            "p99_final_latency_s": result["p99_final_latency_s"]}
                if scrapers:
                    for scraper in scrapers:
                        scraper.stop_flag.set()
                        scraper.join()
                    lat = sorted(x for scraper in scrapers for x in scraper.latencies)
                    elapsed = time.perf_counter() - started
                    phase.update(scrapes_per_s_per_node=round(len(lat) / len(scrapers) / elapsed, 1),
                                 scrape_failures=sum(scraper.failures for scraper in scrapers),
                                 scrape_ms_p50=round(statistics.median(lat) * 1000, 2),
                                 scrape_ms_p99=round(lat[int(len(lat) * 0.99)] * 1000, 2))
                print(f"  {phase}", file=sys.stderr)
                phases.append(phase)
        figures["phases"] = phases
    emit(figures)


if __name__ == "__main__":
    main()
