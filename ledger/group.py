"""The prime-order group of secp256k1 for the secret-ballot proofs: scalars and points.

Scalars are ints modulo the group order ``ORDER`` and travel as 32 big-endian bytes;
points travel compressed (33 bytes). Decoders refuse every non-canonical form: a scalar
``>= ORDER``, a point not on the curve, a wrong prefix or length. The point at infinity
(the group's identity) has no encoding at all; operations that can land on it return
``None``, and every caller handles that case by name.

Points are held as libsecp256k1's parsed structs (coincurve's bindings), so a point is
decompressed once, when it is decoded. Which libsecp256k1 call does what, and why:

- ``base_mul`` (g^k): ``secp256k1_ec_pubkey_create``, constant time.
- ``Point.mul`` (P^k): ``secp256k1_ec_pubkey_tweak_mul``, constant time.
- ``add`` (sums): ``secp256k1_ec_pubkey_combine``; its addition formula is complete for
  the running sum (doubling and an identity partial sum included); only an identity
  *result* is refused by the library, and that is reported here as ``None``. The
  library zeroes its output before reading the inputs: the output is never an input.
- ``FixedBase``: a variable-time table (one entry per byte of the scalar, 33 points
  summed by one combine call) for a base used millions of times (g, the election key).
  It costs about half a ``tweak_mul`` and is only for public scalars (verification,
  never encryption).

Negation is ``secp256k1_ec_pubkey_negate`` (a field negation of y: about 0.2 µs).
Measured here (one core, process time, a busy machine): parse 5 µs, ``create`` 18.5 µs,
``tweak_mul`` 33 µs, a 33-point combine 11 µs. coincurve's object API adds a parse and
an object per call (``PublicKey.multiply``: 39 µs), hence raw structs kept decoded.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import coincurve
from coincurve._libsecp256k1 import ffi, lib

from ledger.errors import BadPoint, BadScalar
from ledger.hashing import keccak256

ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SCALAR_SIZE = 32
POINT_SIZE = 33
_CTX = coincurve.GLOBAL_CONTEXT.ctx
LIB_CONTEXT = _CTX  # libsecp256k1's context, for the fast twins that call it directly
_COMPRESSED = lib.SECP256K1_EC_COMPRESSED
_MAX_COMBINE = 4096  # points per combine call (the library takes any count; this bounds the array)


# --- scalars ---------------------------------------------------------------------------
def encode_scalar(k: int) -> bytes:
    """32 big-endian bytes of a scalar in [0, ORDER)."""
    if not 0 <= k < ORDER:
        raise ValueError("scalar out of range")
    return k.to_bytes(SCALAR_SIZE, "big")


def decode_scalar(raw: bytes, what: str = "scalar") -> int:
    """A scalar from exactly 32 big-endian bytes; values >= ORDER are non-canonical."""
    if len(raw) != SCALAR_SIZE:
        raise BadScalar(f"{what}: expected {SCALAR_SIZE} bytes, got {len(raw)}")
    k = int.from_bytes(raw, "big")
    if k >= ORDER:
        raise BadScalar(f"{what}: not reduced modulo the group order")
    return k


def hash_to_scalar(domain: bytes, data: bytes) -> int:
    """keccak256(domain || data) mod ORDER. ``domain`` comes from ``hashing.tag``.

    ORDER is 2^256 - 2^128.6 or so, so the reduction's bias is below 2^-127."""
    return int.from_bytes(keccak256(domain + data), "big") % ORDER


Rng = Callable[[], int]  # draws a scalar in [1, ORDER): ``random_scalar`` unless a test fixes it


def random_scalar() -> int:
    """A uniformly random scalar in [1, ORDER) from the operating system's CSPRNG."""
    return secrets.randbelow(ORDER - 1) + 1


