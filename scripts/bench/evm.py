"""EVM benchmark: what the per-block checkpoint costs, and the ledger's ballot path
against the naive design where every ballot is its own contract transaction.

    python scripts/bench/evm.py [--quick]

Ledger path (what ballot-ledger does), per 1,000-ballot block: ledger.rules.check_ballot
for every ballot (signature, credential proof), its window against the registry's state
(one open-elections read per block), the log append; then the block's checkpoint call on
py-evm (state in LevelDB). ``ledger_ballots_per_s`` is over all of it. The same blocks
then go through the whole chain (Chain.check, i.e. apply_block uncached with the store's
duplicate lookups, + checkpoint + synced store commit): ``ledger_chain_ballots_per_s``.

Naive path (the baseline): each ballot is a signed EIP-1559 transaction calling
NaiveBallotBox.cast_ballot(ballot), which stores the ballot's hash; blocks of 250 such
transactions (about what the 30M block gas limit allows) are executed by py-evm on the
same kind of state database. It checks neither signatures nor credentials of ballots, so
the comparison favours it.

Last line: one JSON object with checkpoint_ms_per_block (median EVM time a 1,000-ballot
block spends on the checkpoint: execute_block with no transactions, after the ballots'
open-elections read), ledger_ballots_per_s, naive_ballots_per_s, ledger_to_naive_ratio,
ledger_to_naive_ratio_same_checks (as if the naive path also ran check_ballot) and more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, peak_rss_mib

from ballotledger.election_kit import make_election
from contracts import Contract, load_artifact
from ledger import merkle
from ledger.assemble import assemble_block
from ledger.block import CommitCertificate
from ledger.chain import Chain
from ledger.genesis import ChainParams
from ledger.hashing import ZERO_HASH
from ledger.rules import ProofCache, check_ballot
from node.evm import CheckpointInput, EvmExecutor, LevelStateDB, sign_transaction

# CPU time of this process: the box these run on is shared, and wall time then measures
# the neighbours as much as the code (set BENCH_CLOCK=wall for wall-clock figures).
CLOCK = time.perf_counter if os.environ.get("BENCH_CLOCK") == "wall" else time.process_time
LEDGER_BLOCK = 1000
NAIVE_BLOCK = 250


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def bench_checkpoint_only(work: Path, blocks: int) -> dict[str, float]:
    """Empty blocks: the EVM cost a block pays for checkpointing alone."""
    kit = make_election(voters=1, seed="bench-evm-cp")
    g = kit.genesis
    db = LevelStateDB.open(str(work / "cp-state"))
    ex = EvmExecutor(g, db)
    root = ex.genesis_state_root()
    times: list[float] = []
    for h in range(1, blocks + 1):
        t_ms = g.genesis_time_ms + 1000 * h
        started = CLOCK()
        ex.elections(root)
        root = ex.execute_block(root, h, t_ms, [], CheckpointInput(h, ZERO_HASH, ((kit.election_id, 1),))).state_root
        times.append((CLOCK() - started) * 1000)
    db.close()
    return {
        "checkpoint_only_ms_median": round(statistics.median(times), 3),
        "checkpoint_only_ms_p99": round(_pct(times, 0.99), 3),
    }


class LedgerPath:
    """check_ballot for each ballot, its window against the registry, the log append;
    then the block's checkpoint call on py-evm (state in LevelDB)."""

    def __init__(self, work: Path, ballots_total: int) -> None:
        self.kit = make_election(voters=ballots_total, seed="bench-evm-ledger",
                                 params=ChainParams(max_block_ballots=LEDGER_BLOCK))
        self.g = self.kit.genesis
        print(f"  signing {ballots_total} ballots ...", file=sys.stderr)
        self.ballots = [self.kit.ballot(i, i % 3).encode() for i in range(ballots_total)]
        self.db = LevelStateDB.open(str(work / "ledger-state"))  # unsynced: the store's synced batch follows
        self.ex = EvmExecutor(self.g, self.db)
        self.root = self.ex.genesis_state_root()
        self.proofs = ProofCache()
        self.frontier = merkle.MerkleFrontier()
        self.time_ms = self.g.genesis_time_ms
        self.height = 0
        self.ballot_ms: list[float] = []
        self.evm_ms: list[float] = []

    def block(self) -> None:
        g, ex = self.g, self.ex
        body = self.ballots[self.height * LEDGER_BLOCK:(self.height + 1) * LEDGER_BLOCK]
        self.height += 1
        self.time_ms += 1000
        t_open = CLOCK()
        elections = ex.elections(self.root)
        t0 = CLOCK()
        ids = []
        for raw in body:
            checked = check_ballot(g, raw, elections=elections, proofs=self.proofs)
            if not elections.is_open(checked.election, self.time_ms):
                raise SystemExit("a benchmark ballot's election is not open")
            self.frontier.append(merkle.leaf_hash(checked.tracking_code))
            ids.append(checked.election.election_id)
        t1 = CLOCK()
        cp = CheckpointInput.of_block(elections, self.frontier.size, self.frontier.root(), ids)
        self.root = ex.execute_block(self.root, self.height, self.time_ms, [], cp).state_root
        t2 = CLOCK()
        self.ballot_ms.append((t1 - t0) * 1000)
        self.evm_ms.append((t2 - t1 + t0 - t_open) * 1000)

    def figures(self) -> dict[str, float]:
        self.db.close()
        n = self.height * LEDGER_BLOCK
        path_s = (sum(self.ballot_ms) + sum(self.evm_ms)) / 1000
        return {
            "ledger_ballots_per_s": round(n / path_s),
            "ledger_ballots_per_s_without_evm": round(n / (sum(self.ballot_ms) / 1000)),
            "ledger_ballot_check_us": round(1000 * statistics.median(self.ballot_ms) / LEDGER_BLOCK, 1),
            "checkpoint_ms_per_block": round(statistics.median(self.evm_ms), 3),
            "checkpoint_ms_per_block_p90": round(_pct(self.evm_ms, 0.9), 3),
            "ledger_blocks": self.height,
            "ledger_block_ballots": LEDGER_BLOCK,
        }


