"""RFC 9457 problem details: every refusal the gateway makes, as plain data.

Pure: no FastAPI here. Ledger refusals keep their ledger code; the gateway adds its own
codes for what only HTTP can get wrong (auth, limits, routing, upstream availability).
"""

from __future__ import annotations

from typing import Any

from ledger.errors import LedgerError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://ballot-ledger.invalid/problems/"

# code -> (HTTP status, title). The codes are an API: never rename one.
PROBLEM_TABLE: dict[str, tuple[int, str]] = {
    # ledger refusals (codes from ledger.errors)
    "bad_encoding": (400, "Ballot is not a canonical envelope"),
    "oversized": (413, "Ballot exceeds the chain's size limit"),
    "bad_signature": (422, "Ballot signature does not verify"),
    "not_in_credential_set": (422, "Credential is not registered for this election"),
    "wrong_chain": (422, "Ballot is for another chain"),
    "unknown_election": (404, "No such election"),
    "election_not_open": (409, "Election is not open"),
    "duplicate_credential": (409, "Credential has already voted"),
    "mempool_full": (503, "Validators are saturated"),
    "bad_ballot_proof": (422, "An encrypted ballot's proof does not verify"),
    "bad_ballot_shape": (400, "Encrypted ballot does not match the election's contests"),
    "bad_point": (400, "Not a point of the election's group"),
    "bad_scalar": (400, "Not a canonical scalar of the election's group"),
    # gateway refusals
    "election_mismatch": (422, "Ballot is for another election than the URL names"),
    "validation_error": (422, "Request does not match the schema"),
    "unauthorized": (401, "Missing or unknown API key"),
    "rate_limited": (429, "Too many requests"),
    "payload_too_large": (413, "Request body too large"),
    "too_deep": (400, "Request body nests too deep"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "unsupported_media_type": (415, "Request body must be application/json"),
    "unavailable": (503, "Service unavailable"),
    "internal_error": (500, "Internal error"),
}

# Ledger codes the gateway never expects from check_ballot but may hear from a node.
_FALLBACK_LEDGER = (422, "Ballot refused by the ledger rules")


class Problem(Exception):
    """A refusal ready to send: raise it anywhere in a request, the app renders it."""

    def __init__(self, code: str, detail: str, *, status: int = 0, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status or status_of(code)
        self.headers = headers or {}

    @property
    def title(self) -> str:
        return PROBLEM_TABLE.get(self.code, _FALLBACK_LEDGER)[1]

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance is not None:
            out["instance"] = instance
        return out


def status_of(code: str) -> int:
    return PROBLEM_TABLE.get(code, _FALLBACK_LEDGER)[0]


def from_ledger_error(exc: LedgerError) -> Problem:
    """A ledger refusal as a problem with the same stable code."""
    detail = exc.message if exc.where is None else f"{exc.where}: {exc.message}"
    return Problem(exc.code, detail)


def statuses_for(codes: list[str]) -> set[int]:
    return {status_of(c) for c in codes}
