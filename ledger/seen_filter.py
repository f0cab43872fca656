"""A one-sided memory of the (election, credential) pairs that have cast a ballot.

"Not seen" is certain and "maybe seen" sends the caller to its index. Nearly every
ballot comes from a credential that has not voted before, and on an index larger than
memory that lookup of an absent key is the costly one; this answers it from one bit.

The bit array is sized once from how many credentials the elections register, so memory
does not grow with the chain. A credential is a compressed public key whose x coordinate
(bytes 1..32) is uniform, so eight of its bytes, mixed with a per-election salt, pick the
bit. A bit shared by two credentials (about 1 in 16 at the end of an election with full
turnout) only costs a lookup, never an answer.
"""

from __future__ import annotations

from ledger.hashing import keccak256

BITS_PER_CREDENTIAL = 16
_MIN_BITS = 1 << 16
_MAX_BITS = 1 << 30  # 128 MiB, reached at about 67 million credentials


def filter_bits(credentials: int) -> int:
    """The bit count for ``credentials`` registered credentials: a power of two."""
    want = max(_MIN_BITS, credentials * BITS_PER_CREDENTIAL)
    return min(_MAX_BITS, 1 << (want - 1).bit_length())


class SeenFilter:
    def __init__(self, credentials: int) -> None:
        bits = filter_bits(credentials)
        self._mask = bits - 1
        self._bits = bytearray(bits >> 3)
        self._salts: dict[str, int] = {}

    @property
    def size_bytes(self) -> int:
        return len(self._bits)

    def _bit(self, election_id: str, credential: bytes) -> int:
        salt = self._salts.get(election_id)
        if salt is None:
            salt = self._salts[election_id] = int.from_bytes(keccak256(election_id.encode())[:8], "little")
        return (int.from_bytes(credential[1:9], "little") ^ salt) & self._mask

    def add(self, election_id: str, credential: bytes) -> None:
        bit = self._bit(election_id, credential)
        self._bits[bit >> 3] |= 1 << (bit & 7)

    def maybe_seen(self, election_id: str, credential: bytes) -> bool:
        """False only if ``add`` was never called for this pair."""
        bit = self._bit(election_id, credential)
        return bool(self._bits[bit >> 3] >> (bit & 7) & 1)
