"""Network benchmark: 4 validator processes on this machine, ballots offered over RPC.

    python scripts/bench/network.py [--quick] [--rate R] [--seconds S] [--validators N]

Phase 1 offers ballots at a fixed rate, phase 2 as fast as the validators take them.
Measured: finalized ballots/s, p50/p99 submit-to-final latency (as an observer following
blocks sees it, to within 50 ms), block interval, peak RSS per validator. The load
generator runs on the same two cores as the validators. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _common import emit, machine

from ballotledger.loadgen import make_ballots, run_load
from ballotledger.localnet import Localnet
from node.config import ConsensusTimeouts


class RssSampler(threading.Thread):
    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.procs = [psutil.Process(p) for p in pids]
        self.peak = [0] * len(pids)
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.5):
            for i, p in enumerate(self.procs):
                with contextlib.suppress(psutil.Error):
                    self.peak[i] = max(self.peak[i], p.memory_info().rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2000.0, help="phase 1 offered ballots/s")
    parser.add_argument("--seconds", type=float, default=None, help="phase 1 duration")
    parser.add_argument("--max-ballots", type=int, default=None, help="phase 2 ballots")
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 300.0)
    fixed_n = int(args.rate * seconds)
    max_n = args.max_ballots or (20_000 if args.quick else 60_000)
    figures: dict[str, object] = {"benchmark": "network", "quick": args.quick, "machine": machine(),
                                  "validators": args.validators, "offered_rate": args.rate,
                                  "fixed_phase_s": seconds}
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        directory = Path(tmp)
        print(f"init: {args.validators} validators, {fixed_n + max_n} voters ...", file=sys.stderr)
        timeouts = ConsensusTimeouts(propose_ms=2000, prevote_ms=1000, precommit_ms=1000, delta_ms=500,
                                     block_interval_ms=200)
        net = Localnet.create(directory, validators=args.validators, voters=fixed_n + max_n, timeouts=timeouts)
        print("signing ballots ...", file=sys.stderr)
        ballots = make_ballots(directory, fixed_n + max_n)
        with net:
            net.start()
            net.wait_ready(timeout=120)
            sampler = RssSampler([p.pid for p in net.procs.values()])
            sampler.start()
            print(f"phase 1: {fixed_n} ballots at {args.rate}/s ...", file=sys.stderr)
            fixed = asyncio.run(run_load(net.rpc_urls, ballots[:fixed_n], rate=args.rate))
            f1 = fixed.figures()
            print(f"  {f1}", file=sys.stderr)
            print(f"phase 2: {max_n} ballots as fast as taken ...", file=sys.stderr)
            fastest = asyncio.run(run_load(net.rpc_urls, ballots[fixed_n:], rate=None))
            f2 = fastest.figures()
            print(f"  {f2}", file=sys.stderr)
            sampler.stop_flag.set()
            time.sleep(0.6)
            figures["fixed_rate"] = f1
            figures["max_rate"] = f2
            figures["finalized_ballots_per_s"] = f1["finalized_ballots_per_s"]
            figures["p50_final_latency_s"] = f1["p50_final_latency_s"]
            figures["p99_final_latency_s"] = f1["p99_final_latency_s"]
            figures["max_finalized_ballots_per_s"] = f2["finalized_ballots_per_s"]
            figures["block_interval_ms_median"] = f1["block_interval_ms_median"]
            figures["peak_rss_mib_per_node"] = [round(b / 2**20, 1) for b in sampler.peak]
            figures["lost_ballots"] = (fixed.accepted - fixed.finalized) + (fastest.accepted - fastest.finalized)
    emit(figures)


if __name__ == "__main__":
    main()