# --- points ----------------------------------------------------------------------------
class Point:
    """A point of secp256k1 other than the identity, decompressed once.

    Compare points with ``==`` (by their canonical encoding) or ``encode()``."""

    __slots__ = ("_enc", "raw")

    def __init__(self, raw: Any, enc: bytes | None = None) -> None:
        self.raw = raw  # a secp256k1_pubkey * owned by this object
        self._enc = enc

    @classmethod
    def decode(cls, data: bytes, what: str = "point") -> Point:
        """A compressed point; refuses a wrong length or prefix and x not on the curve.
        (Infinity has no compressed form, so it is refused by construction.)"""
        if len(data) != POINT_SIZE or data[0] not in (2, 3):
            raise BadPoint(f"{what}: expected a 33-byte compressed point")
        raw = ffi.new("secp256k1_pubkey *")
        if not lib.secp256k1_ec_pubkey_parse(_CTX, raw, data, POINT_SIZE):
            raise BadPoint(f"{what}: not on the secp256k1 curve")
        return cls(raw, bytes(data))

    def encode(self) -> bytes:
        enc = self._enc
        if enc is None:
            out = ffi.new("unsigned char[33]")
            size = ffi.new("size_t *", POINT_SIZE)
            lib.secp256k1_ec_pubkey_serialize(_CTX, out, size, self.raw, _COMPRESSED)
            enc = self._enc = bytes(out)
        return enc

    def mul(self, k: int) -> Point | None:
        """self^k (constant time in k); None when k = 0 mod ORDER."""
        k %= ORDER
        if k == 0:
            return None
        raw = ffi.new("secp256k1_pubkey *")
        ffi.memmove(raw, self.raw, 64)
        if not lib.secp256k1_ec_pubkey_tweak_mul(_CTX, raw, k.to_bytes(32, "big")):
            raise AssertionError("tweak_mul refused a nonzero scalar")  # pragma: no cover
        return Point(raw)

    def neg(self) -> Point:
        raw = ffi.new("secp256k1_pubkey *")
        ffi.memmove(raw, self.raw, 64)
        lib.secp256k1_ec_pubkey_negate(_CTX, raw)
        return Point(raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and self.encode() == other.encode()

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:  # pickled as its encoding (worker processes)
        return (Point.decode, (self.encode(),))

    def __hash__(self) -> int:
        return hash(self.encode())

    def __repr__(self) -> str:
        return f"Point({self.encode().hex()})"


def base_mul(k: int) -> Point | None:
    """g^k, constant time in k; None when k = 0 mod ORDER."""
    k %= ORDER
    if k == 0:
        return None
    raw = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ec_pubkey_create(_CTX, raw, k.to_bytes(32, "big")):
        raise AssertionError("pubkey_create refused a nonzero scalar")  # pragma: no cover
    return Point(raw)


def add(points: Iterable[Point | None]) -> Point | None:
    """The sum of ``points`` (``None`` terms are the identity); None if the sum is."""
    present = [p.raw for p in points if p is not None]
    return _combine_raw(present)


def _combine_raw(raws: Sequence[Any]) -> Point | None:
    if not raws:
        return None
    if len(raws) == 1:
        out = ffi.new("secp256k1_pubkey *")
        ffi.memmove(out, raws[0], 64)
        return Point(out)
    partial: Point | None = None
    for start in range(0, len(raws), _MAX_COMBINE):
        chunk = list(raws[start : start + _MAX_COMBINE])
        if partial is not None:
            chunk.append(partial.raw)
        out = ffi.new("secp256k1_pubkey *")
        arr = ffi.new("secp256k1_pubkey *[]", chunk)
        partial = Point(out) if lib.secp256k1_ec_pubkey_combine(_CTX, out, arr, len(chunk)) else None
    return partial


def sub(p: Point | None, q: Point | None) -> Point | None:
    """p - q, identities included."""
    return add((p, None if q is None else q.neg()))


def encode_optional(p: Point | None) -> bytes:
    """A point or the identity: the identity is the empty string (used only where a
    computed sum can legitimately be the identity, never in a ballot)."""
    return b"" if p is None else p.encode()


def decode_optional(data: bytes, what: str = "point") -> Point | None:
    return None if data == b"" else Point.decode(data, what)


GENERATOR: Point = base_mul(1)  # type: ignore[assignment]
_NEG_MULTIPLES: list[Point] = []


def neg_base_multiple(j: int) -> Point:
    """g^-j for j >= 1 (kept: range proofs shift beta by these for every branch)."""
    while len(_NEG_MULTIPLES) < j:
        p = base_mul(-(len(_NEG_MULTIPLES) + 1))
        assert p is not None
        _NEG_MULTIPLES.append(p)
    return _NEG_MULTIPLES[j - 1]


_WINDOWS = 32  # 8-bit windows of a 256-bit scalar
_STRUCT_SHIFT = 6  # sizeof(secp256k1_pubkey) == 64
_WORD = 8  # sizeof(uintptr_t)
if ffi.sizeof("secp256k1_pubkey") != 1 << _STRUCT_SHIFT or ffi.sizeof("uintptr_t") != _WORD:  # pragma: no cover
    raise ImportError("FixedBase assumes 64-byte pubkey structs and 64-bit pointers")
TERM_WORDS = _WINDOWS + 1  # the table's terms for one scalar: one per window, and the offset


def scalar_lanes(k: int) -> int:
    """The 8-bit windows of k (little-endian), each in its own 64-bit lane and scaled by
    the struct size: an integer that, added to ``FixedBase.lane_base``, is the block of
    the table entries' addresses. Built by C-level slicing, not a Python loop."""
    lanes = bytearray(_WINDOWS * _WORD)
    lanes[0::_WORD] = k.to_bytes(_WINDOWS, "little")
    return int.from_bytes(lanes, "little") << _STRUCT_SHIFT


class FixedBase:
    """Variable-time multiples of one fixed point, for verification only.

    Row i of the table holds (d + 1) * 256^i * P at index 256 i + d, for every byte d;
    the last entry is -(sum of 256^i) * P. For any k, the entry of each of k's 32 bytes
    plus that last one sum to k * P: 33 points with fixed places, whose addresses are
    one integer addition (``scalar_lanes``), summed by one libsecp256k1 combine (with
    room for a caller's own term after them). On this machine that costs about half a
    ``tweak_mul``. Building takes 8,200 point additions (some 50 ms) and 512 KiB.
    Never use it with a secret scalar: which entries are read depends on k."""

    __slots__ = ("_flat", "lane_base", "offset_word", "point")

    def __init__(self, point: Point) -> None:
        self.point = point
        flat = ffi.new(f"secp256k1_pubkey[{256 * _WINDOWS + 1}]")
        pair = ffi.new("secp256k1_pubkey *[2]")
        ffi.memmove(flat, point.raw, 64)
        for i in range(_WINDOWS):
            row = flat + 256 * i
            if i:  # 256^i P = 2 * (128 * 256^(i-1) P); combine's output must not be an input
                pair[0] = pair[1] = flat + 256 * (i - 1) + 127
                if not lib.secp256k1_ec_pubkey_combine(_CTX, row, pair, 2):
                    raise AssertionError("doubling gave the identity")  # pragma: no cover
            for d in range(1, 256):
                pair[0], pair[1] = row + (d - 1), row
                # (d + 1) * 256^i * P is never the identity: 256^i * (d + 1) < 2^264 has no factor ORDER
                if not lib.secp256k1_ec_pubkey_combine(_CTX, row + d, pair, 2):
                    raise AssertionError("table entry was the identity")  # pragma: no cover
        offset = point.mul(-sum(256**i for i in range(_WINDOWS)))
        assert offset is not None
        ffi.memmove(flat + 256 * _WINDOWS, offset.raw, 64)
        self._flat = flat
        base = int(ffi.cast("uintptr_t", flat))
        self.lane_base = sum((base + (256 * i << _STRUCT_SHIFT)) << (64 * i) for i in range(_WINDOWS))
        self.offset_word = base + (256 * _WINDOWS << _STRUCT_SHIFT)

    def fill(self, lanes: int, words: Any) -> None:
        """Write the addresses of the 33 terms for the scalar whose ``scalar_lanes`` are
        ``lanes`` into ``words[0:33]`` (a ``uintptr_t`` array the caller owns, seen by
        the library as ``secp256k1_pubkey **``)."""
        ffi.memmove(words, (self.lane_base + lanes).to_bytes(_WINDOWS * _WORD, "little"), _WINDOWS * _WORD)
        words[_WINDOWS] = self.offset_word

    def mul(self, k: int) -> Point | None:
        """point^k for a public scalar k; None when k = 0 mod ORDER."""
        k %= ORDER
        words = ffi.new(f"uintptr_t[{TERM_WORDS}]")  # per call: cffi releases the GIL in combine
        self.fill(scalar_lanes(k), words)
        out = ffi.new("secp256k1_pubkey *")
        if not lib.secp256k1_ec_pubkey_combine(_CTX, out, ffi.cast("secp256k1_pubkey **", words), TERM_WORDS):
            return None
        return Point(out)


_BASE_TABLE: FixedBase | None = None


def base_table() -> FixedBase:
    """The shared table for g (built on first use)."""
    global _BASE_TABLE
    if _BASE_TABLE is None:
        _BASE_TABLE = FixedBase(GENERATOR)
    return _BASE_TABLE


def lagrange_at_zero(index: int, indices: Sequence[int]) -> int:
    """The Lagrange coefficient of ``index`` for interpolating at 0 over ``indices``."""
    num, den = 1, 1
    for j in indices:
        if j != index:
            num = num * j % ORDER
            den = den * (j - index) % ORDER
    return num * pow(den, -1, ORDER) % ORDER
