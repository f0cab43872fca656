"""A small driver: an election kit, an executor, and blocks of authority transactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ballotledger.election_kit import ElectionKit, make_election
from contracts import REGISTRY_ADDRESS, Registry, registry
from ledger.crypto import SigningKey
from ledger.genesis import ElectionDef
from ledger.hashing import keccak256
from node.evm import BlockExecution, CheckpointInput, EvmExecutor, sign_transaction

STRANGER = SigningKey.from_seed(b"tests/contracts/stranger")


def kit() -> ElectionKit:
    return make_election(voters=8, seed="tests-contracts", election_id="board-2026")


def new_election(k: ElectionKit, election_id: str = "budget-2027", choices: int = 2) -> ElectionDef:
    return ElectionDef(
        election_id=election_id,
        question="Adopt the budget?",
        choices=tuple(f"option-{i}" for i in range(choices)),
        credential_root=keccak256(b"roster"),
        credential_count=8,
        opens_at_ms=k.genesis.genesis_time_ms,
        closes_at_ms=k.genesis.genesis_time_ms + 86_400_000,
        revoting="last-counts",
    )


@dataclass
class Driver:
    """Executes one block after another on an executor, tracking root, height and nonce."""

    executor: EvmExecutor
    kit: ElectionKit
    root: bytes = b""
    height: int = 0
    time_ms: int = 0
    nonce: int = 0
    log_size: int = 0
    results: list[BlockExecution] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = self.executor.genesis_state_root()
        self.time_ms = self.kit.genesis.genesis_time_ms

    @property
    def reg(self) -> Registry:
        return registry()

    def tx(self, data: bytes, *, key: SigningKey | None = None, nonce: int | None = None,
           to: bytes | None = REGISTRY_ADDRESS, chain_id: int | None = None) -> bytes:
        if nonce is None:
            nonce = self.nonce
            if key is None:
                self.nonce += 1
        return sign_transaction(key or self.kit.authority_key, chain_id=chain_id or self.executor.chain_id,
                                nonce=nonce, to=to, data=data)

    def block(self, txs: Sequence[bytes] = (), ballots: Sequence[tuple[str, int]] = ()) -> BlockExecution:
        self.log_size += sum(n for _, n in ballots)
        result = self.executor.execute_block(
            self.root, self.height + 1, self.time_ms + 1000, list(txs),
            CheckpointInput(self.log_size, keccak256(self.log_size.to_bytes(8, "big")), tuple(ballots)),
        )
        self.root = result.state_root
        self.height += 1
        self.time_ms += 1000
        self.results.append(result)
        return result

    def events(self, result: BlockExecution) -> list[tuple[str, dict[str, object]]]:
        out = []
        for o in result.outcomes:
            for log in o.logs:
                decoded = self.reg.decode_log(log.topics, log.data)
                assert decoded is not None
                out.append(decoded)
        return out
