"""Making elections for demos, tests and benchmarks: keys, credentials and a genesis.

Deterministic from a seed so runs can be repeated; real elections generate keys with
``SigningKey.generate`` and keep them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.ballot import BallotEnvelope
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey
from ledger.genesis import ChainParams, ElectionDef, Genesis, ValidatorInfo, ValidatorSet

DAY_MS = 86_400_000


@dataclass
class ElectionKit:
    genesis: Genesis
    validator_keys: list[SigningKey]
    authority_key: SigningKey
    voters: list[SigningKey]
    credentials: CredentialSet
    election_id: str

    def ballot(self, voter: int, choice: int) -> BallotEnvelope:
        key = self.voters[voter]
        return BallotEnvelope.create(
            key,
            chain_id=self.genesis.chain_id,
            election_id=self.election_id,
            proof=self.credentials.proof(key.public_key),
            payload=bytes([choice]),
        )


def make_election(
    *,
    validators: int = 1,
    voters: int = 100,
    seed: str = "demo",
    chain_id: str = "demo-chain",
    election_id: str = "board-2026",
    choices: tuple[str, ...] = ("yes", "no", "abstain"),
    genesis_time_ms: int = 1_700_000_000_000,
    revoting: str = "first-counts",
    params: ChainParams | None = None,
) -> ElectionKit:
    vkeys = [SigningKey.from_seed(f"{seed}/validator/{i}".encode()) for i in range(validators)]
    authority = SigningKey.from_seed(f"{seed}/authority".encode())
    voter_keys = [SigningKey.from_seed(f"{seed}/voter/{i}".encode()) for i in range(voters)]
    credentials = CredentialSet([k.public_key for k in voter_keys])
    genesis = demo_genesis(
        chain_id=chain_id, validator_keys=vkeys, authority=authority, credentials=credentials,
        election_id=election_id, choices=choices, genesis_time_ms=genesis_time_ms,
        opens_at_ms=genesis_time_ms, closes_at_ms=genesis_time_ms + 3650 * DAY_MS,
        revoting=revoting, params=params or ChainParams(),
    )
    return ElectionKit(genesis, vkeys, authority, voter_keys, credentials, election_id)


def demo_genesis(
    *,
    chain_id: str,
    validator_keys: Sequence[SigningKey],
    authority: SigningKey,
    credentials: CredentialSet,
    election_id: str,
    choices: tuple[str, ...],
    genesis_time_ms: int,
    opens_at_ms: int,
    closes_at_ms: int,
    revoting: str = "first-counts",
    params: ChainParams | None = None,
) -> Genesis:
    """A genesis with equal-power validators and one plaintext-choice election."""
    election = ElectionDef(
        election_id=election_id,
        question="Do you approve the board's proposal?",
        choices=choices,
        credential_root=credentials.root,
        credential_count=len(credentials),
        opens_at_ms=opens_at_ms,
        closes_at_ms=closes_at_ms,
        revoting=revoting,
    )
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=genesis_time_ms,
        authority=authority.public_key,
        validators=ValidatorSet(
            tuple(ValidatorInfo(f"validator-{i}", k.public_key, 1) for i, k in enumerate(validator_keys))
        ),
        params=params or ChainParams(),
        elections=(election,),
    )
