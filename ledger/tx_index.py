"""The transaction index's entries: where each transaction a block presents sits.

Ethereum tools find a transaction by its hash, and a query for events other than the
checkpoint's needs only the blocks that hold transactions. A block ``n >= 1`` presents
its authority transactions in order, then its checkpoint system call (``node.eth_blocks``
says why); block 0, the genesis, presents only the genesis call, and has no block to
index. What the index keeps of block ``n``:

- for each presented transaction, ``hash -> (n, position)``: a signed transaction's hash
  is keccak256 of its bytes (as Ethereum hashes one), the checkpoint call's is
  :func:`system_call_hash`, at the position after the authority transactions;
- whether ``n`` holds authority transactions (the only blocks whose logs are more than
  their checkpoint's).

Pure: :class:`ledger.store.LedgerStore` writes these entries in the block's own batch, and
derives them again, in height order, for blocks a store of an older layout holds without
them. A hash presented twice is found at its later place.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger import codec
from ledger.hashing import keccak256, tag, tagged_hash

SYSTEM_CALL_TAG = tag("evm-system-call/v1")


def system_call_hash(chain_id: str, height: int) -> bytes:
    """The pseudo transaction hash of block ``height``'s checkpoint call (what the RPC
    shows; from the chain id and height alone, so it is known without executing), and of
    the genesis call at height 0."""
    return tagged_hash(SYSTEM_CALL_TAG, codec.encode([chain_id.encode(), codec.int_bytes(height)]))


def presented_hashes(chain_id: str, height: int, transactions: Sequence[bytes]) -> list[bytes]:
    """The hashes of the transactions block ``height >= 1`` presents, by position."""
    return [keccak256(raw) for raw in transactions] + [system_call_hash(chain_id, height)]
