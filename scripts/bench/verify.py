"""Verifier benchmark: replay rate per core and on all cores, peak memory, and in the same
run the raw secp256k1 verify rate of the signature library on one core (the physical
limit of a replay that checks every signature), and the rate of a loop making only the
library calls the rules require per ballot (the ceiling for a replay in this language).

    python scripts/bench/verify.py [--quick] [--ballots N] [--bundle DIR] [--encrypted]

--quick: a 100,000-ballot bundle. Full: 10,000,000 ballots (generation takes a while;
pass --bundle DIR to keep and reuse it). --encrypted: ballots of the encrypted scheme
(one contest of five choices; 4,000 with --quick, 100,000 without), whose proofs cost
about fifty times a signature: the figures then are the replay's rates on one core and
on all, and their ratio; the time the one-process replay spent summing the counted
ballots at its end (``sum_at_end_of_replay_*``); and that summation over 100,000 counted
ballots (1,000,000 without --quick) in one process and on all cores (``sums_*``).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Not ahead of the repository once it is there: a spawned worker re-runs this module, and
# this folder's ledger.py must not shadow the ledger package there.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import coincurve
from _common import ROOT, emit, machine
from coincurve._libsecp256k1 import ffi, lib
from coincurve.ecdsa import cdata_to_der, deserialize_compact

from ballotledger.bundlegen import generate_bundle
from ballotledger.election_kit import DEMO_CONTESTS, make_election
from ledger import merkle
from ledger.ballot import BALLOT_TAG, BallotEnvelope
from ledger.block import Block
from ledger.hashing import keccak_new
from ledger.tally import Tally
from verifier.bundle import iter_block_lines, read_genesis
from verifier.index import DiskIndex
from verifier.index import _counted_key as counted_key
from verifier.sums import encrypted_sums


def raw_verify_rate(bundle: Path, sample: int = 20_000) -> float:
    """coincurve's own verify call (DER signature, compressed key) on real ballots."""
    items = []
    for line in iter_block_lines(bundle):
        for raw in Block.decode(line.block).ballots:
            env = BallotEnvelope.decode(raw)
            items.append((env.credential, cdata_to_der(deserialize_compact(env.signature)), env.digest()))
            if len(items) >= sample:
                break
        if len(items) >= sample:
            break
    started = time.perf_counter()
    for pub, der, digest in items:
        if not coincurve.PublicKey(pub).verify(der, digest, hasher=None):
            raise SystemExit("a bundle signature failed the raw check")
    return len(items) / (time.perf_counter() - started)


def unavoidable_work_rate(bundle: Path, sample: int = 20_000) -> float:
    """Ballots/s of a loop making only the library calls any replay of these rules must
    make per ballot, with their inputs prepared beforehand: the signature check
    (signature and key parsing, verify) and the keccak256 hashes the rules require (the
    tracking code, the signed digest, the credential's leaf and the proof levels below
    the cached ones, the log leaf, one frontier node). No decoding, no index, no tally:
    the ceiling for a replay written in this language around these libraries."""
    genesis = read_genesis(bundle)
    election = genesis.elections[0]
    cut = merkle.VerifiedPaths(election.credential_count, election.credential_root).cut
    items = []
    for line in iter_block_lines(bundle):
        for raw in Block.decode(line.block).ballots:
            env = BallotEnvelope.decode(raw)
            digest_input = BALLOT_TAG + b"x" * (len(env.chain_id) + len(env.election_id) + 40)
            items.append((raw, digest_input, b"\x00" + env.credential, [b"\x01" + bytes(64)] * cut,
                          env.credential, env.signature, env.digest()))
            if len(items) >= sample:
                break
        if len(items) >= sample:
            break
    k = keccak_new
    sig, point = ffi.new("secp256k1_ecdsa_signature *"), ffi.new("secp256k1_pubkey *")
    ctx = coincurve.GLOBAL_CONTEXT.ctx
    node = b"\x01" + bytes(64)
    started = time.perf_counter()
    for raw, digest_input, leaf, levels, pub, signature, digest in items:
        k(raw).digest()
        k(digest_input).digest()
        k(leaf).digest()
        for level in levels:
            k(level).digest()
        k(node).digest()  # log leaf
        k(node).digest()  # frontier, amortised
        lib.secp256k1_ecdsa_signature_parse_compact(ctx, sig, signature)
        lib.secp256k1_ec_pubkey_parse(ctx, point, pub, 33)
        if not lib.secp256k1_ecdsa_verify(ctx, sig, digest, point):
            raise SystemExit("a bundle signature failed the raw check")
    return len(items) / (time.perf_counter() - started)


def timed_verify(bundle: Path, jobs: int) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ballotledger", "verify", str(bundle), "--json", "--jobs", str(jobs)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    elapsed = time.perf_counter() - started
    report = json.loads(proc.stdout)
    if proc.returncode != 0 or not report["valid"]:
        raise SystemExit(f"verification failed: {report.get('failure')}")
    return elapsed, report


