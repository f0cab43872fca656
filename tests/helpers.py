"""Shared builders for tests: small elections and chains of real blocks."""

from __future__ import annotations

from functools import lru_cache

from ballotledger.election_kit import ElectionKit, make_election
from ledger.assemble import assemble_block
from ledger.block import Block, CommitCertificate
from ledger.state import ChainTip


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
