"""The mempool: ballots admitted (fully checked once) and waiting for a block.

Pure: the chain-so-far is read through ``LedgerView``; no I/O of its own. Admission runs
the same ledger rules a block will (``check_ballot`` and the credential rule), so a
ballot refused here is refused with the code the chain would use, and a ballot admitted
here needs only its chain-dependent checks again when its block is validated.

The costly, order-independent part (``check_ballot``) may have run in a worker process
(``node.precheck``): its verdicts come in keyed by the exact bytes they are for, and
everything that depends on order (the window, the chain, the pending ballots, the bound)
is checked here, in the order ballots are admitted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ledger.elections import Elections
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.rules import (
    BlockEffects,
    CheckedBallot,
    ProofCache,
    check_admissible,
    check_ballot_form,
    check_unique,
)
from ledger.state import LedgerView
from ledger.workers import Verdict, check_ballot_given


class MempoolFull(LedgerError):
    code = "mempool_full"


@dataclass(frozen=True)
class Admission:
    tracking_code: bytes
    status: str  # "pending" (newly admitted or already waiting) or "final" (already in the log)


class Mempool:
    def __init__(
        self,
        genesis: Genesis,
        view: LedgerView,
        *,
        max_size: int = 200_000,
        elections: Callable[[], Elections] | None = None,
    ) -> None:
        self.genesis = genesis
        self.view = view
        self.max_size = max_size
        # The elections defined on the committed state, with their phases (on a chain
        # without contracts, the genesis's).
        genesis_elections = Elections.of_genesis(genesis)
        self.elections = elections or (lambda: genesis_elections)
        self._pending: OrderedDict[bytes, CheckedBallot] = OrderedDict()
        # The same checked ballots by their bytes (envelope.encode() gives them back).
        self._by_raw: dict[bytes, CheckedBallot] = {}
        self._by_credential: dict[tuple[str, bytes], CheckedBallot] = {}
        # Checked ballots stay known until their block commits, even once taken for a
        # proposal, so validating any block carrying them skips the signature check.
        self.refused = 0
        self.proofs = ProofCache()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def admitted(self) -> Mapping[bytes, CheckedBallot]:
        """Checked ballots by their bytes (what ``apply_block`` takes as ``admitted``)."""
        return self._by_raw

    def admit(
        self, raw: bytes, now_ms: int, verdicts: Mapping[bytes, Verdict] | None = None,
        form: CheckedBallot | None = None,
    ) -> Admission:
        """Check ``raw`` and queue it; idempotent for a ballot already pending or final.

        ``verdicts``: workers' ``check_ballot`` results by the bytes they checked; a
        ballot without one is checked here. ``form``: :meth:`triage`'s for ``raw``."""
        known = self._by_raw.get(raw)  # a dict lookup by the bytes: cheaper than hashing them
        if known is not None:
            return Admission(known.tracking_code, "pending")
        try:
            elections = self.elections()
            form = form or check_ballot_form(self.genesis, raw, elections=elections)
            code = form.tracking_code
            if self.view.has_ballot(code):
                return Admission(code, "final")
            if len(self._pending) >= self.max_size:
                raise MempoolFull(f"mempool holds {len(self._pending)} ballots; try again shortly")
            checked = check_admissible(
                self.genesis, raw, now_ms, elections=elections,
                known=check_ballot_given(self.genesis, raw, form, verdicts, self.proofs, elections=elections),
            )
            # The chain's own rule, with the mempool's pending ballots as "this block".
            check_unique(checked, self.view, self._by_credential, self._pending.keys())
            key = (checked.election.election_id, checked.envelope.credential)
        except LedgerError:
            self.refused += 1
            raise
        self._pending[code] = checked
        self._by_raw[raw] = checked
        self._by_credential[key] = checked
        return Admission(code, "pending")

    def triage(self, raw: bytes) -> tuple[CheckedBallot, bool] | None:
        """``check_ballot_form``'s result for ``raw`` and whether :meth:`admit` would
        check it in full as things stand (neither pending nor final); None if it is
        malformed (``admit`` refuses it with the same error)."""
        known = self._by_raw.get(raw)
        if known is not None:
            return known, False
        try:
            form = check_ballot_form(self.genesis, raw, elections=self.elections())
        except LedgerError:
            return None
        return form, not self.view.has_ballot(form.tracking_code)

    def is_pending(self, code: bytes) -> bool:
        return code in self._pending

    def pending_bytes(self, code: bytes) -> bytes | None:
        """A pending ballot's bytes by its tracking code (a compact proposal names it so)."""
        checked = self._pending.get(code)
        return None if checked is None else checked.envelope.encode()

    def take(self, max_ballots: int, time_ms: int) -> list[bytes]:
        """The oldest ballots, in admission order, that a block at ``time_ms`` may carry.

        Under last-counts a credential's ballots all go, in order; under first-counts
        only one per credential was ever admitted.
        """
        out: list[bytes] = []
        elections = self.elections()
        for checked in self._pending.values():
            if len(out) >= max_ballots:
                break
            if elections.is_open(checked.election, time_ms):
                out.append(checked.envelope.encode())
        return out

    def remove_committed(self, effects: BlockEffects) -> None:
        """Drop what a committed block carried, and what it made invalid."""
        for checked in effects.ballots:
            self._drop(checked.tracking_code)
        for counted in effects.counted:
            election = counted.election
            other = self._by_credential.get((election.election_id, counted.envelope.credential))
            if other is not None and election.revoting == "first-counts":
                self._drop(other.tracking_code)

    def _drop(self, code: bytes) -> None:
        checked = self._pending.pop(code, None)
        if checked is not None:
            self._by_raw.pop(checked.envelope.encode(), None)
            key = (checked.election.election_id, checked.envelope.credential)
            if self._by_credential.get(key) is checked:
                del self._by_credential[key]

    def expire(self, now_ms: int) -> int:
        """Drop ballots whose election has closed; they can never be included."""
        stale = [c for c, b in self._pending.items() if now_ms >= b.election.closes_at_ms]
        for code in stale:
            self._drop(code)
        return len(stale)
