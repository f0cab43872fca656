"""Encrypted ballots admitted per second by a real validator, checks on its loop vs in workers.

    python scripts/bench/admission.py [--quick] [--ballots N] [--batch B] [--clients C]

One validator process (a one-validator chain whose genesis holds an encrypted election
of one five-choice contest), started once with ``admission_workers = 0`` (every check
on the consensus loop) and once with 2 (``node.admission``: the proofs in worker
processes, the rest on the loop in arrival order). ``C`` clients submit the same ``N``
encrypted ballots through ``ballot_submitBatch`` in batches of ``B``; the figure is
ballots answered "pending" per second, from the first request to the last answer
(workers warmed by a small batch first). Meanwhile a probe calls ``ballot_status``
(answered on the consensus loop) every 20 ms: its worst latency shows how long the loop
was held. Also, in this process: plaintext ballots into a mempool over LevelDB, checked
on the loop vs sent to 2 workers in batches and one at a time, the measurement behind
keeping plaintext on the loop. ``--quick``: 1,500 encrypted ballots (~1 min).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file's folder is already on the path (it is run as a script); no insert of it
# here, because a worker process re-imports this file and must keep ROOT first.
import httpx
from _common import ROOT, emit, machine

from ballotledger.election_kit import DEMO_CONTESTS, ElectionKit, make_election
from ballotledger.localnet import Localnet
from ballotledger.netsetup import init_single_validator
from ledger.chain import Chain
from node.admission import BallotAdmission
from node.config import ConsensusTimeouts
from node.mempool import Mempool
from node.precheck import BallotPrechecker

WARM = 64  # ballots submitted before timing: every worker started and warm
TIMEOUTS = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=200)


async def _rpc(http: httpx.AsyncClient, url: str, method: str, *params: Any) -> Any:
    response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


async def _submit(url: str, raws: list[bytes], batch: int, clients: int) -> dict[str, Any]:
    """All of ``raws`` through ``clients`` connections; the rate, and the status probe's latencies."""
    batches = [raws[i : i + batch] for i in range(0, len(raws), batch)]
    pending = 0
    probes: list[float] = []
    done = asyncio.Event()
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients + 1)) as http:

        async def client() -> None:
            nonlocal pending
            while batches:
                answers = await _rpc(http, url, "ballot_submitBatch", [r.hex() for r in batches.pop(0)])
                pending += sum(1 for a in answers if a.get("status") == "pending")

        async def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await _rpc(http, url, "ballot_status")
                probes.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        done.set()
        await prober
    return {
        "admitted": pending,
        "seconds": round(elapsed, 3),
        "per_s": round(pending / elapsed, 1),
        "status_ms_median": round(statistics.median(probes) * 1000, 1) if probes else None,
        "status_ms_max": round(max(probes) * 1000, 1) if probes else None,
    }


def run_validator(
    kit: ElectionKit, warm: list[bytes], raws: list[bytes], workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-admission-") as tmp:
        directory = Path(tmp)
        config = init_single_validator(directory, kit.genesis, kit.validator_keys[0], timeouts=TIMEOUTS,
                                       admission_workers=workers)
        log = (directory / "node.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "ballotledger", "node", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            net = Localnet(directory)
            net.procs[0] = proc
            net.wait_ready(timeout=60)
            url = net.rpc_urls[0]
            asyncio.run(_submit(url, warm, len(warm), 1))
            figures = asyncio.run(_submit(url, raws, args.batch, args.clients))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    if figures["admitted"] != len(raws):
        raise SystemExit(f"only {figures['admitted']} of {len(raws)} ballots admitted with {workers} workers")
    return figures


def plaintext_in_process(count: int) -> dict[str, Any]:
    """Plaintext ballots into a mempool: on the loop, or all sent to 2 workers in batches
    of 500 and one at a time. Per ballot: the rate, and the parent's CPU time."""
    kit = make_election(voters=count, seed="bench-admission-plain")
    raws = [kit.ballot(v, v % 3).encode() for v in range(count)]
    return {
        name: _plaintext_run(kit, raws, workers, batch)
        for name, workers, batch in (("loop", 0, 500), ("workers_batch_500", 2, 500), ("workers_one_at_a_time", 2, 1))
    }


def _plaintext_run(kit: ElectionKit, raws: list[bytes], workers: int, batch: int) -> dict[str, Any]:
    now = kit.genesis.genesis_time_ms + 1000
    pool = BallotPrechecker(kit.genesis, workers) if workers else None

    async def admit_all(admission: BallotAdmission) -> tuple[float, float]:
        if pool is not None:
            await pool.check_ballots(raws[:WARM], [kit.election])
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(admission.admit(raws[i : i + batch]) for i in range(0, len(raws), batch)))
        return time.perf_counter() - started, time.process_time() - cpu

    try:
        with tempfile.TemporaryDirectory() as tmp, Chain(Path(tmp) / "db", kit.genesis) as chain:
            mempool = Mempool(kit.genesis, chain.store)
            elapsed, cpu = asyncio.run(admit_all(BallotAdmission(mempool, lambda: now, pool, offload=lambda _: True)))
            assert len(mempool) == len(raws)
    finally:
        if pool is not None:
            pool.close()
    return {"per_s": round(len(raws) / elapsed), "loop_cpu_us_per_ballot": round(cpu / len(raws) * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ballots", type=int, default=0)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    count = args.ballots or (1500 if args.quick else 6000)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    kit = make_election(voters=count + WARM, seed="bench-admission", contests=DEMO_CONTESTS)
    ballots = [kit.encrypted_ballot(v, [[v % 5]])[0].encode() for v in range(count + WARM)]
    warm, raws = ballots[:WARM], ballots[WARM:]
    print(f"{count + WARM} encrypted ballots made in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    inline = run_validator(kit, warm, raws, 0, args)
    print(f"workers=0: {inline}", file=sys.stderr)
    workers = run_validator(kit, warm, raws, 2, args)
    print(f"workers=2: {workers}", file=sys.stderr)
    plain = plaintext_in_process(2000 if args.quick else 8000)
    print(f"plaintext: {plain}", file=sys.stderr)
    emit({
        "bench": "admission",
        "quick": args.quick,
        "ballots": count,
        "batch": args.batch,
        "clients": args.clients,
        "encrypted_admitted_per_s_workers_0": inline["per_s"],
        "encrypted_admitted_per_s_workers_2": workers["per_s"],
        "ratio": round(workers["per_s"] / inline["per_s"], 2),
        "status_ms_max_workers_0": inline["status_ms_max"],
        "status_ms_max_workers_2": workers["status_ms_max"],
        "status_ms_median_workers_0": inline["status_ms_median"],
        "status_ms_median_workers_2": workers["status_ms_median"],
        "plaintext": plain,
        "load_avg_1m_at_start": round(load, 2),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
