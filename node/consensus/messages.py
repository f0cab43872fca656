"""Consensus wire messages: proposals and votes, signed, in canonical RLP.

A vote is signed over :func:`ledger.block.vote_digest`, the very digest a
:class:`~ledger.block.CommitCertificate` checks, so a quorum of precommits becomes a
certificate without re-signing. A proposal is signed over a digest of its own domain
("proposal/v1"), so no proposal signature can be replayed as a vote or anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ledger import codec
from ledger.block import MAX_BLOCK_BYTES, VoteKind, vote_digest
from ledger.crypto import SIGNATURE_SIZE, SigningKey, is_valid_signature
from ledger.errors import BadEncoding, BadSignature, LedgerError
from ledger.genesis import ValidatorSet
from ledger.hashing import HASH_SIZE, keccak256, tag, tagged_hash

PROPOSAL_TAG = tag("proposal/v1")
MAX_CHAIN_ID = 64
MAX_VOTE_BYTES = 512
MAX_PROPOSAL_BYTES = MAX_BLOCK_BYTES + 1024


def proposal_digest(
    chain_id: str, height: int, round_: int, block: bytes, valid_round: int
) -> bytes:
    """What a proposer signs: (chain, height, round, keccak256(block), valid round)."""
    return tagged_hash(
        PROPOSAL_TAG,
        codec.encode(
            [
                chain_id.encode(),
                codec.int_bytes(height),
                codec.int_bytes(round_),
                keccak256(block),
                codec.int_bytes(valid_round + 1),  # -1 (no valid round) encodes as 0
            ]
        ),
    )


def _decode_checked(data: bytes, max_size: int, what: str) -> list[codec.Item]:
    try:
        item = codec.decode(data, max_size=max_size)
    except LedgerError:
        raise
    except (ValueError, TypeError, IndexError) as exc:  # pragma: no cover - defensive
        raise BadEncoding(f"{what}: {exc}") from exc
    return codec.as_list(item, 7, what)


@dataclass(frozen=True)
class Proposal:
    chain_id: str
    height: int
    round: int
    block: bytes  # an encoded ledger Block
    valid_round: int  # -1: none
    proposer_index: int
    signature: bytes

    @property
    def sender(self) -> int:
        return self.proposer_index

    def digest(self) -> bytes:
        return proposal_digest(self.chain_id, self.height, self.round, self.block, self.valid_round)

    @classmethod
    def sign(
        cls,
        key: SigningKey,
        *,
        chain_id: str,
        height: int,
        round_: int,
        block: bytes,
        valid_round: int,
        proposer_index: int,
    ) -> Proposal:
        digest = proposal_digest(chain_id, height, round_, block, valid_round)
        return cls(chain_id, height, round_, block, valid_round, proposer_index, key.sign(digest))

    def verify(self, validators: ValidatorSet) -> None:
        """Raise BadSignature unless signed by the validator it names (any round's proposer)."""
        if not 0 <= self.proposer_index < len(validators):
            raise BadSignature(f"proposal names unknown validator {self.proposer_index}")
        key = validators.validators[self.proposer_index].public_key
        if not is_valid_signature(key, self.digest(), self.signature):
            raise BadSignature("proposal signature does not verify")

    def encode(self) -> bytes:
        if self.valid_round < -1:
            raise ValueError("valid_round must be -1 or more")
        return codec.encode(
            [
                self.chain_id.encode(),
                codec.int_bytes(self.height),
                codec.int_bytes(self.round),
                self.block,
                codec.int_bytes(self.valid_round + 1),
                codec.int_bytes(self.proposer_index),
                self.signature,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Proposal:
        f = _decode_checked(data, MAX_PROPOSAL_BYTES, "proposal")
        p = cls(
            chain_id=codec.as_text(f[0], "proposal chain id", max_size=MAX_CHAIN_ID),
            height=codec.as_int(f[1], "proposal height"),
            round=codec.as_int(f[2], "proposal round"),
            block=codec.as_bytes(f[3], "proposal block", max_size=MAX_BLOCK_BYTES),
            valid_round=codec.as_int(f[4], "proposal valid round") - 1,
            proposer_index=codec.as_int(f[5], "proposal proposer"),
            signature=codec.as_bytes(f[6], "proposal signature", size=SIGNATURE_SIZE),
        )
        if p.valid_round >= p.round:
            raise BadEncoding("proposal: valid round must be below the round")
        if p.encode() != data:  # pragma: no cover - the strict decoder already ensures it
            raise BadEncoding("proposal: non-canonical encoding")
        return p


@dataclass(frozen=True)
class Vote:
    chain_id: str
    kind: VoteKind
    height: int
    round: int
    block_hash: bytes  # b"" is a vote for nil
    validator_index: int
    signature: bytes

    @property
    def sender(self) -> int:
        return self.validator_index

    def digest(self) -> bytes:
        return vote_digest(self.chain_id, self.kind, self.height, self.round, self.block_hash)

    @property
    def is_nil(self) -> bool:
        return not self.block_hash

    @classmethod
    def sign(
        cls,
        key: SigningKey,
        *,
        chain_id: str,
        kind: VoteKind,
        height: int,
        round_: int,
        block_hash: bytes,
        validator_index: int,
    ) -> Vote:
        digest = vote_digest(chain_id, kind, height, round_, block_hash)
        return cls(chain_id, kind, height, round_, block_hash, validator_index, key.sign(digest))

    def verify(self, validators: ValidatorSet) -> None:
        if not 0 <= self.validator_index < len(validators):
            raise BadSignature(f"vote names unknown validator {self.validator_index}")
        key = validators.validators[self.validator_index].public_key
        if not is_valid_signature(key, self.digest(), self.signature):
            raise BadSignature("vote signature does not verify")

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.chain_id.encode(),
                codec.int_bytes(int(self.kind)),
                codec.int_bytes(self.height),
                codec.int_bytes(self.round),
                self.block_hash,
                codec.int_bytes(self.validator_index),
                self.signature,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Vote:
        f = _decode_checked(data, MAX_VOTE_BYTES, "vote")
        raw_kind = codec.as_int(f[1], "vote kind")
        if raw_kind not in (VoteKind.PREVOTE, VoteKind.PRECOMMIT):
            raise BadEncoding(f"vote: unknown kind {raw_kind}")
        block_hash = codec.as_bytes(f[4], "vote block hash")
        if len(block_hash) not in (0, HASH_SIZE):
            raise BadEncoding("vote: block hash must be empty (nil) or 32 bytes")
        v = cls(
            chain_id=codec.as_text(f[0], "vote chain id", max_size=MAX_CHAIN_ID),
            kind=VoteKind(raw_kind),
            height=codec.as_int(f[2], "vote height"),
            round=codec.as_int(f[3], "vote round"),
            block_hash=block_hash,
            validator_index=codec.as_int(f[5], "vote validator"),
            signature=codec.as_bytes(f[6], "vote signature", size=SIGNATURE_SIZE),
        )
        if v.encode() != data:  # pragma: no cover - the strict decoder already ensures it
            raise BadEncoding("vote: non-canonical encoding")
        return v


Message = Proposal | Vote
PROPOSAL_SLOT = 0  # the kind of a proposal in a signing slot; votes use their VoteKind (1, 2)


def signing_slot(message: Message) -> tuple[int, int, int]:
    """(height, round, kind): a validator signs at most one message per slot, ever."""
    kind = PROPOSAL_SLOT if isinstance(message, Proposal) else int(message.kind)
    return (message.height, message.round, kind)


class MessageType(IntEnum):
    PROPOSAL = 1
    VOTE = 2


def encode_message(message: Message) -> bytes:
    """One self-describing wire form for both kinds: RLP [type, encoded message]."""
    kind = MessageType.PROPOSAL if isinstance(message, Proposal) else MessageType.VOTE
    return codec.encode([codec.int_bytes(int(kind)), message.encode()])


def decode_message(data: bytes) -> Message:
    """Decode :func:`encode_message` output; BadEncoding on anything else."""
    f = codec.as_list(codec.decode(data, max_size=MAX_PROPOSAL_BYTES + 16), 2, "message")
    kind = codec.as_int(f[0], "message type")
    body = codec.as_bytes(f[1], "message body")
    if kind == MessageType.PROPOSAL:
        return Proposal.decode(body)
    if kind == MessageType.VOTE:
        return Vote.decode(body)
    raise BadEncoding(f"message: unknown type {kind}")
