"""Entry points for worker processes that check ballots ahead of the in-order rules.

Shared by a validator's block sync (``node.precheck``) and the verifier's ``--jobs``
pool: a worker is started with the genesis (as JSON, which every start method can pass)
and then checks whole blocks with ``ledger.rules.check_block_ballots``.
"""

from __future__ import annotations

from ledger.genesis import Genesis
from ledger.rules import ProofCache, check_block_ballots

_GENESIS: Genesis | None = None
_PROOFS = ProofCache()


def init_worker(genesis_json: str) -> None:
    """A worker process's initializer."""
    global _GENESIS
    _GENESIS = Genesis.from_json(genesis_json)


def check_in_worker(raw_block: bytes) -> bytes:
    """In a worker: ``check_block_ballots`` against the genesis it was started with."""
    if _GENESIS is None:
        raise RuntimeError("worker not initialised with a genesis")
    return check_block_ballots(_GENESIS, raw_block, _PROOFS)
