"""The ballot envelope, the unit a voter signs and the log records.

The envelope's keccak256 is the voter's tracking code, and the tracking code is the
leaf of the ballot log, so the log root in each header commits to every ballot.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger import codec
from ledger.ballot_fast import HASH_ITEM_SIZE, read_common_shape
from ledger.codec import Item
from ledger.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey
from ledger.errors import BadEncoding, LedgerError, Oversized
from ledger.hashing import HASH_SIZE, keccak256, keccak_new, tag

BALLOT_TAG = tag("ballot/v1")
MAX_ENVELOPE_BYTES = 16384  # hard ceiling; the genesis parameter is usually lower
MAX_PATH = 64
MAX_TEXT_BYTES = 64  # chain and election ids


_HASH_ITEM_PREFIX = b"\xa0"  # RLP's (only canonical) prefix of a 32-byte string


@dataclass(frozen=True)
class CredentialProof:
    """Inclusion proof of the credential (as a leaf) in the election's credential tree.

    The path is held as it is encoded in the ballot (each hash after its one-byte RLP
    prefix), so decoding a ballot slices it out once instead of making a string per
    hash: the proof cache needs only the lowest few hashes apart. ``path`` gives them all.
    """

    index: int
    encoded_path: bytes

    @classmethod
    def of(cls, index: int, path: Sequence[bytes]) -> CredentialProof:
        if any(len(p) != HASH_SIZE for p in path):
            raise BadEncoding("credential proof path: every hash is 32 bytes")
        return cls(index, b"".join(_HASH_ITEM_PREFIX + p for p in path))

    @property
    def depth(self) -> int:
        return len(self.encoded_path) // HASH_ITEM_SIZE

    def __post_init__(self) -> None:
        if not codec.is_hash_list(self.encoded_path, 0, len(self.encoded_path)):
            raise BadEncoding("credential proof path: not an encoded list of 32-byte hashes")

    @classmethod
    def _trusted(cls, index: int, encoded_path: bytes) -> CredentialProof:
        """A proof from fields a decoder has just checked (see ``BallotEnvelope._trusted``)."""
        proof = object.__new__(cls)
        proof.__dict__.update(index=index, encoded_path=encoded_path)
        return proof

    @property
    def path(self) -> tuple[bytes, ...]:
        hashes = codec.read_hash_list(self.encoded_path, 0, len(self.encoded_path))
        assert hashes is not None  # checked at construction
        return tuple(hashes)

    def item(self) -> Item:
        return [codec.int_bytes(self.index), list(self.path)]

    @classmethod
    def from_item(cls, item: Item) -> CredentialProof:
        fields = codec.as_list(item, 2, "credential proof")
        return cls.of(
            codec.as_int(fields[0], "credential proof index"),
            codec.as_bytes_list(fields[1], "credential proof path", size=HASH_SIZE, max_items=MAX_PATH),
        )


def ballot_digest(chain_id: str, election_id: str, credential: bytes, payload: bytes) -> bytes:
    """What the credential key signs: the ballot bound to one chain and one election,
    keccak256(BALLOT_TAG || rlp([chain id, election id, credential, payload]))."""
    prefix = _digest_prefix(chain_id, election_id)
    body = prefix + codec.encode(credential) + codec.encode(payload)
    return keccak256(BALLOT_TAG + codec.list_header(len(body)) + body)


@functools.lru_cache(maxsize=64)
def _digest_prefix(chain_id: str, election_id: str) -> bytes:
    return codec.encode(chain_id.encode()) + codec.encode(election_id.encode())


@dataclass(frozen=True)
class BallotEnvelope:
    chain_id: str
    election_id: str
    credential: bytes
    proof: CredentialProof
    payload: bytes
    signature: bytes
    _encoded: bytes = field(init=False, repr=False, compare=False)

    def _encode(self) -> bytes:
        return codec.encode(
            [
                self.chain_id.encode(),
                self.election_id.encode(),
                self.credential,
                self.proof.item(),
                self.payload,
                self.signature,
            ]
        )

    def encode(self) -> bytes:
        # Computed once; a decoded envelope keeps the bytes it came from, which the strict
        # codec guarantees are the canonical encoding (tests check decode/encode identity).
        cached = self.__dict__.get("_encoded")
        if cached is None:
            cached = self._encode()
            object.__setattr__(self, "_encoded", cached)
        return cached

    @property
    def tracking_code(self) -> bytes:
        cached = self.__dict__.get("_tracking_code")
        if cached is None:
            cached = keccak256(self.encode())
            object.__setattr__(self, "_tracking_code", cached)
        return cached

    def digest(self) -> bytes:
        """What the credential key signs (see :func:`ballot_digest`)."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            cached = ballot_digest(self.chain_id, self.election_id, self.credential, self.payload)
            object.__setattr__(self, "_digest", cached)
        return cached

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = MAX_ENVELOPE_BYTES) -> BallotEnvelope:
        """Strict decoding: the fast reader (``ledger.ballot_fast``) for the shape every
        real ballot has, the plain reader (:meth:`decode_plain`) for anything else. Both
        accept exactly what the strict codec with the field readers accepts (the tests
        hold them to that); this runs for every ballot a validator admits and every
        ballot a verifier replays."""
        data = bytes(data)
        if len(data) > max_size:
            raise Oversized(f"ballot: {len(data)} bytes exceeds the limit of {max_size}")
        fast = read_common_shape(data, MAX_PATH)
        if fast is None:
            return cls.decode_plain(data)
        # The hashes every check needs, made now: the signed one from the encoding's own
        # spans (what ballot_digest encodes again, byte for byte).
        return cls._trusted(
            fast.chain_id, fast.election_id, fast.credential,
            CredentialProof._trusted(fast.proof_index, fast.proof_path), fast.payload, fast.signature,
            encoded=data, tracking_code=keccak_new(data).digest(),
            digest=keccak_new(BALLOT_TAG + codec.list_header(len(fast.signed)) + fast.signed).digest(),
        )

    @classmethod
    def decode_plain(cls, data: bytes) -> BallotEnvelope:
        """The reference decoder: the strict codec, then each field's typed reader."""
        try:
            fields = codec.as_list(codec.decode(data), 6, "ballot")
            proof = codec.as_list(fields[3], 2, "credential proof")
            return cls(
                chain_id=codec.as_text(fields[0], "ballot chain id", max_size=MAX_TEXT_BYTES),
                election_id=codec.as_text(fields[1], "ballot election id", max_size=MAX_TEXT_BYTES),
                credential=codec.as_bytes(fields[2], "ballot credential", size=PUBLIC_KEY_SIZE),
                proof=CredentialProof.of(
                    codec.as_int(proof[0], "credential proof index"),
                    codec.as_bytes_list(proof[1], "credential proof path", size=HASH_SIZE, max_items=MAX_PATH),
                ),
                payload=codec.as_bytes(fields[4], "ballot payload"),
                signature=codec.as_bytes(fields[5], "ballot signature", size=SIGNATURE_SIZE),
            )
        except LedgerError:
            raise
        except (ValueError, TypeError, IndexError) as exc:  # never let a decoder crash a node
            raise BadEncoding(f"ballot: {exc}") from exc

    @classmethod
    def _trusted(
        cls, chain_id: str, election_id: str, credential: bytes, proof: CredentialProof, payload: bytes,
        signature: bytes, *, encoded: bytes, tracking_code: bytes, digest: bytes,
    ) -> BallotEnvelope:
        """The one constructor that skips the dataclass ``__init__``: for fields a decoder
        has just read and checked, with the bytes they came from (canonical, as the
        strict codec guarantees) and both hashes. The frozen-dataclass setattr path
        costs more than the whole fast reader."""
        envelope = object.__new__(cls)
        envelope.__dict__.update(
            chain_id=chain_id, election_id=election_id, credential=credential, proof=proof,
            payload=payload, signature=signature, _encoded=encoded,
            _tracking_code=tracking_code, _digest=digest,
        )
        return envelope

    @classmethod
    def create(
        cls,
        key: SigningKey,
        *,
        chain_id: str,
        election_id: str,
        proof: CredentialProof,
        payload: bytes,
    ) -> BallotEnvelope:
        credential = key.public_key
        signature = key.sign(ballot_digest(chain_id, election_id, credential, payload))
        return cls(chain_id, election_id, credential, proof, payload, signature)
