"""What the gateway checks before it accepts a ballot, by the chain's own rules.

:func:`check_submission` is pure: genesis, bytes, a clock and any worker's verdict in, a
checked ballot or a :class:`Problem` out. :class:`SubmissionChecker` runs it for the
routes with an encrypted ballot's costly part (``check_ballot``: signature, credential
proof, payload proofs, ~1.4 ms) in the gateway's own worker processes, so a burst of
them does not stall the event loop; a plaintext ballot is checked on the loop, as it
always was (see ``node.admission.worth_a_worker``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ledger.elections import Elections
from ledger.errors import LedgerError, UnknownElection
from ledger.genesis import IDENTIFIER_PATTERN as ELECTION_ID_PATTERN
from ledger.genesis import ElectionDef, Genesis
from ledger.rules import CheckedBallot, ProofCache, check_admissible, check_ballot_form
from ledger.workers import Verdict, check_ballot_given
from node.admission import worth_a_worker
from node.gateway.problems import Problem, from_ledger_error
from node.precheck import ArrivalOrder, BallotPrechecker, WorkersUnavailable

HEX_PATTERN = r"^([0-9a-f]{2})+$"
TRACKING_CODE_PATTERN = r"^[0-9a-f]{64}$"
__all__ = ["ELECTION_ID_PATTERN", "HEX_PATTERN", "TRACKING_CODE_PATTERN", "check_submission"]


def check_submission(
    genesis: Genesis,
    elections: Elections,
    path_election: str,
    raw: bytes,
    now_ms: int,
    proofs: ProofCache | None = None,
    verdicts: Mapping[bytes, Verdict] | None = None,
) -> CheckedBallot:
    """Everything the chain would check of this ballot alone, plus the URL's election and
    the election window at ``now_ms`` (the chain's ``check_admissible`` against the
    ``elections`` the gateway knows; the registry's phase is the validators' to check).
    Raises :class:`Problem` with the ledger's code. ``verdicts``: workers'
    ``check_ballot`` results by the bytes they checked."""
    if elections.get(path_election) is None:
        raise Problem("unknown_election", f"no election {path_election!r} on chain {genesis.chain_id!r}")
    try:
        form = check_ballot_form(genesis, raw, elections=elections)
        checked = check_ballot_given(genesis, raw, form, verdicts, proofs, elections=elections)
    except UnknownElection as exc:  # the URL names a real election; the ballot names another
        raise Problem("election_mismatch", exc.message) from None
    except LedgerError as exc:
        raise from_ledger_error(exc) from None
    if checked.envelope.election_id != path_election:
        raise Problem("election_mismatch", _mismatch(checked.envelope.election_id, path_election))
    try:
        return check_admissible(genesis, raw, now_ms, elections=elections, known=checked)
    except LedgerError as exc:
        raise from_ledger_error(exc) from None


class SubmissionChecker:
    """:func:`check_submission` for the routes, with the costly part in worker processes
    where it pays (``workers``: 0 checks everything on the loop)."""

    def __init__(self, genesis: Genesis, clock_ms: Callable[[], int], proofs: ProofCache, workers: int) -> None:
        self.genesis = genesis
        self.clock_ms = clock_ms
        self.proofs = proofs
        self.prechecker = BallotPrechecker(genesis, workers) if workers else None
        self._order = ArrivalOrder()

    def start(self) -> None:
        if self.prechecker is not None:
            self.prechecker.start()

    def close(self) -> None:
        if self.prechecker is not None:
            self.prechecker.close()

    async def check(self, path_election: str, raw: bytes, elections: Elections) -> CheckedBallot:
        """:func:`check_submission`'s answer. A credential's ballots sent to workers are
        answered in the order they arrived, and nothing is awaited between this answer and
        the caller's next step: what the caller does next up to its own first await (the
        outbox's reservation) keeps that order, which re-voting depends on."""
        form = self._costly(raw, elections)
        if form is None or self.prechecker is None:
            return check_submission(self.genesis, elections, path_election, raw, self.clock_ms(), self.proofs)
        place = self._order.arrive()
        try:
            place.know(frozenset({(form.election.election_id, form.envelope.credential)}))
            try:
                (verdict,) = await self.prechecker.check_ballots([raw], [form.election])
            except WorkersUnavailable as exc:
                raise Problem("unavailable", exc.message, headers={"Retry-After": "1"}) from None
            await place.wait()
            return check_submission(self.genesis, elections, path_election, raw, self.clock_ms(), self.proofs,
                                    {raw: verdict})
        finally:
            place.finish()

    def _costly(self, raw: bytes, elections: Elections) -> CheckedBallot | None:
        """The form of a ballot worth a worker's check (if it is well formed)."""
        try:
            form = check_ballot_form(self.genesis, raw, elections=elections)
        except LedgerError:
            return None  # refused on the loop with the same error
        return form if worth_a_worker(form.election) else None


def _mismatch(ballot_election: str, path_election: str) -> str:
    return f"ballot is for election {ballot_election!r}, the URL names {path_election!r}"


def phase_of(election: ElectionDef, now_ms: int) -> str:
    if now_ms < election.opens_at_ms:
        return "setup"
    return "open" if now_ms < election.closes_at_ms else "closed"


def decode_hex_ballot(value: str) -> bytes:
    """The request's ``ballot`` field (already held to HEX_PATTERN by the schema)."""
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise Problem("validation_error", f"ballot: not lower-case hex: {exc}") from None
