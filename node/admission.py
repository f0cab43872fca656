"""A validator's way into its mempool: the RPC's submissions and the ballots peers gossip.

Ballots come in batches. First, off the consensus loop, worker processes run each new
ballot's costly, order-independent check (``check_ballot``: credential proof, signature,
an encrypted ballot's proofs), in chunks (``node.precheck``). Then, on the loop and in
the order the batches arrived, ``Mempool.admit`` does the cheap, order-dependent rest
with the workers' verdicts (the window, the chain, the pending ballots, the bound), a
few milliseconds at a time. A ballot is answered only once it is admitted or refused.

Which ballots go to the workers is :func:`worth_a_worker`'s call: an encrypted ballot's
proofs take ~1.4 ms; a plaintext ballot's whole check (~55 us) costs less than the
round trip to a worker, so it is checked on the loop (figures in
``scripts/bench/admission.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ledger.errors import LedgerError
from ledger.genesis import ElectionDef
from ledger.workers import Verdict
from node.mempool import Admission, Mempool
from node.precheck import BallotPrechecker, Turns, WorkersUnavailable

SLICE_S = 0.002  # the longest the in-order step holds the consensus loop before it yields
Answer = Admission | LedgerError


def worth_a_worker(election: ElectionDef) -> bool:
    """Whether a ballot of ``election`` costs more to check than to send to a worker."""
    return election.encrypted


class BallotAdmission:
    def __init__(
        self,
        mempool: Mempool,
        clock_ms: Callable[[], int],
        prechecker: BallotPrechecker | None = None,
        *,
        offload: Callable[[ElectionDef], bool] = worth_a_worker,
    ) -> None:
        self.mempool = mempool
        self.clock_ms = clock_ms
        self.prechecker = prechecker  # None: every check on the loop
        self.offload = offload
        self._turns = Turns()

    async def admit(self, items: Sequence[bytes | LedgerError]) -> list[Answer]:
        """One answer per item, in order: its admission, or why it was refused (an item
        that is already an error, such as bad hex, is answered with itself)."""
        turn = self._turns.take()  # on arrival: the in-order step keeps this order
        try:
            verdicts = await self._precheck([item for item in items if isinstance(item, bytes)])
            await turn.wait()
            return await self._in_order(items, verdicts)
        finally:
            turn.finish()

    async def _precheck(self, raws: Sequence[bytes]) -> dict[bytes, Verdict]:
        """Workers' verdicts for the ballots worth sending them, by their bytes."""
        if self.prechecker is None:
            return {}
        todo: dict[bytes, None] = {}
        elections: dict[str, ElectionDef] = {}
        started = time.perf_counter()
        for raw in raws:
            if time.perf_counter() - started > SLICE_S:
                await asyncio.sleep(0)
                started = time.perf_counter()
            if raw in todo:
                continue
            election = self.mempool.election_to_check(raw)
            if election is not None and self.offload(election):
                todo[raw] = None
                elections[election.election_id] = election
        if not todo:
            return {}
        batch = list(todo)
        try:
            verdicts = await self.prechecker.check_ballots(batch, list(elections.values()))
        except WorkersUnavailable as exc:
            return dict.fromkeys(batch, exc)
        return dict(zip(batch, verdicts, strict=True))

    async def _in_order(self, items: Sequence[bytes | LedgerError], verdicts: dict[bytes, Verdict]) -> list[Answer]:
        out: list[Answer] = []
        started = time.perf_counter()
        now = self.clock_ms()
        for item in items:
            if time.perf_counter() - started > SLICE_S:
                await asyncio.sleep(0)  # let consensus run
                started = time.perf_counter()
                now = self.clock_ms()
            if isinstance(item, LedgerError):
                out.append(item)
                continue
            try:
                out.append(self.mempool.admit(item, now, verdicts))
            except LedgerError as exc:
                out.append(exc)
        return out
