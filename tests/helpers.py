"""Shared builders for tests: small elections and chains of real blocks."""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import plyvel

from ballotledger.election_kit import ElectionKit, make_election
from ledger.assemble import assemble_block
from ledger.block import Block, BlockHeader, CommitCertificate, last_commit_hash, transactions_hash
from ledger.blockfiles import BlockLocation, segment_name
from ledger.genesis import Genesis
from ledger.hashing import keccak256
from ledger.merkle import MerkleFrontier
from ledger.rules import BlockEffects
from ledger.state import ChainTip
from ledger.tally import Tally
from node.config import ConsensusTimeouts

if TYPE_CHECKING:
    from typer.testing import Result

    from ledger.chain import Chain

ROOT = Path(__file__).resolve().parent.parent
# Short consensus timeouts for small localnets on loopback; a quiet chain with a checkpoint
# block every second, so a test that follows heads sees some without sending work.
QUICK_TIMEOUTS = ConsensusTimeouts(propose_ms=800, prevote_ms=300, precommit_ms=300, delta_ms=200,
                                   block_interval_ms=100, checkpoint_interval_s=1)


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition", *,
               interval: float = 0.1) -> None:
    """Poll ``predicate`` until it holds, or fail the test saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m ballotledger ARGS`` from the repository root, output captured."""
    return subprocess.run([sys.executable, "-m", "ballotledger", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@lru_cache(maxsize=8)
def kit(validators: int = 1, voters: int = 24, revoting: str = "first-counts") -> ElectionKit:
    return make_election(validators=validators, voters=voters, seed=f"tests-{validators}-{voters}",
                         revoting=revoting)


def certify(k: ElectionKit, block: Block, round_: int = 0, signers: int | None = None) -> CommitCertificate:
    n = len(k.validator_keys) if signers is None else signers
    return CommitCertificate.create(
        list(enumerate(k.validator_keys))[:n], chain_id=k.genesis.chain_id, height=block.height,
        round_=round_, block_hash=block.hash(),
    )


def next_block(
    k: ElectionKit, tip: ChainTip, ballots: list[bytes], last: CommitCertificate | None, dt: int = 1000
) -> Block:
    return assemble_block(k.genesis, tip, ballots, time_ms=tip.time_ms + dt,
                          proposer=k.validator_keys[0].public_key, last_commit=last)


def commit_blocks(k: ElectionKit, chain: Chain, blocks: int, per_block: int, first_voter: int = 0) -> list[bytes]:
    """Commit ``blocks`` certified blocks of ``per_block`` plaintext ballots each on the
    chain's tip, voters counted on from ``first_voter``; the ballots' tracking codes."""
    last = chain.store.certificate(chain.store.height) if chain.store.height else None
    codes: list[bytes] = []
    voter = first_voter
    for _ in range(blocks):
        ballots = [k.ballot(voter + i, i % 3).encode() for i in range(per_block)]
        voter += per_block
        block = next_block(k, chain.store.tip, ballots, last)
        last = certify(k, block)
        chain.commit(block, last)
        codes.extend(keccak256(b) for b in ballots)
    return codes


def value_depth(value: object) -> int:
    """How deeply a parsed JSON or TOML value nests lists and mappings (0 for a scalar):
    the reference the bracket scans are held to, written without them."""
    if isinstance(value, list):
        return 1 + max((value_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((value_depth(v) for v in value.values()), default=0)
    return 0


def write_bundle(out: Path, genesis: Genesis, blocks: Sequence[tuple[Block, CommitCertificate]], tally: Tally) -> Path:
    """A complete bundle of ``blocks`` (as ``ballotledger export`` writes one), with the
    results ``tally`` counted."""
    from verifier.bundle import BLOCKS_FILE, BUNDLE_README, GENESIS_FILE, block_line, write_contract_artifacts
    from verifier.verify import results_text

    out.mkdir()
    (out / GENESIS_FILE).write_text(genesis.to_json())
    (out / BLOCKS_FILE).write_text("".join(block_line(b.encode(), c.encode()) for b, c in blocks))
    tally.height = len(blocks)
    (out / "results.json").write_text(results_text(tally.to_json_obj()))
    write_contract_artifacts(out, genesis)
    (out / "README").write_text(BUNDLE_README)
    return out


def run_with_passphrase(passphrase: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """A ``ballotledger`` command in this process, its key file's passphrase in the environment."""
    from typer.testing import CliRunner

    from ballotledger.cli import app

    return CliRunner().invoke(app, list(args), env={"BALLOTLEDGER_PASSPHRASE": passphrase, **(env or {})})


def one_line_refusal(result: Result) -> str:
    """The one line a command refused with (exit 2, on stderr, no traceback)."""
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def unchecked_block(genesis: Genesis, tip: ChainTip, transactions: tuple[bytes, ...]) -> tuple[
        Block, CommitCertificate, BlockEffects]:
    """The next block after ``tip`` with these bytes as its transactions, no ballots and
    no signatures, with the effects the store writes: for tests of the store alone,
    which knows nothing of the rules."""
    header = BlockHeader(
        chain_id=genesis.chain_id, height=tip.height + 1, time_ms=tip.time_ms + 1, parent_hash=tip.block_hash,
        proposer=genesis.validators.validators[0].public_key, validator_set_hash=genesis.validators.hash(),
        log_size=0, log_root=MerkleFrontier().root(), state_root=tip.state_root,
        txs_hash=transactions_hash(transactions), last_commit_hash=last_commit_hash(None))
    block = Block(header, (), transactions, None)
    certificate = CommitCertificate(genesis.chain_id, header.height, 0, block.hash(), ())
    tip = ChainTip(genesis.chain_id, header.height, block.hash(), header.time_ms, tip.state_root, tip.log_frontier)
    return block, certificate, BlockEffects(tip, (), 0, (), ())


def repeating_transactions(height: int) -> tuple[bytes, ...]:
    """Stand-in transactions for block ``height``: none, one or two of its own, and in
    every fifth block one that repeats (an index finds it at its latest place)."""
    own = tuple(b"tx %d.%d" % (height, i) for i in range(height % 3))
    return own + ((b"repeated",) if height % 5 == 0 else ())


def _block_location(db: plyvel.DB, height: int) -> BlockLocation:
    return BlockLocation.decode(db.get(b"f" + height.to_bytes(8, "big")), f"block {height}")  # ledger.store's layout


def stored_block(store_dir: Path, height: int) -> bytes:
    """Block ``height`` of a closed chain store, read past the store (no checks)."""
    db = plyvel.DB(str(store_dir))
    try:
        location = _block_location(db, height)
    finally:
        db.close()
    with (store_dir / segment_name(location.segment)).open("rb") as f:
        f.seek(location.offset)
        return f.read(location.length)


def forge_stored_block(store_dir: Path, height: int, change: Callable[[bytes], bytes]) -> None:
    """Change block ``height`` of a closed chain store as a forger would: in its block
    file, the same length, with its location's CRC made to match, so that no checksum
    finds it and only the chain's own checks can."""
    db = plyvel.DB(str(store_dir))
    try:
        location = _block_location(db, height)
        path = store_dir / segment_name(location.segment)
        data = bytearray(path.read_bytes())
        changed = change(bytes(data[location.offset:location.end]))
        assert len(changed) == location.length, "a forged block keeps its length"
        data[location.offset:location.end] = changed
        path.write_bytes(bytes(data))
        forged = BlockLocation(location.segment, location.offset, location.length, zlib.crc32(changed))
        db.put(b"f" + height.to_bytes(8, "big"), forged.encode())
    finally:
        db.close()
