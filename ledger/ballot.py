"""The ballot envelope, the unit a voter signs and the log records.

The envelope's keccak256 is the voter's tracking code, and the tracking code is the
leaf of the ballot log, so the log root in each header commits to every ballot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger import codec
from ledger.codec import Item
from ledger.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey
from ledger.errors import BadEncoding, LedgerError
from ledger.hashing import HASH_SIZE, keccak256, tag, tagged_hash

BALLOT_TAG = tag("ballot/v1")
MAX_ENVELOPE_BYTES = 16384  # hard ceiling; the genesis parameter is usually lower
MAX_PATH = 64


@dataclass(frozen=True)
class CredentialProof:
    """Inclusion proof of the credential (as a leaf) in the election's credential tree."""

    index: int
    path: tuple[bytes, ...]

    def item(self) -> Item:
        return [codec.int_bytes(self.index), list(self.path)]

    @classmethod
    def from_item(cls, item: Item) -> CredentialProof:
        fields = codec.as_list(item, 2, "credential proof")
        return cls(
            index=codec.as_int(fields[0], "credential proof index"),
            path=codec.as_bytes_list(fields[1], "credential proof path", size=HASH_SIZE, max_items=MAX_PATH),
        )


def ballot_digest(chain_id: str, election_id: str, credential: bytes, payload: bytes) -> bytes:
    """What the credential key signs: the ballot bound to one chain and one election."""
    return tagged_hash(
        BALLOT_TAG, codec.encode([chain_id.encode(), election_id.encode(), credential, payload])
    )


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
        return keccak256(self.encode())

    def digest(self) -> bytes:
        return ballot_digest(self.chain_id, self.election_id, self.credential, self.payload)

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = MAX_ENVELOPE_BYTES) -> BallotEnvelope:
        try:
            fields = codec.as_list(codec.decode(data, max_size=max_size), 6, "ballot")
            envelope = cls(
                chain_id=codec.as_text(fields[0], "ballot chain id", max_size=64),
                election_id=codec.as_text(fields[1], "ballot election id", max_size=64),
                credential=codec.as_bytes(fields[2], "ballot credential", size=PUBLIC_KEY_SIZE),
                proof=CredentialProof.from_item(fields[3]),
                payload=codec.as_bytes(fields[4], "ballot payload", max_size=max_size),
                signature=codec.as_bytes(fields[5], "ballot signature", size=SIGNATURE_SIZE),
            )
        except LedgerError:
            raise
        except (ValueError, TypeError) as exc:  # defensive: never let a decoder crash a node
            raise BadEncoding(f"ballot: {exc}") from exc
        object.__setattr__(envelope, "_encoded", bytes(data))
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
