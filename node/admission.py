"""A validator's way into its mempool: the RPC's submissions and the ballots peers gossip.

Ballots come in batches. First, off the consensus loop, worker processes run each new
ballot's costly, order-independent check (``check_ballot``: credential proof, signature,
an encrypted ballot's proofs), in chunks (``node.precheck``). Then, on the loop,
``Mempool.admit`` does the cheap, order-dependent rest with the workers' verdicts (the
window, the chain, the pending ballots, the bound), a few milliseconds at a time; a
credential's ballots in the order their batches arrived (``node.precheck.ArrivalOrder``).
A ballot is answered only once it is admitted or refused.

Which ballots go to the workers is :func:`worth_a_worker`'s call: an encrypted ballot's
proofs take ~1.4 ms; a plaintext ballot's whole check (~55 us) gains no consistent
throughput from workers on two cores, and one-ballot requests lose by the round trip,
so it is checked on the loop (figures in ``scripts/bench/admission.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ledger.errors import LedgerError
from ledger.genesis import ElectionDef
from ledger.rules import CheckedBallot
from ledger.workers import Verdict
from node.mempool import Admission, Mempool
from node.precheck import ArrivalOrder, BallotPrechecker, Place, WorkersUnavailable

SLICE_S = 0.002  # the longest the in-order step holds the consensus loop before it yields
Answer = Admission | LedgerError
OnPending = Callable[[list[bytes]], None]


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
        self._order = ArrivalOrder()
        self.on_answers: Callable[[list[Answer]], None] | None = None  # each batch's answers (metrics, logs)

    async def admit(self, items: Sequence[bytes | LedgerError], *, on_pending: OnPending | None = None) -> list[Answer]:
        """One answer per item, in order: its admission, or why it was refused (an item
        that is already an error, such as bad hex, is answered with itself).

        ``on_pending``: called with the ballots now pending, before each pause, so no
        block can take a ballot before it is handed on (the RPC's gossip: a proposal
        names its ballots and the peers must have them)."""
        place = self._order.arrive()
        try:
            forms, to_check = await self._triage(place, [item for item in items if isinstance(item, bytes)])
            verdicts = await self._precheck(to_check, forms)
            await place.wait()
            answers = await self._in_order(items, forms, verdicts, on_pending)
        finally:
            place.finish()
        if self.on_answers is not None:
            self.on_answers(answers)
        return answers

    async def _triage(
        self, place: Place, raws: Sequence[bytes]
    ) -> tuple[dict[bytes, CheckedBallot], list[bytes]]:
        """Read each ballot's form once: for the in-order step, for ``place`` (its
        credential), and to pick the ballots to send to workers."""
        forms: dict[bytes, CheckedBallot] = {}
        to_check: list[bytes] = []
        started = time.perf_counter()
        for raw in raws:
            if time.perf_counter() - started > SLICE_S:
                await asyncio.sleep(0)
                started = time.perf_counter()
            if raw in forms:
                continue
            triaged = self.mempool.triage(raw)
            if triaged is None:
                continue
            form, unchecked = triaged
            forms[raw] = form
            if unchecked and self.prechecker is not None and self.offload(form.election):
                to_check.append(raw)
        place.know(frozenset((f.election.election_id, f.envelope.credential) for f in forms.values()))
        return forms, to_check

    async def _precheck(self, raws: list[bytes], forms: dict[bytes, CheckedBallot]) -> dict[bytes, Verdict]:
        """Workers' verdicts for ``raws``, by their bytes."""
        if self.prechecker is None or not raws:
            return {}
        elections = {forms[raw].election.election_id: forms[raw].election for raw in raws}
        try:
            verdicts = await self.prechecker.check_ballots(raws, list(elections.values()))
        except WorkersUnavailable as exc:
            return dict.fromkeys(raws, exc)
        return dict(zip(raws, verdicts, strict=True))

    async def _in_order(
        self, items: Sequence[bytes | LedgerError], forms: dict[bytes, CheckedBallot], verdicts: dict[bytes, Verdict],
        on_pending: OnPending | None,
    ) -> list[Answer]:
        out: list[Answer] = []
        pending: list[bytes] = []
        started = time.perf_counter()
        now = self.clock_ms()
        for item in items:
            if time.perf_counter() - started > SLICE_S:
                if on_pending is not None and pending:
                    on_pending(pending)
                    pending = []
                await asyncio.sleep(0)  # let consensus run
                started = time.perf_counter()
                now = self.clock_ms()
            if isinstance(item, LedgerError):
                out.append(item)
                continue
            try:
                answer = self.mempool.admit(item, now, verdicts, forms.get(item))
            except LedgerError as exc:
                out.append(exc)
                continue
            out.append(answer)
            if answer.status == "pending":
                pending.append(item)
        if on_pending is not None and pending:
            on_pending(pending)
        return out
