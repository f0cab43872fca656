"""Entry points for worker processes that check ballots ahead of the in-order rules.

Shared by a validator's block sync (``node.precheck``) and the verifier's ``--jobs``
pool: a worker is started with the genesis (as JSON, which every start method can pass)
and then checks whole blocks with ``ledger.rules.check_block_ballots``. Elections defined
after genesis travel with each block as their canonical definitions (few, small, and
decoded once per worker); a ballot of an election the worker was not told of is simply
not flagged, and the in-order rules check it themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.elections import Elections
from ledger.genesis import ElectionDef, Genesis
from ledger.rules import ProofCache, check_block_ballots

_GENESIS: Genesis | None = None
_PROOFS = ProofCache()
_ELECTIONS: dict[str, ElectionDef] = {}
_DECODED: set[bytes] = set()


def init_worker(genesis_json: str) -> None:
    """A worker process's initializer."""
    global _GENESIS
    _GENESIS = Genesis.from_json(genesis_json)
    _ELECTIONS.update((e.election_id, e) for e in _GENESIS.elections)


def definitions_of(elections: Elections, genesis: Genesis) -> tuple[bytes, ...]:
    """What a worker needs beyond its genesis: the other definitions, encoded."""
    return tuple(e.encode() for e in elections if genesis.election(e.election_id) != e)


def check_in_worker(raw_block: bytes, definitions: Sequence[bytes] = ()) -> bytes:
    """In a worker: ``check_block_ballots`` against the genesis it was started with and
    ``definitions`` (see :func:`definitions_of`)."""
    if _GENESIS is None:
        raise RuntimeError("worker not initialised with a genesis")
    for encoded in definitions:
        if encoded not in _DECODED:
            election = ElectionDef.decode(encoded)
            _ELECTIONS[election.election_id] = election
            _DECODED.add(encoded)
    return check_block_ballots(_GENESIS, raw_block, elections=_ELECTIONS, proofs=_PROOFS)
