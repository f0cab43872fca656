"""Shared fixtures for the secret-ballot tests: a key, a context, a lying prover."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.crypto import SigningKey
from ledger.elgamal import Blinder, EncryptedSum, encrypt
from ledger.encrypted_ballot import (
    CONTEST_DOMAIN,
    SELECTION_DOMAIN,
    BallotContext,
    ContestShape,
    EncryptedBallot,
    EncryptedContest,
    EncryptedSelection,
    _contest_statement,
    _selection_statement,
    ballot_statement,
)
from ledger.group import ORDER, base_mul, random_scalar
from ledger.sigma import prove_range


def make_context(
    shape: Sequence[tuple[int, int]] = ((5, 1),), *, secret: int | None = None, voter: bytes = b"voter-1",
    chain: str = "chain-a", election: str = "e-2026",
) -> tuple[int, BallotContext]:
    x = secret if secret is not None else random_scalar()
    key = base_mul(x)
    assert key is not None
    contests = tuple(ContestShape(c, limit) for c, limit in shape)
    return x, BallotContext(chain, election, key.encode(), SigningKey.from_seed(voter).public_key, contests)


def forge_ballot(
    context: BallotContext, actual: Sequence[Sequence[int]], claimed: Sequence[Sequence[int]],
    claimed_sums: Sequence[int] | None = None,
) -> EncryptedBallot:
    """A ballot encrypting ``actual`` whose proofs are made as if it held ``claimed``
    (what a cheating client would send)."""
    key = context.key
    blinder = Blinder()
    nonces = [[random_scalar() for _ in row] for row in actual]
    cts = [
        [encrypt(key, m, r, blinder) for m, r in zip(ms, rs, strict=True)]
        for ms, rs in zip(actual, nonces, strict=True)
    ]
    statement = ballot_statement(context, [c for row in cts for c in row])
    contests = []
    for ci, row in enumerate(cts):
        sels = tuple(
            EncryptedSelection(ct, prove_range(key, ct, claimed[ci][si], nonces[ci][si], 1, SELECTION_DOMAIN,
                                               _selection_statement(statement, ci, si, ct), blinder))
            for si, ct in enumerate(row)
        )
        total = EncryptedSum.of(row)
        claimed_sum = sum(claimed[ci]) if claimed_sums is None else claimed_sums[ci]
        proof = prove_range(key, total, claimed_sum, sum(nonces[ci]) % ORDER, context.contests[ci].limit,
                            CONTEST_DOMAIN, _contest_statement(statement, ci, total), blinder)
        contests.append(EncryptedContest(sels, proof))
    return EncryptedBallot(tuple(contests))
