"""A chain on disk: the rules in front of the store.

The one place a block enters a store, used by the validator, by block sync and by the
single-validator demo: check the block with the ledger rules, check its certificate,
then commit block and effects atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ledger.block import Block, CommitCertificate
from ledger.blockfiles import SEGMENT_BYTES
from ledger.errors import BadHeight
from ledger.genesis import ElectionDef, Genesis, ValidatorSet
from ledger.rules import BlockEffects, CheckedBallot, ProofCache, apply_block, elections_at, validators_at
from ledger.state import ChainTip, ContractEngine
from ledger.store import LedgerStore
from ledger.validators import VALIDATOR_CHANGE_DELAY


class Chain:
    def __init__(
        self, path: str | os.PathLike[str], genesis: Genesis, engine: ContractEngine | None = None,
        *, segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.genesis = genesis
        self.engine = engine
        self.store = LedgerStore(path, genesis, genesis_tip=ChainTip.at_genesis(genesis, engine),
                                 segment_bytes=segment_bytes)
        self.proofs = ProofCache()
        # Every election defined up to the tip, by id (with its ceremony's key once set):
        # changed only as blocks commit, so other threads may read it (results, RPC)
        # without the engine.
        self.definitions: dict[str, ElectionDef] = {
            e.election_id: e for e in elections_at(genesis, self.store.tip.state_root, engine)
        }

    def close(self) -> None:
        self.store.close()

    def validators_at(self, height: int) -> ValidatorSet:
        """The set in force at ``height``, for any height up to the tip's plus
        ``VALIDATOR_CHANGE_DELAY`` (later ones may still change: BadHeight)."""
        tip = self.store.tip
        if not 0 <= height <= tip.height + VALIDATOR_CHANGE_DELAY:
            raise BadHeight(f"the set of height {height} is not known at height {tip.height}")
        # The tip's state holds every change made so far; ``at`` takes those in force.
        return validators_at(self.genesis, tip.state_root, self.engine, height)

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, block: Block, *, admitted: Mapping[bytes, CheckedBallot] | None = None) -> BlockEffects:
        return apply_block(
            self.genesis, self.store.tip, self.store, block, admitted=admitted, proofs=self.proofs, engine=self.engine
        )

    def commit(
        self,
        block: Block,
        certificate: CommitCertificate,
        *,
        admitted: Mapping[bytes, CheckedBallot] | None = None,
        checked: BlockEffects | None = None,
    ) -> BlockEffects:
        """Check and durably append ``block`` finalized by ``certificate``; raise if refused.

        ``checked``: what :meth:`check` answered for this block on the current tip (a
        validator checks the block it prevotes for, then commits it), so the rules do
        not run twice; it must be for this block on this tip, which is checked here.
        """
        on_tip = block.header.parent_hash == self.store.tip.block_hash
        effects = checked if checked and on_tip and checked.tip.block_hash == block.hash() else None
        if effects is None:
            effects = self.check(block, admitted=admitted)
        certificate.check(
            self.validators_at(block.header.height),
            chain_id=self.genesis.chain_id,
            height=block.header.height,
            block_hash=block.hash(),
        )
        self.store.commit(block, certificate, effects)
        for election in effects.defined:
            self.definitions[election.election_id] = election
        return effects
