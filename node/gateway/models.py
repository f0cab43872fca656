"""The wire models: what the OpenAPI schema promises and the handlers send."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger.ballot import MAX_ENVELOPE_BYTES
from node.gateway.admission import HEX_PATTERN


class SubmitBallot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ballot: str = Field(
        pattern=HEX_PATTERN,
        min_length=2,
        max_length=2 * MAX_ENVELOPE_BYTES,
        description="Lower-case hex of the ballot envelope's canonical RLP encoding.",
    )


class Accepted(BaseModel):
    tracking_code: str = Field(description="keccak256 of the envelope, hex: the voter keeps it.")
    receipt_url: str


class ProblemDetail(BaseModel):
    """RFC 9457 problem details; ``code`` is the stable machine-readable reason."""

    model_config = ConfigDict(title="Problem")
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


class ReceiptBody(BaseModel):
    """A voter receipt (ballot-ledger/receipt/v1), as the validators issue it."""

    format: str
    chain_id: str
    election_id: str
    tracking_code: str
    log_index: int
    height: int
    checkpoint: str
    inclusion_proof: list[str]


class ChainRefusal(BaseModel):
    code: str
    detail: str


class ReceiptStatus(BaseModel):
    status: Literal["pending", "final", "rejected"]
    tracking_code: str
    receipt: ReceiptBody | None = None
    error: ChainRefusal | None = None


class RecordedBallot(BaseModel):
    """A recorded ballot's canonical bytes: its keccak256 is the tracking code, so a reader
    checks them without trusting the gateway (an encrypted ballot's proofs included)."""

    tracking_code: str
    height: int
    log_index: int
    ballot: str = Field(description="The ballot envelope's canonical encoding, hex.")


class Counts(BaseModel):
    height: int
    ballots_recorded: int
    ballots_counted: int
    tally: dict[str, int] | None = None


class ContestView(BaseModel):
    question: str
    choices: list[str]
    limit: int = Field(description="At most this many of the contest's choices may be selected.")


class ElectionView(BaseModel):
    election_id: str
    chain_id: str
    question: str
    choices: list[str]
    credential_root: str
    credential_count: int
    opens_at_ms: int
    closes_at_ms: int
    revoting: str
    payload_scheme: str
    contests: list[ContestView] = Field(
        default_factory=list,
        description="An encrypted election's contests: its ballots hold one encrypted selection per choice "
                    "of each, in order. Empty for other elections (they ask `question` with `choices`).",
    )
    joint_key: str | None = Field(
        default=None,
        description="An encrypted election's joint public key (33-byte compressed secp256k1, hex): what the "
                    "voter's device encrypts every selection to; empty until its trustees' ceremony ends. "
                    "Null for other elections.",
    )
    trustees: list[str] = Field(
        default_factory=list,
        description="An encrypted election's trustees (their public keys, hex), whose key ceremony on chain made "
                    "`joint_key`; empty where the definition names the key itself.",
    )
    threshold: int = Field(default=0, description="How many trustees' decryption shares give the result.")
    phase: Literal["setup", "open", "closed", "tallied"]
    counts: Counts | None = Field(description="Counts so far from a validator; null if none answered.")
    result: Counts | None = Field(description="The final count, once the election has closed.")


class Health(BaseModel):
    status: Literal["ok"]


class ValidatorHealth(BaseModel):
    url: str
    up: bool
    height: int


class Readiness(BaseModel):
    status: Literal["ready"]
    outbox_open: bool
    outbox_depth: int
    validators: list[ValidatorHealth]


class ElectionList(BaseModel):
    chain_id: str
    elections: list[ElectionView]


class ValidatorView(BaseModel):
    index: int
    name: str
    public_key: str = Field(description="33-byte compressed secp256k1 key, hex.")
    power: int


class ChainView(BaseModel):
    """The chain's genesis and validator set: what receipts and checkpoints are checked against."""

    chain_id: str
    genesis_hash: str = Field(description="keccak256 of the genesis's canonical encoding under its domain tag: "
                                          "compare it with the one the election commission published.")
    validator_set_hash: str
    validators: list[ValidatorView]
    genesis: dict[str, Any] = Field(description="The genesis file (ballot-ledger/genesis/v1): a client recomputes "
                                                "`genesis_hash` from it rather than trusting the field above.")


class CheckpointView(BaseModel):
    height: int
    time_ms: int
    log_size: int
    log_root: str
    block_hash: str
    checkpoint: str = Field(description="The checkpoint's canonical encoding (header and commit certificate), hex: "
                                        "what `ballotledger checkpoint compare` and receipts take.")


class ConsistencyView(BaseModel):
    old_size: int
    new_size: int
    proof: list[str] = Field(description="RFC 9162 consistency proof (keccak256), hex hashes.")


class BlockSummary(BaseModel):
    height: int
    time_ms: int
    block_hash: str
    proposer: str = Field(description="The proposer's validator name.")
    ballots: int
    transactions: int
    log_size: int
    signers: list[int] = Field(description="Indices of the validators whose precommits finalized the block.")
    round: int


class ValidatorActivity(BaseModel):
    index: int
    name: str
    last_signed_height: int | None = Field(description="The latest of the recent blocks this validator signed; "
                                                       "null if it signed none of them.")


class RecentBlocks(BaseModel):
    height: int
    blocks: list[BlockSummary] = Field(description="The most recent blocks, newest first.")
    validators: list[ValidatorActivity]
