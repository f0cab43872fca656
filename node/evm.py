"""py-evm execution of the chain's contract part, as the node uses it.

The engine itself is :mod:`contracts.engine` (the verifier replays with the same code
and may not import ``node``); this module re-exports it and adds what only a node needs:
opening the state database inside the node's data directory.

The integration with the chain's rules, in one place (see also ``contracts.engine``):

- genesis: ``ChainTip.at_genesis(...).state_root = executor.genesis_state_root()``;
- a block after ``tip``: every ballot's election must be defined and open in
  ``executor.elections(tip.state_root)`` (definitions and phases from the registry); then
  ``executor.execute_block(tip.state_root, header.height, header.time_ms,
  block.transactions, (header.log_size, header.log_root, per_election_counts))``
  must give ``.state_root == header.state_root``;
- the proposer computes ``header.state_root`` the same way before signing the header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts import (
    REGISTRY_ADDRESS,
    SYSTEM_ADDRESS,
    ContractError,
    ContractRevert,
    EvmError,
    InvalidTransaction,
    NotAuthority,
    NotAuthoritySender,
    NotSystem,
    Phase,
    UnknownStateRoot,
    WrongPhase,
    election_key,
    registry,
)
from contracts.engine import (
    BLOCK_GAS_LIMIT,
    BlockExecution,
    CheckpointInput,
    EvmExecutor,
    EvmLog,
    LevelStateDB,
    TxOutcome,
    decode_transaction,
    evm_chain_id,
    memory_state_db,
    sign_transaction,
)
from ledger.genesis import Genesis
from ledger.tx_index import system_call_hash

__all__ = [
    "BLOCK_GAS_LIMIT",
    "REGISTRY_ADDRESS",
    "SYSTEM_ADDRESS",
    "BlockExecution",
    "CheckpointInput",
    "ContractError",
    "ContractRevert",
    "EvmError",
    "EvmExecutor",
    "EvmLog",
    "InvalidTransaction",
    "LevelStateDB",
    "NotAuthority",
    "NotAuthoritySender",
    "NotSystem",
    "Phase",
    "TxOutcome",
    "UnknownStateRoot",
    "WrongPhase",
    "decode_transaction",
    "election_key",
    "evm_chain_id",
    "memory_state_db",
    "open_executor",
    "registry",
    "sign_transaction",
    "system_call_hash",
]

EVM_PREFIX = b"evm/"


def open_executor(genesis: Genesis, *, path: str | Path | None = None, store_db: Any = None) -> EvmExecutor:
    """An executor whose state lives in LevelDB.

    Preferred: ``store_db``, the ledger store's own plyvel DB; the state goes under the
    ``evm/`` prefix with unsynced writes, made durable by the store's synced block batch.
    Otherwise ``path``, a LevelDB directory of its own with synced writes. Both build the
    genesis state if it is not there yet.
    """
    if store_db is not None:
        db = LevelStateDB(store_db.prefixed_db(EVM_PREFIX), sync=False)
    elif path is not None:
        db = LevelStateDB.open(str(path), sync=True)
    else:
        raise ValueError("open_executor needs a path or the store's database")
    executor = EvmExecutor(genesis, db)
    executor.genesis_state_root()
    return executor
