"""Idle-chain benchmark: 4 validator processes with nothing to do, then lone ballots.

    python scripts/bench/idle.py [--quick] [--minutes M] [--checkpoint-s S] [--ballots N]

Phase 1 leaves the network idle for M minutes (no ballot, no transaction) and exports
the bundle before and after (``verifier.export``, appending): its growth over the window,
extrapolated to an hour, is what a quiet chain costs an observer. Phase 2 submits lone
ballots, each to the next validator in turn, once the previous is final and a pause has
passed, and times submit-to-final as the submitting validator reports it (polled every
10 ms). ``--quick`` (about a minute) runs a 10 s checkpoint interval so the window sees
several checkpoint blocks, and extrapolates to the 60 s default from the size of an idle
block and the measured interval beyond the configured one. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from ledger.block import Block
from node.config import ConsensusTimeouts
from verifier.export import export_bundle
from verifier.rpc_client import RpcClient

DEFAULT_CHECKPOINT_S = 60
POLL_S = 0.01


def bundle_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def height(url: str) -> int:
    with RpcClient(url, timeout=5) as c:
        return int(c.call("ballot_status")["height"])


def block_times_ms(url: str, start: int, end: int) -> list[int]:
    """Header times of blocks ``start`` to ``end``."""
    times: list[int] = []
    with RpcClient(url, timeout=10) as c:
        while start + len(times) <= end:
            page = c.call("ballot_getBlocks", start + len(times), end - start - len(times) + 1)
            times += [Block.decode(bytes.fromhex(e["block"])).header.time_ms for e in page["blocks"]]
    return times


def lone_ballot(url: str, raw: bytes, timeout: float = 30.0) -> float:
    """Seconds from submitting ``raw`` to ``url`` until that validator reports it final."""
    with RpcClient(url, timeout=5) as c:
        started = time.perf_counter()
        code = c.call("ballot_submit", raw.hex())["tracking_code"]
        while c.call("ballot_getReceipt", code)["status"] != "final":
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"ballot {code} not final after {timeout} s")
            time.sleep(POLL_S)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--minutes", type=float, default=None, help="idle window")
    parser.add_argument("--checkpoint-s", type=int, default=None, help="checkpoint_interval_s of the run")
    parser.add_argument("--ballots", type=int, default=None, help="lone ballots in phase 2")
    args = parser.parse_args()
    minutes = args.minutes or (0.6 if args.quick else 5.0)
    checkpoint = args.checkpoint_s or (10 if args.quick else DEFAULT_CHECKPOINT_S)
    count = args.ballots or (12 if args.quick else 20)
    rng = random.Random(14)
    figures: dict[str, object] = {"benchmark": "idle", "quick": args.quick, "machine": machine(),
                                  "validators": 4, "checkpoint_interval_s": checkpoint,
                                  "idle_minutes": minutes, "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        directory = Path(tmp)
        timeouts = ConsensusTimeouts(checkpoint_interval_s=checkpoint)  # the defaults otherwise
        net = Localnet.create(directory / "net", validators=4, voters=count, timeouts=timeouts)
        ballots = make_ballots(directory / "net", count)
        bundle = directory / "bundle"
        with net:
            net.start()
            net.wait_ready(timeout=120)
            url = net.rpc_urls[0]
            print(f"phase 1: idle for {minutes} min, checkpoint every {checkpoint} s ...", file=sys.stderr)
            h0 = export_bundle(url, bundle)
            size0, t0 = bundle_bytes(bundle), time.perf_counter()
            time.sleep(minutes * 60)
            h1 = export_bundle(url, bundle)
            size1, window = bundle_bytes(bundle), time.perf_counter() - t0
            blocks = h1 - h0
            per_block = (size1 - size0) / blocks if blocks else None
            # The spacing of the idle blocks themselves (block h0 included when it is one).
            times = block_times_ms(url, max(h0, 1), h1) if h1 else []
            gaps = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
            interval = statistics.mean(gaps) if gaps else None
            figures.update({
                "idle_window_s": round(window, 1), "idle_blocks": blocks,
                "idle_bundle_growth_bytes": size1 - size0,
                "idle_bundle_kb_per_hour_at_run_interval": round((size1 - size0) / window * 3600 / 1000, 1),
                "bytes_per_idle_block": round(per_block) if per_block else None,
                "idle_block_interval_s": round(interval, 2) if interval else None,
            })
            if per_block is not None and interval is not None:
                # What the default interval costs: one idle block per (60 s + what this run's
                # blocks took beyond their own interval), at the measured size.
                extra = max(interval - checkpoint, 0.0)
                figures["idle_bundle_kb_per_hour_at_60s"] = round(
                    per_block * 3600 / (DEFAULT_CHECKPOINT_S + extra) / 1000, 1)
            print(f"  {blocks} blocks, {size1 - size0} bytes in {window:.1f} s", file=sys.stderr)
            print(f"phase 2: {count} lone ballots ...", file=sys.stderr)
            latencies = []
            for i, raw in enumerate(ballots):
                time.sleep(rng.uniform(0.5, 1.5))
                latencies.append(lone_ballot(net.rpc_urls[i % 4], raw))
            latencies.sort()
            figures.update({
                "lone_ballots": count,
                "lone_final_p50_s": round(statistics.median(latencies), 3),
                "lone_final_max_s": round(latencies[-1], 3),
                "lone_final_s": [round(x, 3) for x in latencies],
                "heights_after": height(url),
            })
    figures["load_average_end"] = os.getloadavg()
    emit(figures)


if __name__ == "__main__":
    main()