def sums_at_scale(ballots: int, jobs: int) -> dict[str, object]:
    """The end-of-replay summation (``verifier.sums.encrypted_sums``, the replay's own
    call) over ``ballots`` counted ballots of one 5-choice contest, in one process and
    with ``jobs`` worker processes. The index is filled directly with copies of 8 real
    payloads (under distinct credentials): making and replaying a million encrypted
    ballots would take hours, and the sums read only the counted payloads. One process:
    its CPU time (and wall); all cores: wall time (the load average beside it) and the
    CPU time of this process and the workers together."""
    kit = make_election(voters=8, seed="bench-sums", contests=DEMO_CONTESTS)
    payloads = [kit.encrypted_ballot(v, [[v % 5]])[0].payload for v in range(8)]
    figures: dict[str, object] = {"sums_ballots": ballots}
    with tempfile.TemporaryDirectory(prefix="bench-sums-") as tmp, DiskIndex(kit.genesis, Path(tmp)) as index:
        with index._db.write_batch() as wb:  # filled directly (see above), in the index's own layout
            for i in range(ballots):
                wb.put(counted_key(kit.election_id, i.to_bytes(33, "big")), bytes(32) + payloads[i % 8])
        tally = Tally(kit.genesis, index.payloads)
        tally.elections[kit.election_id].ballots_counted = ballots
        figures["sums_load_before"] = os.getloadavg()[0]
        started, cpu = time.perf_counter(), time.process_time()
        one = encrypted_sums(kit.genesis.chain_id, tally, index)
        one_s, one_cpu = time.perf_counter() - started, time.process_time() - cpu
        children = _children_cpu()
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(int, range(jobs)))  # started before the clock, as the replay's pool is
            started, cpu = time.perf_counter(), time.process_time()
            many = encrypted_sums(kit.genesis.chain_id, tally, index, pool, jobs)
            many_s, many_cpu = time.perf_counter() - started, time.process_time() - cpu
        many_cpu += _children_cpu() - children  # the workers', reaped with the pool
        figures["sums_load_after"] = os.getloadavg()[0]
    if one != many or one[kit.election_id].ballots != ballots:
        raise SystemExit("the sums in worker processes differ from those in one")
    figures.update({
        "sums_ballots_per_s_one_process": round(ballots / one_cpu),
        "sums_ballots_per_s_one_process_wall": round(ballots / one_s),
        "sums_ballots_per_s_all_cores": round(ballots / many_s),
        "sums_cpu_s_all_cores": round(many_cpu, 1),
        "sums_1m_s_all_cores": round(1_000_000 / ballots * many_s, 1),
    })
    return figures


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def encrypted_figures(bundle: Path, args: argparse.Namespace) -> dict[str, object]:
    """The replay of an encrypted bundle on one core and on all of them, the sums at its
    end, and the sums over many more counted ballots."""
    print("replay, one process ...", file=sys.stderr)
    one_s, report = timed_verify(bundle, 1)
    print(f"replay, {args.jobs} processes ...", file=sys.stderr)
    all_s, _ = timed_verify(bundle, args.jobs)
    n = int(report["ballots"])  # type: ignore[call-overload]
    sums_n = 100_000 if args.quick else 1_000_000
    print(f"sums over {sums_n} counted ballots ...", file=sys.stderr)
    sums = sums_at_scale(sums_n, args.jobs)
    sum_s = float(report["encrypted_sums_seconds"])  # type: ignore[arg-type]
    return {
        "benchmark": "verify",
        "scheme": "elgamal-secp256k1/v1",
        "quick": args.quick,
        "machine": machine(),
        "ballots": n,
        "blocks": report["blocks"],
        "bundle_bytes": (bundle / "blocks.jsonl").stat().st_size,
        "ballots_per_s_per_core": round(n / one_s, 1),
        "ballots_per_s_all_cores": round(n / all_s, 1),
        "jobs": args.jobs,
        "all_cores_over_one": round(one_s / all_s, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "sum_at_end_of_replay_s": round(sum_s, 3),
        "sum_at_end_of_replay_ballots_per_s": round(n / sum_s) if sum_s else None,
        **sums,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ballots", type=int, default=None)
    parser.add_argument("--bundle", type=Path, default=None, help="generate here, or reuse if present")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--encrypted", action="store_true", help="ballots of the encrypted scheme")
    args = parser.parse_args()
    if args.encrypted:
        ballots = args.ballots or (4_000 if args.quick else 100_000)
    else:
        ballots = args.ballots or (100_000 if args.quick else 10_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        bundle = args.bundle or Path(tmp) / "bundle"
        if not (bundle / "blocks.jsonl").exists():
            print(f"generating a {ballots}-ballot bundle in {bundle} ...", file=sys.stderr)
            t = time.perf_counter()
            generate_bundle(bundle, ballots, encrypted=args.encrypted, block_ballots=1000 if args.encrypted else 4000)
            print(f"  {time.perf_counter() - t:.0f} s", file=sys.stderr)
        if args.encrypted:
            emit(encrypted_figures(bundle, args))
            return
        print("raw signature verify rate ...", file=sys.stderr)
        raw = raw_verify_rate(bundle)
        floor = unavoidable_work_rate(bundle)
        print("replay, one process ...", file=sys.stderr)
        one_s, report = timed_verify(bundle, 1)
        peak_one = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"replay, {args.jobs} processes ...", file=sys.stderr)
        all_s, _ = timed_verify(bundle, args.jobs)
        peak_all = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        n = int(report["ballots"])  # type: ignore[call-overload]
        per_core = n / one_s
        emit({
            "benchmark": "verify",
            "quick": args.quick,
            "machine": machine(),
            "ballots": n,
            "blocks": report["blocks"],
            "bundle_bytes": (bundle / "blocks.jsonl").stat().st_size,
            "ballots_per_s_per_core": round(per_core),
            "ballots_per_s_all_cores": round(n / all_s),
            "jobs": args.jobs,
            "sig_verifies_per_s_per_core": round(raw),
            "replay_to_raw_verify_ratio": round(per_core / raw, 3),
            "unavoidable_calls_ballots_per_s": round(floor),
            "unavoidable_calls_to_raw_verify_ratio": round(floor / raw, 3),
            "peak_rss_mib": round(max(peak_one, peak_all), 1),
            "peak_rss_mib_one_process": round(peak_one, 1),
        })


if __name__ == "__main__":
    main()
