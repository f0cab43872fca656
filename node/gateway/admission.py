"""What the gateway checks before it accepts a ballot. Pure: genesis, bytes and a clock in,
a checked ballot or a :class:`Problem` out, by the chain's own rules (``check_ballot``)."""

from __future__ import annotations

from ledger.elections import Elections
from ledger.errors import LedgerError, UnknownElection
from ledger.genesis import IDENTIFIER_PATTERN as ELECTION_ID_PATTERN
from ledger.genesis import ElectionDef, Genesis
from ledger.rules import CheckedBallot, ProofCache, check_admissible, check_ballot
from node.gateway.problems import Problem, from_ledger_error

HEX_PATTERN = r"^([0-9a-f]{2})+$"
TRACKING_CODE_PATTERN = r"^[0-9a-f]{64}$"
__all__ = ["ELECTION_ID_PATTERN", "HEX_PATTERN", "TRACKING_CODE_PATTERN", "check_submission"]


def check_submission(
    genesis: Genesis, elections: Elections, path_election: str, raw: bytes, now_ms: int,
    proofs: ProofCache | None = None,
) -> CheckedBallot:
    """Everything the chain would check of this ballot alone, plus the URL's election and
    the election window at ``now_ms`` (the chain's ``check_admissible`` against the
    ``elections`` the gateway knows; the registry's phase is the validators' to check).
    Raises :class:`Problem` with the ledger's code."""
    if elections.get(path_election) is None:
        raise Problem("unknown_election", f"no election {path_election!r} on chain {genesis.chain_id!r}")
    try:
        checked = check_ballot(genesis, raw, elections=elections, proofs=proofs)
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
