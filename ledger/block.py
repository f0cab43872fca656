"""Block headers, blocks, votes, commit certificates and checkpoints.

A block at height h carries the commit certificate of block h-1 and its header commits to
that certificate's hash, so the chain embeds every certificate but the tip's; the tip's
travels beside it as a :class:`Checkpoint`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum

from ledger import codec
from ledger.codec import Item
from ledger.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, is_valid_signature
from ledger.errors import (
    BadCertificate,
    BadEncoding,
    BadSignature,
    BadValidatorSet,
    InsufficientQuorum,
    LedgerError,
)
from ledger.genesis import ValidatorSet
from ledger.hashing import HASH_SIZE, ZERO_HASH, tag, tagged_hash

HEADER_TAG = tag("header/v1")
VOTE_TAG = tag("vote/v1")
CERTIFICATE_TAG = tag("certificate/v1")
TXS_TAG = tag("transactions/v1")
MAX_BLOCK_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 4096
MAX_CERTIFICATE_BYTES = 65536
MAX_CHECKPOINT_BYTES = 1 << 20


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """Turn stray decoder errors into BadEncoding: a decoder must never crash a node."""
    try:
        yield
    except LedgerError:
        raise
    except (ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise BadEncoding(f"{what}: {exc}") from exc


@dataclass(frozen=True)
class BlockHeader:
    chain_id: str
    height: int
    time_ms: int
    parent_hash: bytes
    proposer: bytes
    validator_set_hash: bytes
    log_size: int
    log_root: bytes
    state_root: bytes
    txs_hash: bytes
    last_commit_hash: bytes
    _encoded: bytes = field(init=False, repr=False, compare=False)
    _hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = codec.encode(
            [
                self.chain_id.encode(),
                codec.int_bytes(self.height),
                codec.int_bytes(self.time_ms),
                self.parent_hash,
                self.proposer,
                self.validator_set_hash,
                codec.int_bytes(self.log_size),
                self.log_root,
                self.state_root,
                self.txs_hash,
                self.last_commit_hash,
            ]
        )
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(self, "_hash", tagged_hash(HEADER_TAG, encoded))

    def encode(self) -> bytes:
        return self._encoded

    def hash(self) -> bytes:
        return self._hash

    @classmethod
    def from_item(cls, item: Item) -> BlockHeader:
        f = codec.as_list(item, 11, "header")
        with _decoding("header"):
            return cls(
                chain_id=codec.as_text(f[0], "header chain id", max_size=64),
                height=codec.as_int(f[1], "header height"),
                time_ms=codec.as_int(f[2], "header time"),
                parent_hash=codec.as_bytes(f[3], "header parent hash", size=HASH_SIZE),
                proposer=codec.as_bytes(f[4], "header proposer", size=PUBLIC_KEY_SIZE),
                validator_set_hash=codec.as_bytes(f[5], "header validator set hash", size=HASH_SIZE),
                log_size=codec.as_int(f[6], "header log size"),
                log_root=codec.as_bytes(f[7], "header log root", size=HASH_SIZE),
                state_root=codec.as_bytes(f[8], "header state root", size=HASH_SIZE),
                txs_hash=codec.as_bytes(f[9], "header transactions hash", size=HASH_SIZE),
                last_commit_hash=codec.as_bytes(f[10], "header last commit hash", size=HASH_SIZE),
            )

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        header = cls.from_item(codec.decode(data, max_size=MAX_HEADER_BYTES))
        if header.encode() != data:
            raise BadEncoding("header: non-canonical encoding")
        return header


class VoteKind(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


def vote_digest(chain_id: str, kind: VoteKind, height: int, round_: int, block_hash: bytes) -> bytes:
    """What a validator signs for a vote; ``block_hash`` is empty for a nil vote."""
    return tagged_hash(
        VOTE_TAG,
        codec.encode(
            [
                chain_id.encode(),
                codec.int_bytes(int(kind)),
                codec.int_bytes(height),
                codec.int_bytes(round_),
                block_hash,
            ]
        ),
    )


@dataclass(frozen=True)
class CommitSignature:
    validator_index: int
    signature: bytes


@dataclass(frozen=True)
class CommitCertificate:
    """Precommits of more than 2/3 of the voting power for (chain, height, round, block)."""

    chain_id: str
    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSignature, ...]

    def item(self) -> Item:
        return [
            self.chain_id.encode(),
            codec.int_bytes(self.height),
            codec.int_bytes(self.round),
            self.block_hash,
            [[codec.int_bytes(s.validator_index), s.signature] for s in self.signatures],
        ]

    def encode(self) -> bytes:
        return codec.encode(self.item())

    def hash(self) -> bytes:
        return tagged_hash(CERTIFICATE_TAG, self.encode())

    @classmethod
    def from_item(cls, item: Item) -> CommitCertificate:
        f = codec.as_list(item, 5, "certificate")
        sigs = []
        for i, s in enumerate(codec.as_list(f[4], None, "certificate signatures")):
            pair = codec.as_list(s, 2, f"certificate signature {i}")
            sigs.append(
                CommitSignature(
                    codec.as_int(pair[0], "certificate validator index"),
                    codec.as_bytes(pair[1], "certificate signature", size=SIGNATURE_SIZE),
                )
            )
        with _decoding("certificate"):
            return cls(
                chain_id=codec.as_text(f[0], "certificate chain id", max_size=64),
                height=codec.as_int(f[1], "certificate height"),
                round=codec.as_int(f[2], "certificate round"),
                block_hash=codec.as_bytes(f[3], "certificate block hash", size=HASH_SIZE),
                signatures=tuple(sigs),
            )

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        cert = cls.from_item(codec.decode(data, max_size=MAX_CERTIFICATE_BYTES))
        if cert.encode() != data:
            raise BadEncoding("certificate: non-canonical encoding")
        return cert

    def digest(self) -> bytes:
        return vote_digest(self.chain_id, VoteKind.PRECOMMIT, self.height, self.round, self.block_hash)

    def check(self, validators: ValidatorSet, *, chain_id: str, height: int, block_hash: bytes) -> None:
        """Refuse unless this certifies ``block_hash`` at ``height`` with a quorum.

        Signers must be listed once each in increasing validator order, so one signature
        can never be counted twice and each certificate has one canonical form.
        """
        if self.chain_id != chain_id:
            raise BadCertificate(f"certificate is for chain {self.chain_id!r}, not {chain_id!r}")
        if self.height != height:
            raise BadCertificate(f"certificate is for height {self.height}, not {height}")
        if self.block_hash != block_hash:
            raise BadCertificate(
                f"certificate is for block {self.block_hash.hex()[:16]}, not {block_hash.hex()[:16]}"
            )
        digest = self.digest()
        power = 0
        previous = -1
        for s in self.signatures:
            if s.validator_index <= previous:
                raise BadCertificate("certificate signers must be unique and in increasing order")
            previous = s.validator_index
            if s.validator_index >= len(validators):
                raise BadCertificate(f"certificate names unknown validator {s.validator_index}")
            validator = validators.validators[s.validator_index]
            if not is_valid_signature(validator.public_key, digest, s.signature):
                raise BadSignature(f"certificate signature of validator {validator.name} does not verify")
            power += validator.power
        if not validators.has_quorum(power):
            raise InsufficientQuorum(
                f"certificate carries {power} of {validators.total_power} voting power; more than 2/3 needed"
            )

    @classmethod
    def create(
        cls,
        keys: Sequence[tuple[int, SigningKey]],
        *,
        chain_id: str,
        height: int,
        round_: int,
        block_hash: bytes,
    ) -> CommitCertificate:
        """Sign with the given (validator index, key) pairs (tests, single-validator chains)."""
        digest = vote_digest(chain_id, VoteKind.PRECOMMIT, height, round_, block_hash)
        sigs = tuple(CommitSignature(i, k.sign(digest)) for i, k in sorted(keys, key=lambda p: p[0]))
        return cls(chain_id, height, round_, block_hash, sigs)


def transactions_hash(txs: Sequence[bytes]) -> bytes:
    return tagged_hash(TXS_TAG, codec.encode(list(txs)))


EMPTY_TXS_HASH = transactions_hash(())


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    ballots: tuple[bytes, ...]  # encoded BallotEnvelopes, in log order
    transactions: tuple[bytes, ...]
    last_commit: CommitCertificate | None

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.header.encode(),
                list(self.ballots),
                list(self.transactions),
                [] if self.last_commit is None else [self.last_commit.item()],
            ]
        )

    def hash(self) -> bytes:
        return self.header.hash()

    @property
    def height(self) -> int:
        return self.header.height

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = MAX_BLOCK_BYTES) -> Block:
        f = codec.as_list(codec.decode(data, max_size=max_size), 4, "block")
        header = BlockHeader.decode(codec.as_bytes(f[0], "block header"))
        ballots = codec.as_bytes_list(f[1], "block ballots")
        txs = codec.as_bytes_list(f[2], "block transactions")
        lc = codec.as_list(f[3], None, "block last commit")
        if len(lc) > 1:
            raise BadEncoding("block: at most one last commit")
        last_commit = CommitCertificate.from_item(lc[0]) if lc else None
        # No re-encoding check: the codec refuses every non-canonical form and each field
        # reader is exact, so the decoded block encodes to ``data`` (the tests hold it).
        return cls(header, ballots, txs, last_commit)


def last_commit_hash(cert: CommitCertificate | None) -> bytes:
    return ZERO_HASH if cert is None else cert.hash()


@dataclass(frozen=True)
class Checkpoint:
    """A header with the certificate that finalized it: what receipts are proven against."""

    header: BlockHeader
    certificate: CommitCertificate

    def encode(self) -> bytes:
        return codec.encode([self.header.encode(), self.certificate.item()])

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        f = codec.as_list(codec.decode(data, max_size=MAX_CHECKPOINT_BYTES), 2, "checkpoint")
        cp = cls(BlockHeader.decode(codec.as_bytes(f[0], "checkpoint header")), CommitCertificate.from_item(f[1]))
        if cp.encode() != data:
            raise BadEncoding("checkpoint: non-canonical encoding")
        return cp

    def check(self, validators: ValidatorSet) -> None:
        """Its certificate holds a quorum of ``validators``, which must be the set its
        header names: the set in force at its height (``ledger.validators``). Offline
        checkers that know only genesis pass genesis's set, and a checkpoint made after
        a set change is refused with ``bad_validator_set`` rather than a bad signature."""
        if self.header.validator_set_hash != validators.hash():
            raise BadValidatorSet(
                f"the checkpoint at height {self.header.height} names a validator set other than the one "
                "it is checked against (a set change is in force there: check it with the chain's "
                "set at that height, as `ballotledger verify` does)")
        self.certificate.check(
            validators, chain_id=self.header.chain_id, height=self.header.height, block_hash=self.header.hash()
        )