class NaivePath:
    """Each ballot a signed transaction calling NaiveBallotBox.cast_ballot(ballot)."""

    def __init__(self, work: Path, ballots_total: int) -> None:
        kit = make_election(voters=ballots_total, seed="bench-evm-naive")
        self.g = kit.genesis
        print(f"  signing {ballots_total} ballots and their transactions ...", file=sys.stderr)
        ballots = [kit.ballot(i, i % 3).encode() for i in range(ballots_total)]
        self.db = LevelStateDB.open(str(work / "naive-state"))
        self.ex = ex = EvmExecutor(self.g, self.db)
        root = ex.genesis_state_root()
        deploy = sign_transaction(kit.authority_key, chain_id=ex.chain_id, nonce=0, to=None,
                                  data=load_artifact("NaiveBallotBox").bytecode, gas=3_000_000)
        result = ex.execute_block(root, 1, self.g.genesis_time_ms + 1000, [deploy], CheckpointInput(0, ZERO_HASH, ()))
        box = result.outcomes[0].contract_address
        assert box is not None
        self.root = result.state_root
        cast = Contract(load_artifact("NaiveBallotBox")).fn("cast_ballot")
        self.txs = [sign_transaction(kit.authority_key, chain_id=ex.chain_id, nonce=1 + i, to=box,
                                     data=cast.encode(raw), gas=120_000) for i, raw in enumerate(ballots)]
        self.height = 1
        self.block_ms: list[float] = []
        self.gas = 0

    def block(self) -> None:
        start = (self.height - 1) * NAIVE_BLOCK
        body = self.txs[start:start + NAIVE_BLOCK]
        self.height += 1
        h = self.height
        started = CLOCK()
        result = self.ex.execute_block(self.root, h, self.g.genesis_time_ms + 1000 * h, body,
                                       CheckpointInput(0, ZERO_HASH, ()))
        self.block_ms.append((CLOCK() - started) * 1000)
        if not all(o.success for o in result.outcomes):
            raise SystemExit("a naive ballot transaction failed")
        self.gas += result.gas_used
        self.root = result.state_root

    def figures(self) -> dict[str, float]:
        self.db.close()
        n = len(self.block_ms) * NAIVE_BLOCK
        return {
            "naive_ballots_per_s": round(n / (sum(self.block_ms) / 1000)),
            "naive_block_ms_median": round(statistics.median(self.block_ms), 1),
            "naive_block_ballots": NAIVE_BLOCK,
            "naive_gas_per_ballot": round(self.gas / n),
        }


