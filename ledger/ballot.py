"""The ballot envelope, the unit a voter signs and the log records.

The envelope's keccak256 is the voter's tracking code, and the tracking code is the
leaf of the ballot log, so the log root in each header commits to every ballot.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger import codec
from ledger.codec import Item
from ledger.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey
from ledger.errors import BadEncoding, LedgerError, Oversized
from ledger.hashing import HASH_SIZE, keccak256, keccak_new, tag

BALLOT_TAG = tag("ballot/v1")
MAX_ENVELOPE_BYTES = 16384  # hard ceiling; the genesis parameter is usually lower
MAX_PATH = 64


_HASH_ITEM_PREFIX = b"\xa0"  # RLP's (only canonical) prefix of a 32-byte string
HASH_ITEM_SIZE = HASH_SIZE + 1  # a path hash as encoded: prefix and hash


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
        # Decoders build proofs without __init__ after checking this themselves.
        if not codec.is_hash_list(self.encoded_path, 0, len(self.encoded_path)):
            raise BadEncoding("credential proof path: not an encoded list of 32-byte hashes")

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


_FIELD_NAMES = ("chain id", "election id", "credential", "proof", "payload", "signature")


def _text(data: bytes, span: tuple[bool, int, int], what: str) -> str:
    _, s, e = span
    if e - s > 64:
        raise Oversized(f"{what}: {e - s} bytes exceeds the limit of 64")
    try:
        return data[s:e].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEncoding(f"{what}: not UTF-8") from exc


def _proof(data: bytes, span: tuple[bool, int, int]) -> CredentialProof:
    is_list, pos, stop = span
    if not is_list:
        raise BadEncoding("credential proof: expected a list")
    index_span = codec.read_header(data, pos, stop)
    path_span = codec.read_header(data, index_span[2], stop) if index_span[2] < stop else None
    if path_span is None or path_span[2] != stop:
        raise BadEncoding("credential proof: expected 2 fields")
    is_list_i, s, e = index_span
    if is_list_i:
        raise BadEncoding("credential proof index: expected bytes, got a list")
    index = codec.as_int(data[s:e], "credential proof index")
    is_list_p, s, e = path_span
    if not is_list_p:
        raise BadEncoding("credential proof path: expected a list")
    if not codec.is_hash_list(data, s, e):  # let the generic reader name the fault
        generic = codec.decode(data[index_span[2] : e])
        codec.as_bytes_list(generic, "credential proof path", size=HASH_SIZE)
        raise BadEncoding("credential proof path: not a list of 32-byte strings")  # pragma: no cover
    if e - s > MAX_PATH * HASH_ITEM_SIZE:
        raise Oversized(
            f"credential proof path: {(e - s) // HASH_ITEM_SIZE} items exceeds the limit of {MAX_PATH}"
        )
    proof = object.__new__(CredentialProof)  # fields checked above; see BallotEnvelope.decode
    proof.__dict__.update(index=index, encoded_path=data[s:e])
    return proof


def _list_at(data: bytes, pos: int) -> tuple[int, int]:
    """(payload start, payload end) of a canonical list header at ``pos`` with at most two
    length bytes; IndexError or ValueError otherwise (the fast path then gives up)."""
    b = data[pos]
    if 0xC0 <= b <= 0xF7:
        return pos + 1, pos + 1 + b - 0xC0
    if b == 0xF8 and data[pos + 1] >= 56:
        return pos + 2, pos + 2 + data[pos + 1]
    if b == 0xF9 and data[pos + 1]:
        return pos + 3, pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
    raise ValueError("uncommon list header")


def _short_string_at(data: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of a canonical string of 1 to 55 bytes at ``pos`` (a single byte
    below 0x80 stands for itself); ValueError otherwise."""
    b = data[pos]
    if b < 0x80:
        return pos, pos + 1
    if 0x81 <= b <= 0xB7 and (b != 0x81 or data[pos + 1] >= 0x80):
        return pos + 1, pos + 1 + b - 0x80
    raise ValueError("uncommon string header")


