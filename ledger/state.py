"""What the chain rules need to know about the chain so far."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger import codec
from ledger.elections import Elections
from ledger.errors import BadEncoding, LedgerError
from ledger.genesis import Genesis
from ledger.hashing import HASH_SIZE, ZERO_HASH
from ledger.merkle import MerkleFrontier
from ledger.validators import ValidatorChange


@dataclass(frozen=True)
class ChainTip:
    """The last committed block's summary: enough to validate the next block."""

    chain_id: str
    height: int
    block_hash: bytes
    time_ms: int
    state_root: bytes
    log_frontier: bytes  # MerkleFrontier.to_bytes(): the log's size and its peaks

    @classmethod
    def at_genesis(cls, genesis: Genesis, engine: ContractEngine | None = None) -> ChainTip:
        return cls(
            chain_id=genesis.chain_id,
            height=0,
            block_hash=genesis.hash(),
            time_ms=genesis.genesis_time_ms,
            state_root=genesis_state_root(genesis, engine),
            log_frontier=MerkleFrontier().to_bytes(),
        )

    def frontier(self) -> MerkleFrontier:
        return MerkleFrontier.from_bytes(self.log_frontier)

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.chain_id.encode(),
                codec.int_bytes(self.height),
                self.block_hash,
                codec.int_bytes(self.time_ms),
                self.state_root,
                self.log_frontier,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> ChainTip:
        f = codec.as_list(codec.decode(data), 6, "chain tip")
        tip = cls(
            chain_id=codec.as_text(f[0], "tip chain id", max_size=64),
            height=codec.as_int(f[1], "tip height"),
            block_hash=codec.as_bytes(f[2], "tip block hash", size=HASH_SIZE),
            time_ms=codec.as_int(f[3], "tip time"),
            state_root=codec.as_bytes(f[4], "tip state root", size=HASH_SIZE),
            log_frontier=codec.as_bytes(f[5], "tip log frontier"),
        )
        MerkleFrontier.from_bytes(tip.log_frontier)  # refuse a malformed frontier now
        if tip.encode() != data:
            raise BadEncoding("chain tip: non-canonical encoding")
        return tip


class ExecutedBlock(Protocol):
    @property
    def state_root(self) -> bytes: ...


class ContractEngine(Protocol):
    """The chain's contract part (contracts.engine.EvmExecutor), as the rules use it.

    ``ledger`` may not import ``contracts``; the node and the verifier pass one in.
    """

    def genesis_state_root(self) -> bytes: ...

    def elections(self, state_root: bytes) -> Elections: ...

    def validator_changes(self, state_root: bytes) -> tuple[ValidatorChange, ...]: ...

    def execute_block(
        self,
        state_root: bytes,
        height: int,
        time_ms: int,
        transactions: Sequence[bytes],
        checkpoint: tuple[int, bytes, Sequence[tuple[str, int]]],
    ) -> ExecutedBlock: ...


class MissingContractEngine(LedgerError):
    code = "missing_contract_engine"


def genesis_state_root(genesis: Genesis, engine: ContractEngine | None) -> bytes:
    if not genesis.params.contracts:
        return ZERO_HASH
    if engine is None:
        raise MissingContractEngine("this chain runs contracts: a contract engine is needed")
    return engine.genesis_state_root()


class LedgerView(Protocol):
    """Read-only lookups into the chain so far (the store, or the verifier's index)."""

    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        """Tracking code of the ballot that currently counts for this credential, if any."""
        ...

    def has_ballot(self, tracking_code: bytes) -> bool:
        """Whether a ballot with this tracking code is already in the log."""
        ...


class EmptyView:
    """The view of a chain with no ballots yet."""

    def counted_ballot(self, election_id: str, credential: bytes) -> bytes | None:
        return None

    def has_ballot(self, tracking_code: bytes) -> bool:
        return False
