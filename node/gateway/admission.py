"""What the gateway checks before it accepts a ballot. Pure: genesis, bytes and a clock in,
a checked ballot or a :class:`Problem` out, by the chain's own rules (``check_ballot``)."""

from __future__ import annotations

from ledger.errors import LedgerError, UnknownElection
from ledger.genesis import ElectionDef, Genesis
from ledger.rules import CheckedBallot, ProofCache, check_ballot, check_ballot_window
from node.gateway.problems import Problem, from_ledger_error

HEX_PATTERN = r"^([0-9a-f]{2})+$"
TRACKING_CODE_PATTERN = r"^[0-9a-f]{64}$"
ELECTION_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


def check_submission(
    genesis: Genesis, path_election: str, raw: bytes, now_ms: int, proofs: ProofCache | None = None
) -> CheckedBallot:
    """Everything the chain would check of this ballot alone, plus the URL's election and
    the election window at ``now_ms``. Raises :class:`Problem` with the ledger's code."""
    if genesis.election(path_election) is None:
        raise Problem("unknown_election", f"no election {path_election!r} on chain {genesis.chain_id!r}")
    try:
        checked = check_ballot(genesis, raw, proofs=proofs)
    except UnknownElection as exc:  # the URL names a real election; the ballot names another
        raise Problem("election_mismatch", exc.message) from None
    except LedgerError as exc:
        raise from_ledger_error(exc) from None
    if checked.envelope.election_id != path_election:
        raise Problem(
            "election_mismatch",
            f"ballot is for election {checked.envelope.election_id!r}, the URL names {path_election!r}",
        )
    try:
        check_ballot_window(checked, now_ms)
    except LedgerError as exc:
        raise from_ledger_error(exc) from None
    return checked


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
