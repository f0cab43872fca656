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
  *result* is refused by the library, and that is reported here as ``None``.
- ``FixedBase.mul``: a variable-time table lookup (32 windows of 8 bits, summed by one
  combine call) for a base used millions of times (g, the election key). It is faster
  than ``tweak_mul`` and is only for public scalars (verification, never encryption).

Negation is ``secp256k1_ec_pubkey_negate`` (a field negation of y: about 0.2 µs).
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


class FixedBase:
    """Variable-time multiples of one fixed point, for verification only.

    A table of d * 256^i * P (i < 32, 0 < d < 256) makes P^k one libsecp256k1 combine
    of at most 32 table points: on this machine it costs about half a ``tweak_mul``.
    Building it takes about 8,200 point additions (some 50 ms); the memory, about 1 MB,
    is kept for the life of the object. Never use it with a secret scalar: which table
    entries are read depends on k."""

    __slots__ = ("_flat", "point", "rows")

    def __init__(self, point: Point) -> None:
        self.point = point
        # One contiguous array (better locality for the library's reads and ours); row i
        # holds d * 256^i * P at index 256 * i + d, and index 256 * i is unused.
        flat = ffi.new("secp256k1_pubkey[8192]")
        pair = ffi.new("secp256k1_pubkey *[2]")
        ffi.memmove(flat + 1, point.raw, 64)
        for i in range(32):
            row = flat + 256 * i
            if i:  # 256^i P = 2 * (128 * 256^(i-1) P); combine's output must not be an input
                pair[0] = pair[1] = flat + 256 * (i - 1) + 128
                if not lib.secp256k1_ec_pubkey_combine(_CTX, row + 1, pair, 2):
                    raise AssertionError("doubling gave the identity")  # pragma: no cover
            for d in range(2, 256):
                pair[0], pair[1] = row + (d - 1), row + 1
                # d * P for 0 < d < 256 <= ORDER is never the identity
                if not lib.secp256k1_ec_pubkey_combine(_CTX, row + d, pair, 2):
                    raise AssertionError("table entry was the identity")  # pragma: no cover
        self._flat = flat
        self.rows = [[flat + (256 * i + d) for d in range(256)] for i in range(32)]  # rows[i][d]

    def mul(self, k: int) -> Point | None:
        """point^k for a public scalar k; None when k = 0 mod ORDER."""
        k %= ORDER
        if k == 0:
            return None
        out = ffi.new("secp256k1_pubkey *")
        self.mul_into(k, out, ffi.new("secp256k1_pubkey *[32]"))
        return Point(out)

    def mul_into(self, k: int, out: Any, scratch: Any) -> None:
        """Write point^k into the struct ``out``, for 0 < k < ORDER; ``scratch`` is a
        ``secp256k1_pubkey *[32]`` owned by the caller's thread (cffi releases the GIL
        during the combine)."""
        n = self.terms(k, scratch)
        # Partial sums are multiples below k < ORDER, so only the result could be the
        # identity, and k != 0 excludes that.
        if not lib.secp256k1_ec_pubkey_combine(_CTX, out, scratch, n):
            raise AssertionError("fixed-base sum was the identity")  # pragma: no cover

    def terms(self, k: int, scratch: Any) -> int:
        """Write into ``scratch`` the table points that sum to point^k (0 < k < ORDER)
        and return how many: a caller can add its own terms after them and sum all in
        one combine."""
        picked = [row[digit] for row, digit in zip(self.rows, k.to_bytes(32, "little"), strict=True) if digit]
        scratch[0 : len(picked)] = picked  # one slice assignment: far cheaper than item by item
        return len(picked)


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
