"""Building the next block (the proposer's side of the rules)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger import merkle
from ledger.block import EMPTY_TXS_HASH, Block, BlockHeader, CommitCertificate, last_commit_hash
from ledger.genesis import Genesis
from ledger.hashing import keccak256
from ledger.state import ChainTip


def assemble_block(
    genesis: Genesis,
    tip: ChainTip,
    ballots: Sequence[bytes],
    *,
    time_ms: int,
    proposer: bytes,
    last_commit: CommitCertificate | None,
) -> Block:
    """The block that appends ``ballots`` (already admitted, in order) after ``tip``.

    ``time_ms`` is raised to one past the parent's if the clock lags, so the time rule
    holds on any clock.
    """
    frontier = tip.frontier()
    for raw in ballots:
        frontier.append(merkle.leaf_hash(keccak256(raw)))
    header = BlockHeader(
        chain_id=genesis.chain_id,
        height=tip.height + 1,
        time_ms=max(time_ms, tip.time_ms + 1),
        parent_hash=tip.block_hash,
        proposer=proposer,
        validator_set_hash=genesis.validators.hash(),
        log_size=frontier.size,
        log_root=frontier.root(),
        state_root=tip.state_root,
        txs_hash=EMPTY_TXS_HASH,
        last_commit_hash=last_commit_hash(last_commit),
    )
    return Block(header, tuple(ballots), (), last_commit)
