"""Authority transactions waiting for a block (phase changes, results, new gateways).

Few and rare, so simple: each is pre-flighted on the committed state when it arrives
(a transaction that would invalidate a block or revert is refused with the contract's
code), and a proposer takes at most one per block, checked again on the state it builds
on, so a block never carries a transaction that became stale meanwhile.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from contracts import ContractError
from contracts.engine import EvmExecutor
from ledger.errors import LedgerError, Oversized
from ledger.hashing import keccak256

MAX_TX_BYTES = 128 * 1024  # a define_election call with the largest definition fits
MAX_PENDING = 256


class TxPoolFull(LedgerError):
    code = "txpool_full"


class TxPool:
    def __init__(self, engine: EvmExecutor, tip: Callable[[], tuple[bytes, int]]) -> None:
        """``tip()`` gives the committed (state root, height)."""
        self.engine = engine
        self.tip = tip
        self._pending: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def admit(self, raw: bytes, now_ms: int) -> bytes:
        """Pre-flight and queue ``raw``; returns its hash. Idempotent."""
        if len(raw) > MAX_TX_BYTES:
            raise Oversized(f"transaction of {len(raw)} bytes exceeds {MAX_TX_BYTES}")
        tx_hash = keccak256(raw)
        if tx_hash in self._pending:
            return tx_hash
        if len(self._pending) >= MAX_PENDING:
            raise TxPoolFull("too many transactions waiting; try again shortly")
        state_root, height = self.tip()
        self.engine.check_transaction(state_root, raw, height=height + 1, time_ms=now_ms)
        self._pending[tx_hash] = raw
        return tx_hash

    def take(self, state_root: bytes, height: int, time_ms: int) -> list[bytes]:
        """At most one transaction that still applies cleanly on ``state_root``."""
        for tx_hash, raw in list(self._pending.items()):
            try:
                self.engine.check_transaction(state_root, raw, height=height, time_ms=time_ms)
            except (ContractError, LedgerError):
                del self._pending[tx_hash]  # stale (nonce used) or now reverting: drop it
                continue
            return [raw]
        return []

    def remove(self, transactions: tuple[bytes, ...]) -> None:
        for raw in transactions:
            self._pending.pop(keccak256(raw), None)
