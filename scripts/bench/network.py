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
import os
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
from ledger.blockfiles import segment_name, segment_numbers
from node.config import ConsensusTimeouts
from verifier.rpc_client import RpcClient


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


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU the validator processes have used so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, over all cores."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t)
    return total - idle, total


def store_mib(db: Path) -> dict[str, float]:
    """A chain store's size on disk: its LevelDB (index, log nodes) and its block files."""
    segments = {segment_name(n) for n in segment_numbers(db)}
    sizes = {p.name: p.stat().st_size for p in db.iterdir() if p.is_file()}
    blocks = sum(size for name, size in sizes.items() if name in segments)
    rest = sum(sizes.values()) - blocks
    return {"leveldb_mib": round(rest / 2**20, 1), "block_files_mib": round(blocks / 2**20, 1)}


def _height(url: str) -> int:
    with RpcClient(url, timeout=5) as c:
        return int(c.call("ballot_status")["height"])


def _log_size(url: str) -> int:
    with RpcClient(url, timeout=5) as c:
        return int(c.call("ballot_status")["log_size"])


async def catch_up(net: Localnet, ballots: list[bytes], rate: float, down_s: float) -> dict[str, float]:
    """Kill the last validator, keep offering load, restart it after ``down_s`` and time
    how fast it closes the gap while the chain keeps growing.

    Growth is the chain's rate over the outage; catch-up runs from the moment the
    restarted node serves again (process start, store and key loading excluded, and
    reported apart) until it has every block the others have."""
    lagger = len(net) - 1
    urls = net.rpc_urls[:lagger]
    load = asyncio.create_task(run_load(urls, ballots, rate=rate, drain_timeout=60))
    await asyncio.sleep(1.0)
    killed_at, log_at_kill = time.perf_counter(), _log_size(net.rpc_urls[0])
    net.kill(lagger)
    await asyncio.sleep(down_s)
    restart = time.perf_counter()
    log_at_restart = _log_size(net.rpc_urls[0])
    growth = (log_at_restart - log_at_kill) / (restart - killed_at)
    net.start(lagger)
    await asyncio.to_thread(net.wait_ready, 60, [lagger])
    ready = time.perf_counter()
    own_log = _log_size(net.rpc_urls[lagger])
    while True:
        lead, own = _height(net.rpc_urls[0]), _height(net.rpc_urls[lagger])
        if own >= lead:
            break
        await asyncio.sleep(0.05)
    done = time.perf_counter()
    lead_log = _log_size(net.rpc_urls[0])
    await load
    sync_rate = (lead_log - own_log) / (done - ready)
    return {
        "down_s": down_s,
        "restart_to_serving_s": round(ready - restart, 2),
        "catch_up_s": round(done - ready, 2),
        "ballots_synced": lead_log - own_log,
        "ballots_synced_per_s": round(sync_rate, 1),
        "chain_growth_ballots_per_s": round(growth, 1),
        "catch_up_speed_ratio": round(sync_rate / max(growth, 1e-9), 1),
        "catch_up_speed_ratio_incl_restart": round((lead_log - own_log) / (done - restart) / max(growth, 1e-9), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2000.0, help="phase 1 offered ballots/s")
    parser.add_argument("--seconds", type=float, default=None, help="phase 1 duration")
    parser.add_argument("--max-ballots", type=int, default=None, help="phase 2 ballots")
    parser.add_argument("--catchup-rate", type=float, default=700.0, help="phase 3 offered ballots/s")
    parser.add_argument("--down-seconds", type=float, default=None, help="phase 3: how long a validator is down")
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 300.0)
    fixed_n = int(args.rate * seconds)
    max_n = args.max_ballots or (20_000 if args.quick else 60_000)
    down_s = args.down_seconds or (15.0 if args.quick else 60.0)
    catch_n = int(args.catchup_rate * down_s * 2.5)
    figures: dict[str, object] = {"benchmark": "network", "quick": args.quick, "machine": machine(),
                                  "validators": args.validators, "offered_rate": args.rate,
                                  "fixed_phase_s": seconds}
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        directory = Path(tmp)
        total = fixed_n + max_n + catch_n
        print(f"init: {args.validators} validators, {total} voters ...", file=sys.stderr)
        timeouts = ConsensusTimeouts(propose_ms=2000, prevote_ms=1000, precommit_ms=1000, delta_ms=500,
                                     block_interval_ms=200)
        net = Localnet.create(directory, validators=args.validators, voters=total, timeouts=timeouts)
        print("signing ballots ...", file=sys.stderr)
        ballots = make_ballots(directory, total)
        with net:
            net.start()
            net.wait_ready(timeout=120)
            sampler = RssSampler([p.pid for p in net.procs.values()])
            sampler.start()
            print(f"phase 1: {fixed_n} ballots at {args.rate}/s ...", file=sys.stderr)
            pids = [p.pid for p in net.procs.values()]
            cpu_before, own_before, busy_before = cpu_seconds(pids), cpu_seconds([os.getpid()]), machine_busy()
            fixed = asyncio.run(run_load(net.rpc_urls, ballots[:fixed_n], rate=args.rate))
            f1 = fixed.figures()
            busy_after = machine_busy()
            # How near the machine ran to its limit: above ~90% busy, any pause (a
            # compaction, a collection) leaves a backlog the rate cannot work off quickly.
            f1["machine_cpu_busy_share"] = round(
                (busy_after[0] - busy_before[0]) / max(1e-9, busy_after[1] - busy_before[1]), 3)
            f1["load_generator_cpu_ms_per_ballot"] = round(
                (cpu_seconds([os.getpid()]) - own_before) * 1000 / max(1, fixed.finalized), 3)
            # The validators' whole CPU per ballot (every validator checks every ballot):
            # the cost that decides how close to the machine's limit a rate runs.
            f1["validators_cpu_ms_per_ballot"] = round(
                (cpu_seconds(pids) - cpu_before) * 1000 / max(1, fixed.finalized), 3)
            f1["node0_store"] = store_mib(net.configs[0].parent / "data" / "db")
            print(f"  {f1}", file=sys.stderr)
            print(f"phase 2: {max_n} ballots as fast as taken ...", file=sys.stderr)
            fastest = asyncio.run(run_load(net.rpc_urls, ballots[fixed_n : fixed_n + max_n], rate=None))
            f2 = fastest.figures()
            print(f"  {f2}", file=sys.stderr)
            print(f"phase 3: a validator down {down_s:.0f} s under {args.catchup_rate}/s, then catching up ...",
                  file=sys.stderr)
            catch = asyncio.run(catch_up(net, ballots[fixed_n + max_n :], args.catchup_rate, down_s))
            print(f"  {catch}", file=sys.stderr)
            figures["catch_up"] = catch
            figures["catch_up_speed_ratio"] = catch["catch_up_speed_ratio"]
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