def bench_chain(work: Path, ballots_total: int) -> dict[str, float]:
    """The ledger path inside the whole chain: Chain.check (apply_block uncached, with the
    store's duplicate lookups) + checkpoint + the synced store commit, per block."""
    blocks = ballots_total // LEDGER_BLOCK
    kit = make_election(voters=ballots_total, seed="bench-evm-chain",
                        params=ChainParams(max_block_ballots=LEDGER_BLOCK))
    g, key = kit.genesis, kit.validator_keys[0]
    ballots = [kit.ballot(i, i % 3).encode() for i in range(ballots_total)]
    chain = Chain(work / "ledger-store", g)
    db = LevelStateDB.open(str(work / "chain-state"))
    ex = EvmExecutor(g, db)
    root = ex.genesis_state_root()
    chain_ms: list[float] = []
    last: CommitCertificate | None = None
    for b in range(blocks):
        body = ballots[b * LEDGER_BLOCK:(b + 1) * LEDGER_BLOCK]
        tip = chain.store.tip
        block = assemble_block(g, tip, body, time_ms=tip.time_ms + 1000, proposer=key.public_key, last_commit=last)
        cert = CommitCertificate.create([(0, key)], chain_id=g.chain_id, height=block.height, round_=0,
                                        block_hash=block.hash())
        t0 = CLOCK()
        h = block.header
        elections = ex.elections(root)
        effects = chain.check(block)
        if any(not elections.is_open(c.election, h.time_ms) for c in effects.ballots):
            raise SystemExit("a benchmark ballot's election is not open")
        cp = CheckpointInput.of_block(elections, h.log_size, h.log_root,
                                      (c.election.election_id for c in effects.ballots))
        root = ex.execute_block(root, h.height, h.time_ms, block.transactions, cp).state_root
        chain.store.commit(block, cert, effects)
        chain_ms.append((CLOCK() - t0) * 1000)
        last = cert
    chain.close()
    db.close()
    return {
        "ledger_chain_ballots_per_s": round(ballots_total / (sum(chain_ms) / 1000)),
        "ledger_chain_block_ms_median": round(statistics.median(chain_ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {"benchmark": "evm", "quick": args.quick, "machine": machine(),
                                  "clock": "wall" if CLOCK is time.perf_counter else "process_cpu"}
    with tempfile.TemporaryDirectory(prefix="bench-evm-") as tmp:
        work = Path(tmp)
        print("checkpoint-only blocks ...", file=sys.stderr)
        figures.update(bench_checkpoint_only(work, 1000 if args.quick else 3000))
        rounds = 20 if args.quick else 60
        print("preparing the ledger and naive paths ...", file=sys.stderr)
        ledger_path = LedgerPath(work, rounds * LEDGER_BLOCK)
        naive_path = NaivePath(work, rounds * NAIVE_BLOCK)
        print(f"{rounds} rounds of one ledger block and one naive block, interleaved ...", file=sys.stderr)
        for _ in range(rounds):  # interleaved, so both see the same machine load
            ledger_path.block()
            naive_path.block()
        figures.update(ledger_path.figures())
        figures.update(naive_path.figures())
        print("the ledger path inside the chain ...", file=sys.stderr)
        figures.update(bench_chain(work, (5 if args.quick else 20) * LEDGER_BLOCK))
    ledger, naive = figures["ledger_ballots_per_s"], figures["naive_ballots_per_s"]
    assert isinstance(ledger, int) and isinstance(naive, int)
    figures["ledger_to_naive_ratio"] = round(ledger / naive, 1)
    # The naive figure checks no ballot; had it run the ledger's check_ballot as well:
    check_us = figures["ledger_ballot_check_us"]
    assert isinstance(check_us, float)
    naive_checked = 1 / (1 / naive + check_us / 1e6)
    figures["naive_with_ballot_check_per_s"] = round(naive_checked)
    figures["ledger_to_naive_ratio_same_checks"] = round(ledger / naive_checked, 1)
    figures["target_checkpoint_ms_max"] = 5
    figures["target_ratio_min"] = 20
    cp = figures["checkpoint_ms_per_block"]
    assert isinstance(cp, float)
    figures["targets_met"] = cp <= 5 and ledger / naive >= 20
    figures["peak_rss_mib"] = peak_rss_mib()
    emit(figures)


if __name__ == "__main__":
    main()
