"""The voter's side of an encrypted election: choices in, a signed encrypted ballot out.

Runs on the voter's device (the reference client, ``ballotledger vote``): the choice is
encrypted before the ballot leaves it, so no gateway, validator, log or bundle ever holds
it. A Benaloh audit (:func:`audit_ballot`) makes a ballot the same way and opens it
instead of casting it, so the voter can check that the device encrypted what they chose.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.ballot import BallotEnvelope, CredentialProof
from ledger.crypto import SigningKey
from ledger.encrypted_ballot import BallotOpening, EncryptedBallot, check_opening, encrypt_ballot
from ledger.errors import BadEncoding, ElectionNotOpen
from ledger.genesis import ElectionDef
from ledger.group import Rng, random_scalar
from ledger.rules import ballot_context

Selections = Sequence[Sequence[int]]  # per contest, the indices of the choices selected


def selection_vectors(election: ElectionDef, selected: Selections) -> list[list[int]]:
    """Per contest, 1 for each selected choice and 0 for the others; refuses a choice out
    of range, a choice twice, or more than the contest's limit."""
    if not election.encrypted:
        raise BadEncoding(f"election {election.election_id} is not an encrypted election")
    if len(selected) != len(election.contests):
        raise BadEncoding(f"{len(selected)} contests answered, the election has {len(election.contests)}")
    vectors = []
    for i, (picks, contest) in enumerate(zip(selected, election.contests, strict=True)):
        if len(set(picks)) != len(picks) or any(not 0 <= p < len(contest.choices) for p in picks):
            raise BadEncoding(f"contest {i}: choices must be distinct, from 0 to {len(contest.choices) - 1}")
        if len(picks) > contest.limit:
            raise BadEncoding(f"contest {i}: {len(picks)} choices selected, the limit is {contest.limit}")
        vectors.append([int(j in picks) for j in range(len(contest.choices))])
    return vectors


def encrypted_ballot(
    key: SigningKey,
    *,
    chain_id: str,
    election: ElectionDef,
    proof: CredentialProof,
    selected: Selections,
    rng: Rng = random_scalar,
) -> tuple[BallotEnvelope, BallotOpening]:
    """Encrypt ``selected`` under the election's joint key, prove it well formed, sign.

    The opening reveals the vote: keep it only for an audit, never with a cast ballot.
    """
    vectors = selection_vectors(election, selected)
    if not election.joint_key:
        raise ElectionNotOpen(f"election {election.election_id} has no key yet: its trustees' ceremony is not over")
    context = ballot_context(chain_id, election, key.public_key)
    payload, opening = encrypt_ballot(context, vectors, rng)
    envelope = BallotEnvelope.create(
        key, chain_id=chain_id, election_id=election.election_id, proof=proof, payload=payload.encode()
    )
    return envelope, opening


def audit_ballot(
    key: SigningKey, *, chain_id: str, election: ElectionDef, proof: CredentialProof, selected: Selections
) -> tuple[BallotEnvelope, BallotOpening]:
    """A Benaloh challenge: a ballot made exactly as :func:`encrypted_ballot` makes it,
    with its opening checked against it. The caller shows both and must not cast it."""
    envelope, opening = encrypted_ballot(key, chain_id=chain_id, election=election, proof=proof, selected=selected)
    context = ballot_context(chain_id, election, key.public_key)
    check_opening(context, EncryptedBallot.decode(envelope.payload, max_size=len(envelope.payload)), opening)
    return envelope, opening
