"""Ledger benchmark: log appends, synced block commits, proofs at 1M and 10M leaves.

    python scripts/bench/ledger.py [--quick]

Last line: one JSON object with append_leaves_per_s, inclusion_proofs_per_s (at the
largest size), block_commit_ms_median (store write of a 1,000-ballot block, synced) and
more. --quick uses 1M leaves for the proof test instead of 10M.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, peak_rss_mib

from ballotledger.election_kit import make_election
from ledger import merkle
from ledger.assemble import assemble_block
from ledger.block import CommitCertificate
from ledger.chain import Chain
from ledger.elections import Elections
from ledger.genesis import ChainParams
from ledger.rules import BlockEffects, check_ballot
from ledger.state import ChainTip


def bench_append(n: int) -> float:
    leaves = [i.to_bytes(32, "big") for i in range(n)]
    frontier = merkle.MerkleFrontier()
    started = time.perf_counter()
    for leaf in leaves:
        frontier.append(merkle.leaf_hash(leaf))
    frontier.root()
    return n / (time.perf_counter() - started)


def bench_block_commits(workdir: Path, blocks: int) -> dict[str, float]:
    """Real 1,000-ballot blocks: the rules' check (with and without the admission cache)
    and the synced store write, timed apart."""
    voters = 1000 * blocks
    kit = make_election(voters=voters, seed="bench-ledger", params=ChainParams(max_block_ballots=1000))
    g = kit.genesis
    key = kit.validator_keys[0]
    print(f"  signing {voters} ballots ...", file=sys.stderr)
    ballots = [kit.ballot(i, i % 3).encode() for i in range(voters)]
    chain = Chain(workdir / "commits", g)
    write_ms: list[float] = []
    check_cached_ms: list[float] = []
    check_full_ms: list[float] = []
    known = Elections.of_genesis(g)
    last: CommitCertificate | None = None
    for b in range(blocks):
        body = ballots[b * 1000 : (b + 1) * 1000]
        tip = chain.store.tip
        block = assemble_block(g, tip, body, time_ms=tip.time_ms + 1000, proposer=key.public_key, last_commit=last)
        cert = CommitCertificate.create([(0, key)], chain_id=g.chain_id, height=block.height, round_=0,
                                        block_hash=block.hash())
        t0 = time.perf_counter()
        chain.check(block)
        t1 = time.perf_counter()
        admitted = {x: check_ballot(g, x, elections=known) for x in body}
        t2 = time.perf_counter()
        effects = chain.check(block, admitted=admitted)
        t3 = time.perf_counter()
        chain.store.commit(block, cert, effects)
        t4 = time.perf_counter()
        check_full_ms.append((t1 - t0) * 1000)
        check_cached_ms.append((t3 - t2) * 1000)
        write_ms.append((t4 - t3) * 1000)
        last = cert
    chain.close()
    return {
        "block_commit_ms_median": round(statistics.median(write_ms), 2),
        "block_commit_ms_p99": round(sorted(write_ms)[int(len(write_ms) * 0.99)], 2),
        "block_check_cached_ms_median": round(statistics.median(check_cached_ms), 2),
        "block_check_full_ms_median": round(statistics.median(check_full_ms), 2),
        "block_ballots": 1000,
        "blocks_committed": blocks,
    }


def build_log(workdir: Path, size: int) -> Chain:
    """A store whose log holds ``size`` synthetic leaves, written as the store writes
    them (complete-subtree nodes in synced batches) but without ballots around them."""
    kit = make_election(voters=1, seed="bench-log")
    chain = Chain(workdir / f"log-{size}", kit.genesis)
    frontier = merkle.MerkleFrontier()
    batch = 200_000
    tip = chain.store.tip
    for height, start in enumerate(range(0, size, batch), start=1):
        nodes = []
        for i in range(start, min(size, start + batch)):
            nodes.extend(frontier.append(merkle.leaf_hash(i.to_bytes(32, "big"))))
        block = assemble_block(kit.genesis, tip, [], time_ms=tip.time_ms + 1, proposer=kit.validator_keys[0].public_key,
                               last_commit=None)
        tip = ChainTip(tip.chain_id, height, block.hash(), tip.time_ms + 1, tip.state_root, frontier.to_bytes())
        cert = CommitCertificate.create([(0, kit.validator_keys[0])], chain_id=kit.genesis.chain_id,
                                        height=height, round_=0, block_hash=block.hash())
        chain.store.commit(block, cert, BlockEffects(tip, (), start, tuple(nodes), ()))
    return chain


def bench_proofs(chain: Chain, size: int, count: int) -> dict[str, float]:
    store = chain.store
    root = store.tip.frontier().root()
    rng = random.Random(1)
    # First a cold pass (right after the log was written), then a steady-state pass
    # with the block cache warm, as on a node that serves receipts all day.
    rates = []
    for _ in range(2):
        indexes = [rng.randrange(size) for _ in range(count)]
        started = time.perf_counter()
        for index in indexes:
            proof = store.inclusion_proof(index, size)
            merkle.verify_inclusion(index.to_bytes(32, "big"), index, size, proof, root)
        rates.append(count / (time.perf_counter() - started))
    cold, inclusion = rates
    started = time.perf_counter()
    for index in indexes[: count // 4]:
        old = max(1, index)
        proof = store.consistency_proof(old, size)
        merkle.verify_consistency(old, size, store.log_root(old), root, proof)
    consistency = (count // 4) / (time.perf_counter() - started)
    return {"inclusion": inclusion, "inclusion_cold": cold, "consistency": consistency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    figures: dict[str, object] = {"benchmark": "ledger", "quick": args.quick, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        work = Path(tmp)
        print("append ...", file=sys.stderr)
        figures["append_leaves_per_s"] = round(bench_append(300_000 if args.quick else 2_000_000))
        print("block commits ...", file=sys.stderr)
        figures.update(bench_block_commits(work, 10 if args.quick else 40))
        for size in sizes:
            print(f"building a {size}-leaf log ...", file=sys.stderr)
            started = time.perf_counter()
            chain = build_log(work, size)
            figures[f"log_build_s_{size}"] = round(time.perf_counter() - started, 1)
            rates = bench_proofs(chain, size, 20_000 if args.quick else 50_000)
            figures[f"inclusion_proofs_per_s_{size}"] = round(rates["inclusion"])
            figures[f"inclusion_proofs_cold_per_s_{size}"] = round(rates["inclusion_cold"])
            figures[f"consistency_proofs_per_s_{size}"] = round(rates["consistency"])
            chain.close()
        figures["inclusion_proofs_per_s"] = figures[f"inclusion_proofs_per_s_{sizes[-1]}"]
        figures["proof_log_size"] = sizes[-1]
    figures["peak_rss_mib"] = peak_rss_mib()
    emit(figures)


if __name__ == "__main__":
    main()
