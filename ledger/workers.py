"""Entry points for worker processes that check ballots ahead of the in-order rules.

Shared by a validator's block sync and mempool admission and the gateway's submissions
(``node.precheck``), and by the verifier's ``--jobs`` pool. A worker is started with the
genesis (as JSON, which every start method can pass), then checks whole blocks with
``ledger.rules.check_block_ballots`` or lists of ballots with ``check_ballot``: the part
of a ballot's check that holds forever and does not depend on order. Elections defined
after genesis travel with the work as their definitions (few, small, learnt once per
worker: a definition never changes once made); a ballot of an election the worker was not
told of is refused by it as unknown, and the in-order rules then judge it themselves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from ledger.elections import ElectionLookup
from ledger.errors import LedgerError
from ledger.genesis import ElectionDef, Genesis
from ledger.rules import CheckedBallot, ProofCache, check_ballot, check_block_ballots

# One answer per ballot: None if ``check_ballot`` passed for exactly these bytes, else
# the refusal it raised (a LedgerError pickles with its type, message and location).
Verdict = LedgerError | None

PARENT_POLL_S = 0.5
_GENESIS: Genesis | None = None
_PROOFS = ProofCache()
# Elections the parent has told this worker of, by id. A definition never changes once
# made (a ceremony's key only arrives), so what a worker learnt stays true for its life.
_ELECTIONS: dict[str, ElectionDef] = {}
_DECODED: set[bytes] = set()


def init_worker(genesis_json: str, nice: int = 0, parent: int | None = None) -> None:
    """A worker process's initializer; ``nice``: how much lower than its parent's its
    scheduling priority is (the parent's own work comes first on a busy machine);
    ``parent``: the pid of the process that started the pool (the worker exits when
    that process is gone, even if it went before this worker got here)."""
    global _GENESIS
    if nice:
        os.nice(nice)
    watched = os.getppid() if parent is None else parent
    threading.Thread(target=_exit_with_parent, args=(watched,), name="parent-watch", daemon=True).start()
    _GENESIS = Genesis.from_json(genesis_json)
    _ELECTIONS.clear()
    _ELECTIONS.update((e.election_id, e) for e in _GENESIS.elections)


def _exit_with_parent(parent: int) -> None:
    """A worker blocks on a queue whose writing end it holds itself, so it never sees its
    parent die: if the parent is killed (SIGKILL, a crash), the worker would live on."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def ready() -> None:
    """Nothing: one call per worker as a pool starts makes every worker start at once."""


def definitions_of(elections: Iterable[ElectionDef], genesis: Genesis) -> tuple[bytes, ...]:
    """What a worker needs beyond its genesis to check whole blocks: the other
    definitions, encoded."""
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


def check_ballots_in_worker(raws: Sequence[bytes], elections: Sequence[ElectionDef]) -> list[Verdict]:
    """In a worker: ``check_ballot`` for each of ``raws``, one verdict each, in order.

    ``elections``: the definitions of the elections these ballots name, as the parent
    knows them now (an election defined after the worker started arrives this way).
    """
    if _GENESIS is None:
        raise RuntimeError("worker not initialised with a genesis")
    _ELECTIONS.update((e.election_id, e) for e in elections)
    out: list[Verdict] = []
    for raw in raws:
        try:
            check_ballot(_GENESIS, raw, elections=_ELECTIONS, proofs=_PROOFS)
            out.append(None)
        except LedgerError as exc:
            out.append(exc)
    return out


def check_ballot_given(
    genesis: Genesis,
    raw: bytes,
    form: CheckedBallot,
    verdicts: Mapping[bytes, Verdict] | None,
    proofs: ProofCache | None = None,
    *,
    elections: ElectionLookup,
) -> CheckedBallot:
    """``check_ballot(genesis, raw, elections=elections, form=form)``'s answer, in the
    parent: a worker's verdict where there is one for these very bytes, else checked
    here. ``form``: ``check_ballot_form``'s result for ``raw``."""
    if verdicts is not None and raw in verdicts:
        refusal = verdicts[raw]
        if refusal is not None:
            raise refusal
        return form  # what check_ballot returns once the credential part passed
    return check_ballot(genesis, raw, elections=elections, proofs=proofs, form=form)
