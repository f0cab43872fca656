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
from ledger.encrypted_ballot import BallotOpening
from ledger.genesis import ENCRYPTED_SCHEME, ChainParams, Contest, ElectionDef, Genesis, ValidatorInfo, ValidatorSet
from ledger.group import base_mul, hash_to_scalar
from ledger.hashing import tag
from ledger.voter import Selections, encrypted_ballot

DAY_MS = 86_400_000
DEMO_CONTESTS = (Contest("Who should chair the board?", ("ada", "grace", "alan", "edsger", "barbara"), 1),)
_KIT_KEY_TAG = tag("demo-election-key/v1")


@dataclass
class ElectionKit:
    genesis: Genesis
    validator_keys: list[SigningKey]
    authority_key: SigningKey
    voters: list[SigningKey]
    credentials: CredentialSet
    election_id: str
    # An encrypted election's decryption key: the kit stands in for its trustees (tests
    # and benchmarks only; real elections run the trustees' key ceremony).
    election_secret: int | None = None

    @property
    def election(self) -> ElectionDef:
        election = self.genesis.election(self.election_id)
        assert election is not None
        return election

    def encrypted_ballot(self, voter: int, selected: Selections) -> tuple[BallotEnvelope, BallotOpening]:
        key = self.voters[voter]
        return encrypted_ballot(
            key, chain_id=self.genesis.chain_id, election=self.election,
            proof=self.credentials.proof(key.public_key), selected=selected,
        )

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
    contests: tuple[Contest, ...] | None = None,
) -> ElectionKit:
    """A kit for one election: plaintext choices, or with ``contests`` an encrypted
    election whose key the kit holds (derived from ``seed``)."""
    vkeys = [SigningKey.from_seed(f"{seed}/validator/{i}".encode()) for i in range(validators)]
    authority = SigningKey.from_seed(f"{seed}/authority".encode())
    voter_keys = [SigningKey.from_seed(f"{seed}/voter/{i}".encode()) for i in range(voters)]
    credentials = CredentialSet([k.public_key for k in voter_keys])
    secret = hash_to_scalar(_KIT_KEY_TAG, seed.encode()) if contests else None
    genesis = demo_genesis(
        chain_id=chain_id, validator_keys=vkeys, authority=authority, credentials=credentials,
        election_id=election_id, choices=choices, genesis_time_ms=genesis_time_ms,
        opens_at_ms=genesis_time_ms, closes_at_ms=genesis_time_ms + 3650 * DAY_MS,
        revoting=revoting, params=params or ChainParams(), contests=contests, election_secret=secret,
    )
    return ElectionKit(genesis, vkeys, authority, voter_keys, credentials, election_id, secret)


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
    contests: tuple[Contest, ...] | None = None,
    election_secret: int | None = None,
) -> Genesis:
    """A genesis with equal-power validators and one election: plaintext choices, or with
    ``contests`` and ``election_secret`` an encrypted one under the key g^secret."""
    if contests:
        key = base_mul(election_secret or 0)
        assert key is not None, "an encrypted election needs a nonzero secret"
        election = ElectionDef(
            election_id=election_id, question="Board election", choices=(), credential_root=credentials.root,
            credential_count=len(credentials), opens_at_ms=opens_at_ms, closes_at_ms=closes_at_ms,
            revoting=revoting, payload_scheme=ENCRYPTED_SCHEME, contests=contests, joint_key=key.encode(),
        )
    else:
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
