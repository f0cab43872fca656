"""Building the next block (the proposer's side of the rules)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger import merkle
from ledger.ballot import BallotEnvelope
from ledger.block import Block, BlockHeader, CommitCertificate, last_commit_hash, transactions_hash
from ledger.errors import BadTransaction
from ledger.genesis import Genesis
from ledger.hashing import keccak256
from ledger.rules import validators_at
from ledger.state import ChainTip, ContractEngine, MissingContractEngine


def assemble_block(
    genesis: Genesis,
    tip: ChainTip,
    ballots: Sequence[bytes],
    *,
    time_ms: int,
    proposer: bytes,
    last_commit: CommitCertificate | None,
    transactions: Sequence[bytes] = (),
    engine: ContractEngine | None = None,
) -> Block:
    """The block that appends ``ballots`` (already admitted, in order) after ``tip``.

    ``time_ms`` is raised to one past the parent's if the clock lags, so the time rule
    holds on any clock.
    """
    frontier = tip.frontier()
    elections: list[str] = []
    for raw in ballots:
        frontier.append(merkle.leaf_hash(keccak256(raw)))
        elections.append(BallotEnvelope.decode(raw).election_id)
    time_ms = max(time_ms, tip.time_ms + 1)
    state_root = tip.state_root
    if genesis.params.contracts:
        if engine is None:
            raise MissingContractEngine("this chain runs contracts: a contract engine is needed")
        checkpoint = engine.elections(tip.state_root).ballot_counts(elections)
        state_root = engine.execute_block(
            tip.state_root, tip.height + 1, time_ms, transactions, (frontier.size, frontier.root(), checkpoint)
        ).state_root
    elif transactions:
        raise BadTransaction("transactions are not enabled on this chain")
    header = BlockHeader(
        chain_id=genesis.chain_id,
        height=tip.height + 1,
        time_ms=time_ms,
        parent_hash=tip.block_hash,
        proposer=proposer,
        validator_set_hash=validators_at(genesis, tip.state_root, engine, tip.height + 1).hash(),
        log_size=frontier.size,
        log_root=frontier.root(),
        state_root=state_root,
        txs_hash=transactions_hash(transactions),
        last_commit_hash=last_commit_hash(last_commit),
    )
    return Block(header, tuple(ballots), tuple(transactions), last_commit)
