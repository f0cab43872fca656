"""A ledger block as Ethereum presents a block: its transactions and receipts encoded,
their Merkle-Patricia tries, blooms and gas, all from one execution of the block.

Pure: it takes what :class:`contracts.engine.EvmExecutor` returns and computes; no
store, no state database.

The one presentation (the module docstring of :mod:`node.eth_rpc` says why):

- block ``n >= 1``: its authority transactions in order, then the checkpoint system
  call as the last transaction;
- block 0 (genesis): one pseudo transaction, the genesis call, whose receipt holds the
  events of building the genesis state (each genesis election's ``ElectionDefined`` and
  ``PhaseChanged``), with no gas;
- a pseudo transaction (checkpoint or genesis call) is a legacy transaction from
  :data:`contracts.SYSTEM_ADDRESS` to the registry with nonce 0, gas price 0, value 0
  and ``v = r = s = 0``; its input is the call's calldata (empty for the genesis call)
  and its gas the system call's allowance. It is encoded as such in the transactions
  trie; its hash is :func:`ledger.tx_index.system_call_hash` (known from the chain id
  and height alone), not the keccak256 of that encoding;
- every transaction's gas used counts, the checkpoint call's included: a receipt's
  ``cumulativeGasUsed`` is the sum over it and the transactions before it, and the
  block's ``gasUsed`` is its last receipt's. The checkpoint call has its own allowance
  (as EIP-4788's system calls do), so the presented ``gasLimit`` is the transactions'
  limit plus that allowance;
- ``transactionsRoot`` and ``receiptsRoot`` are the tries of ``rlp(index) ->`` the
  encodings above (EIP-2718: a typed transaction or receipt is its type byte then its
  RLP); each receipt's bloom holds its logs' addresses and topics, the block's is their
  union.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import rlp
from eth_bloom.bloom import BloomFilter
from trie.hexary import HexaryTrie

from contracts import REGISTRY_ADDRESS, SYSTEM_ADDRESS
from contracts.engine import BLOCK_GAS_LIMIT, SYSTEM_CALL_GAS, BlockExecution, EvmLog, TxOutcome
from ledger.tx_index import system_call_hash

#: What ``gasLimit`` shows: the transactions' limit plus the checkpoint call's allowance.
PRESENTED_GAS_LIMIT = BLOCK_GAS_LIMIT + SYSTEM_CALL_GAS


def trie_root(items: Iterable[bytes]) -> bytes:
    """The root of the trie ``rlp(i) -> items[i]`` (Ethereum's transactions and receipts tries)."""
    db: dict[bytes, bytes] = {}
    trie = HexaryTrie(db)
    with trie.squash_changes() as scratch:
        for i, item in enumerate(items):
            scratch[rlp.encode(i)] = item
    return bytes(trie.root_hash)


def logs_bloom(logs: Iterable[EvmLog]) -> int:
    """The 2048-bit bloom of the logs' addresses and topics (yellow paper, eq. 28)."""
    bloom = BloomFilter()
    for log in logs:
        bloom.add(log.address)
        for topic in log.topics:
            bloom.add(topic)
    return int(bloom)


def bloom_bytes(bloom: int) -> bytes:
    return bloom.to_bytes(256, "big")


def tx_type(outcome: TxOutcome) -> int:
    """0 for a legacy transaction or a pseudo transaction, else its EIP-2718 type."""
    if outcome.system or not outcome.raw or outcome.raw[0] >= 0x80:
        return 0
    return outcome.raw[0]


def system_tx_encoding(outcome: TxOutcome) -> bytes:
    """A pseudo transaction as the legacy transaction it is shown as (v = r = s = 0)."""
    encoded: bytes = rlp.encode([0, 0, outcome.gas_limit, outcome.to or b"", 0, outcome.raw, 0, 0, 0])
    return encoded


def tx_encoding(outcome: TxOutcome) -> bytes:
    return system_tx_encoding(outcome) if outcome.system else outcome.raw


def receipt_encoding(outcome: TxOutcome, cumulative_gas: int, bloom: int) -> bytes:
    """EIP-658 receipt: rlp([status, cumulative gas, bloom, logs]), type byte first if typed."""
    body: bytes = rlp.encode([
        1 if outcome.success else 0,
        cumulative_gas,
        bloom_bytes(bloom),
        [[log.address, list(log.topics), log.data] for log in outcome.logs],
    ])
    kind = tx_type(outcome)
    return body if kind == 0 else bytes([kind]) + body


def genesis_call(chain_id: str, logs: tuple[EvmLog, ...]) -> TxOutcome:
    """Block 0's pseudo transaction: the building of the genesis state, with its events."""
    return TxOutcome(
        tx_hash=system_call_hash(chain_id, 0), raw=b"", system=True, sender=SYSTEM_ADDRESS, to=REGISTRY_ADDRESS,
        nonce=0, gas_limit=0, gas_used=0, cumulative_gas_used=0, success=True, logs=logs,
        contract_address=None, revert_code=None, output=b"",
    )


@dataclass(frozen=True)
class PresentedBlock:
    """A block's transactions (system calls included) with what Ethereum derives from them."""

    outcomes: tuple[TxOutcome, ...]
    cumulative_gas: tuple[int, ...]  # per transaction, the checkpoint call's gas included
    blooms: tuple[int, ...]  # per receipt
    bloom: int
    transactions_root: bytes
    receipts_root: bytes
    gas_used: int

    @classmethod
    def of(cls, outcomes: tuple[TxOutcome, ...]) -> PresentedBlock:
        cumulative: list[int] = []
        total = 0
        for o in outcomes:
            total += o.gas_used
            cumulative.append(total)
        blooms = tuple(logs_bloom(o.logs) for o in outcomes)
        block_bloom = 0
        for b in blooms:
            block_bloom |= b
        return cls(
            outcomes=outcomes,
            cumulative_gas=tuple(cumulative),
            blooms=blooms,
            bloom=block_bloom,
            transactions_root=trie_root(tx_encoding(o) for o in outcomes),
            receipts_root=trie_root(
                receipt_encoding(o, c, b) for o, c, b in zip(outcomes, cumulative, blooms, strict=True)),
            gas_used=total,
        )

    @classmethod
    def of_execution(cls, execution: BlockExecution) -> PresentedBlock:
        return cls.of(execution.outcomes)

    def first_log_index(self, tx_index: int) -> int:
        return sum(len(o.logs) for o in self.outcomes[:tx_index])