def _decode_common_shape(cls: type[BallotEnvelope], data: bytes) -> BallotEnvelope | None:
    """The envelope in the shape every real ballot has (short texts, a one-byte-prefixed
    credential, an index of at most 8 bytes, a short payload, the signature's fixed
    header), read without the generic item reader; None for anything else, which the
    generic decoder then accepts or refuses with its precise reason. It accepts nothing
    that decoder refuses (the property tests compare the two on mutated ballots)."""
    try:
        end = len(data)
        pos, stop = _list_at(data, 0)
        if stop != end:
            return None
        cs, ce = _short_string_at(data, pos)
        es, ee = _short_string_at(data, ce)
        if data[ee] != 0xA1:  # a 33-byte string
            return None
        credential = data[ee + 1 : ee + 34]
        qs, qe = _list_at(data, ee + 34)
        b = data[qs]
        if b == 0x80:
            index, ps = 0, qs + 1
        elif 0 < b < 0x80:
            index, ps = b, qs + 1
        elif 0x81 <= b <= 0x88 and data[qs + 1] and (b != 0x81 or data[qs + 1] >= 0x80):
            index, ps = int.from_bytes(data[qs + 1 : qs + 1 + b - 0x80], "big"), qs + 1 + b - 0x80
        else:
            return None
        hs, he = _list_at(data, ps)
        if he != qe or he - hs > MAX_PATH * HASH_ITEM_SIZE or not codec.is_hash_list(data, hs, he):
            return None
        ys, ye = _short_string_at(data, qe)
        if data[ye : ye + 2] != b"\xb8\x40" or ye + 66 != end:  # a 64-byte string, last
            return None
        chain_id = data[cs:ce].decode("utf-8")
        election_id = data[es:ee].decode("utf-8")
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    proof = object.__new__(CredentialProof)
    proof.__dict__.update(index=index, encoded_path=data[hs:he])
    # Every ballot read is checked, so both hashes are made now, the signed one from
    # the encoding's own spans: chain id, election id and credential are contiguous,
    # then the payload (what ballot_digest encodes again, byte for byte).
    signed = data[pos : ee + 34] + data[qe:ye]
    envelope = object.__new__(cls)
    envelope.__dict__.update(
        chain_id=chain_id, election_id=election_id, credential=credential, proof=proof,
        payload=data[ys:ye], signature=data[ye + 2 :], _encoded=data,
        _tracking_code=keccak_new(data).digest(),
        _digest=keccak_new(BALLOT_TAG + codec.list_header(len(signed)) + signed).digest(),
    )
    return envelope


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
        """Strict decoding, written out field by field: this runs for every ballot a
        validator admits and every ballot a verifier replays. Accepts exactly what the
        generic codec with the field readers accepts (the tests hold it to that)."""
        data = bytes(data)
        if len(data) > max_size:
            raise Oversized(f"ballot: {len(data)} bytes exceeds the limit of {max_size}")
        try:
            return cls._decode_fields(data)
        except LedgerError:
            raise
        except (ValueError, TypeError, IndexError) as exc:  # never let a decoder crash a node
            raise BadEncoding(f"ballot: {exc}") from exc

    @classmethod
    def _decode_fields(cls, data: bytes) -> BallotEnvelope:
        common = _decode_common_shape(cls, data)
        if common is not None:
            return common
        return cls._decode_generic(data)

    @classmethod
    def _decode_generic(cls, data: bytes) -> BallotEnvelope:
        read = codec.read_header
        end = len(data)
        is_list, pos, stop = read(data, 0, end)
        if not is_list:
            raise BadEncoding("ballot: expected a list")
        if stop != end:
            raise BadEncoding(f"{end - stop} trailing bytes")
        spans: list[tuple[bool, int, int]] = []
        while pos < stop:
            span = read(data, pos, stop)
            spans.append(span)
            pos = span[2]
        if len(spans) != 6:
            raise BadEncoding(f"ballot: expected 6 fields, got {len(spans)}")
        for i in (0, 1, 2, 4, 5):
            if spans[i][0]:
                raise BadEncoding(f"ballot {_FIELD_NAMES[i]}: expected bytes, got a list")
        chain_id = _text(data, spans[0], "ballot chain id")
        election_id = _text(data, spans[1], "ballot election id")
        _, s, e = spans[2]
        if e - s != PUBLIC_KEY_SIZE:
            raise BadEncoding(f"ballot credential: expected {PUBLIC_KEY_SIZE} bytes, got {e - s}")
        credential = data[s:e]
        proof = _proof(data, spans[3])
        _, s, e = spans[5]
        if e - s != SIGNATURE_SIZE:
            raise BadEncoding(f"ballot signature: expected {SIGNATURE_SIZE} bytes, got {e - s}")
        _, ps, pe = spans[4]
        # Built without the dataclass __init__ (every field was just checked above):
        # the frozen-dataclass setattr path costs more than the rest of this decoder.
        # The codec is canonical, so the input bytes are the envelope's encoding.
        envelope = object.__new__(cls)
        envelope.__dict__.update(
            chain_id=chain_id, election_id=election_id, credential=credential, proof=proof,
            payload=data[ps:pe], signature=data[s:e], _encoded=data,
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
