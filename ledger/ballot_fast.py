"""The fast reader of a ballot envelope in the shape every real ballot has.

A fenced fast path: it reads only that shape (short texts, a 33-byte credential, a proof
index of at most 8 bytes and a path of 32-byte hashes, a short payload, a 64-byte
signature last) straight from the bytes, and answers None for anything else, which the
plain decoder in ``ledger.ballot`` then accepts or refuses with its precise reason. It
accepts nothing that decoder refuses and reads the same fields from what both accept:
``tests/test_ballot_decoders.py`` holds the two together on mutated ballots.

It makes no objects of its own: ``BallotEnvelope.decode`` builds the envelope from the
spans it returns.
"""

from __future__ import annotations

from typing import NamedTuple

from ledger import codec
from ledger.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from ledger.hashing import HASH_SIZE

# RLP headers (Ethereum yellow paper, appendix B), in the canonical forms this reader takes.
_SHORT_LIST = 0xC0  # 0xC0 + n: a list of n <= 55 payload bytes
_LAST_SHORT_LIST = 0xF7
_LIST_LEN1 = 0xF8  # then one length byte (56..255)
_LIST_LEN2 = 0xF9  # then two length bytes
_SHORT_STRING = 0x80  # 0x80 + n: a string of n <= 55 bytes (0x80 alone: empty)
_LAST_SHORT_STRING = 0xB7
_SINGLE_BYTE_LIMIT = 0x80  # a single byte below this stands for itself
_CREDENTIAL_HEADER = _SHORT_STRING + PUBLIC_KEY_SIZE  # 0xA1
_MAX_INDEX_BYTES = 8
_SIGNATURE_HEADER = bytes([0xB7 + 1, SIGNATURE_SIZE])  # b"\xb8\x40": a 64-byte string
HASH_ITEM_SIZE = HASH_SIZE + 1  # a path hash as encoded: its one-byte prefix, then the hash


class CommonShape(NamedTuple):
    """Where each field of a common-shape envelope lies in its encoding."""

    chain_id: str
    election_id: str
    credential: bytes
    proof_index: int
    proof_path: bytes  # the path's list payload: each hash after its one-byte prefix
    payload: bytes
    signature: bytes
    signed: bytes  # the encodings of chain id, election id, credential and payload, in order


def _list_at(data: bytes, pos: int) -> tuple[int, int]:
    """(payload start, payload end) of a canonical list header at ``pos`` with at most two
    length bytes; IndexError or ValueError otherwise."""
    b = data[pos]
    if _SHORT_LIST <= b <= _LAST_SHORT_LIST:
        return pos + 1, pos + 1 + b - _SHORT_LIST
    if b == _LIST_LEN1 and data[pos + 1] > _LAST_SHORT_LIST - _SHORT_LIST:
        return pos + 2, pos + 2 + data[pos + 1]
    if b == _LIST_LEN2 and data[pos + 1]:
        return pos + 3, pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
    raise ValueError("uncommon list header")


def _short_string_at(data: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of a canonical string of 1 to 55 bytes at ``pos``; ValueError otherwise."""
    b = data[pos]
    if b < _SINGLE_BYTE_LIMIT:
        return pos, pos + 1
    if _SHORT_STRING + 1 <= b <= _LAST_SHORT_STRING and (b != _SHORT_STRING + 1 or data[pos + 1] >= _SINGLE_BYTE_LIMIT):
        return pos + 1, pos + 1 + b - _SHORT_STRING
    raise ValueError("uncommon string header")


def _index_at(data: bytes, pos: int) -> tuple[int, int]:
    """(value, end) of a canonical integer of at most 8 bytes at ``pos``; ValueError otherwise."""
    b = data[pos]
    if b == _SHORT_STRING:
        return 0, pos + 1
    if 0 < b < _SINGLE_BYTE_LIMIT:
        return b, pos + 1
    n = b - _SHORT_STRING
    if 1 <= n <= _MAX_INDEX_BYTES and data[pos + 1] and (n != 1 or data[pos + 1] >= _SINGLE_BYTE_LIMIT):
        return int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), pos + 1 + n
    raise ValueError("uncommon proof index")


def read_common_shape(data: bytes, max_path: int) -> CommonShape | None:
    """The envelope's fields if ``data`` is a common-shape envelope, else None."""
    try:
        end = len(data)
        pos, stop = _list_at(data, 0)
        if stop != end:
            return None
        cs, ce = _short_string_at(data, pos)
        es, ee = _short_string_at(data, ce)
        if data[ee] != _CREDENTIAL_HEADER:
            return None
        credential_end = ee + 1 + PUBLIC_KEY_SIZE
        qs, qe = _list_at(data, credential_end)
        index, ps = _index_at(data, qs)
        hs, he = _list_at(data, ps)
        if he != qe or he - hs > max_path * HASH_ITEM_SIZE or not codec.is_hash_list(data, hs, he):
            return None
        ys, ye = _short_string_at(data, qe)
        if data[ye : ye + len(_SIGNATURE_HEADER)] != _SIGNATURE_HEADER or ye + 2 + SIGNATURE_SIZE != end:
            return None
        return CommonShape(
            chain_id=data[cs:ce].decode("utf-8"),
            election_id=data[es:ee].decode("utf-8"),
            credential=data[ee + 1 : credential_end],
            proof_index=index,
            proof_path=data[hs:he],
            payload=data[ys:ye],
            signature=data[ye + 2 :],
            # chain id, election id and credential are contiguous, then the payload
            signed=data[pos:credential_end] + data[qe:ye],
        )
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
