"""Replay: every block from genesis through the ledger rules, and the tally.

The same ``ledger.rules.apply_block`` the validators run; the only difference is where
the chain-so-far lives (an index built as the replay goes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger.block import Block, CommitCertificate
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.rules import BlockEffects, ProofCache, apply_block
from ledger.state import ChainTip
from ledger.tally import Tally
from verifier.bundle import BundleLine


class MemoryView:
    """The chain-so-far as in-memory indexes (tracking codes and counted credentials)."""

    def __init__(self) -> None:
        self.codes: set[bytes] = set()
        self.counted: dict[tuple[str, bytes], bytes] = {}

    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        return self.counted.get((election_id, credential))

    def has_ballot(self, tracking_code: bytes) -> bool:
        return tracking_code in self.codes

    def apply(self, effects: BlockEffects) -> None:
        for checked in effects.ballots:
            self.codes.add(checked.tracking_code)
        for election_id, credential, code in effects.counted:
            self.counted[(election_id, credential)] = code


@dataclass
class ReplayResult:
    genesis_hash: bytes
    tip: ChainTip
    tally: Tally
    blocks: int = 0
    ballots: int = 0


def replay(
    genesis: Genesis,
    lines: Iterable[BundleLine],
    *,
    on_block: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replay every line; raise the first refusal (a LedgerError with its location)."""
    tip = ChainTip.at_genesis(genesis)
    view = MemoryView()
    proofs = ProofCache()
    result = ReplayResult(genesis.hash(), tip, Tally(genesis))
    for line in lines:
        where = f"block line {line.line_number}"
        try:
            block = Block.decode(line.block)
            certificate = CommitCertificate.decode(line.certificate)
        except LedgerError as exc:
            raise exc.at(where) from None
        effects = apply_block(genesis, tip, view, block, proofs=proofs)
        try:
            certificate.check(
                genesis.validators, chain_id=genesis.chain_id, height=block.height, block_hash=block.hash()
            )
        except LedgerError as exc:
            raise exc.at(f"block {block.height} certificate") from None
        view.apply(effects)
        result.tally.record_block(effects)
        tip = effects.tip
        result.blocks += 1
        result.ballots += len(effects.ballots)
        if on_block is not None:
            on_block(block.height, len(effects.ballots))
    result.tip = tip
    return result
