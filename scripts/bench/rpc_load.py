"""RPC load benchmark: finality while one unauthenticated client sends its worst load.

    python scripts/bench/rpc_load.py [--quick] [--seconds S] [--rate R] [--targets N]
                                     [--connections C] [--attacker-nice N]

Four validator processes on loopback. One client, in its own process and from its own
address (127.0.0.2), sends ``ballotledger.rpc_attack``'s requests to ``--targets`` of
them (default: all) over ``--connections`` connections each, for 30 s (20 s with
``--quick``), while ballots are offered at a steady ``--rate`` (100/s) from 127.0.0.1,
spread over every validator and followed to finality on validator 0 (attacked).
Measured: p50/p99/max submit-to-final latency, block interval, the attack's request
rate and its answers by code, and the machine's load average before and after (the
machine may be shared). The attacking process runs at ``--attacker-nice`` (default 10):
in deployment it is on a machine of its own, and on loopback every cycle it spends is
taken from the validators. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine

from ballotledger.loadgen import make_ballots, run_load
from ballotledger.localnet import Localnet
from ballotledger.rpc_attack import attack_bodies, attack_result, start_attack
from node.config import ConsensusTimeouts
from verifier.rpc_client import RpcClient

SEED_BALLOTS = 20


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rate", type=float, default=100.0, help="honest ballots/s")
    parser.add_argument("--targets", type=int, default=4, help="validators attacked")
    parser.add_argument("--connections", type=int, default=32, help="attacker connections per validator")
    parser.add_argument("--attacker-nice", type=int, default=10)
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 30.0)
    honest_n = int(args.rate * seconds)
    figures: dict[str, object] = {
        "benchmark": "rpc_load", "quick": args.quick, "machine": machine(), "validators": 4,
        "attack_seconds": seconds, "honest_rate": args.rate, "targets": args.targets,
        "connections_per_target": args.connections, "attacker_nice": args.attacker_nice,
    }
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        directory = Path(tmp)
        timeouts = ConsensusTimeouts(propose_ms=2000, prevote_ms=1000, precommit_ms=1000, delta_ms=500,
                                     block_interval_ms=200)
        net = Localnet.create(directory, validators=4, voters=honest_n + SEED_BALLOTS, timeouts=timeouts)
        print("signing ballots ...", file=sys.stderr)
        seed = make_ballots(directory, SEED_BALLOTS)
        honest = make_ballots(directory, honest_n, offset=SEED_BALLOTS)
        with net:
            net.start()
            net.wait_ready(timeout=120)
            with RpcClient(net.rpc_urls[0]) as c:
                codes = [a["tracking_code"] for a in c.call("ballot_submitBatch", [b.hex() for b in seed])]
                deadline = time.monotonic() + 30
                while c.call("ballot_getReceipt", codes[-1])["status"] != "final" and time.monotonic() < deadline:
                    time.sleep(0.1)
                status = c.call("ballot_status")
            bodies = attack_bodies(status["height"], status["log_size"], seed, codes)
            urls = net.rpc_urls[: args.targets]
            figures["load_average_before"] = load_average()
            print(f"attacking {len(urls)} validators for {seconds:g} s; {args.rate:g} ballots/s ...", file=sys.stderr)
            attacker = start_attack(urls, bodies, seconds, workdir=directory, connections=args.connections,
                                    nice=args.attacker_nice)
            load = asyncio.run(run_load(net.rpc_urls, honest, rate=args.rate, batch=max(1, int(args.rate / 10)),
                                        drain_timeout=60))
            figures["attack"] = attack_result(attacker, timeout=seconds + 120)
            figures["load_average_after"] = load_average()
            tracebacks = sum(net.log_path(i).read_text().count("Traceback") for i in range(len(net)))
    honest_figures = load.figures()
    waits = sorted(load.latencies)
    figures["honest"] = honest_figures
    figures["p50_final_latency_s"] = honest_figures["p50_final_latency_s"]
    figures["p99_final_latency_s"] = honest_figures["p99_final_latency_s"]
    figures["max_final_latency_s"] = round(waits[-1], 3) if waits else None
    figures["lost_ballots"] = load.offered - load.finalized
    figures["tracebacks_in_logs"] = tracebacks
    emit(figures)


if __name__ == "__main__":
    main()
