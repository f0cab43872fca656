"""The fast twin of ``sigma.range_commitments`` (the reference), for verification.

The same arithmetic, branch by branch: a_j = g^v_j alpha^-c_j and
b_j = K^v_j (beta g^-j)^-c_j, but on libsecp256k1 structs reused per thread, with no
Python point object per step (a ballot's proofs make about 120 library calls, and the
objects around them cost a third of the time). It handles the case every honest proof
is in: nonzero challenges and responses, and no sum that lands on the identity. For
anything else it returns None and ``sigma.verify_range`` (the one place that chooses)
falls back to the reference; ``tests/crypto/test_ballot.py`` holds the two together.
"""

from __future__ import annotations

import threading
from typing import Any

from coincurve._libsecp256k1 import ffi, lib

from ledger.group import LIB_CONTEXT, ORDER, POINT_SIZE, FixedBase, base_mul

_COMPRESSED = lib.SECP256K1_EC_COMPRESSED
_STRUCT_SIZE = 64  # sizeof(secp256k1_pubkey)
_local = threading.local()


class _Scratch:
    """Per-thread structs: two terms, a shifted beta, the sum, and the arrays naming them."""

    def __init__(self) -> None:
        self.term_g = ffi.new("secp256k1_pubkey *")
        self.term_x = ffi.new("secp256k1_pubkey *")
        self.shifted = ffi.new("secp256k1_pubkey *")
        self.total = ffi.new("secp256k1_pubkey *")
        self.pair = ffi.new("secp256k1_pubkey *[2]", [self.term_g, self.term_x])
        self.shift_pair = ffi.new("secp256k1_pubkey *[2]", [ffi.NULL, ffi.NULL])
        self.table_scratch = ffi.new("secp256k1_pubkey *[32]")
        self.out = ffi.new("unsigned char[33]")
        self.out_len = ffi.new("size_t *", POINT_SIZE)


def _scratch() -> _Scratch:
    try:
        scratch: _Scratch = _local.scratch
    except AttributeError:
        scratch = _local.scratch = _Scratch()
    return scratch


_NEG_G_RAW: list[Any] = []  # raw structs of -j*g, j = 1, 2, ...


def _neg_multiple_raw(j: int) -> Any:
    while len(_NEG_G_RAW) < j:
        p = base_mul(-(len(_NEG_G_RAW) + 1))
        assert p is not None
        _NEG_G_RAW.append(p.raw)
    return _NEG_G_RAW[j - 1]


def range_commitments_fast(
    key_table: FixedBase, alpha: Any, beta: Any, challenges: tuple[int, ...], responses: tuple[int, ...]
) -> list[bytes] | None:
    """The encoded commitments (a_0, b_0, ...), or None where the reference must decide."""
    s = _scratch()
    ctx = LIB_CONTEXT
    term_g, term_x, total, pair, out, out_len = s.term_g, s.term_x, s.total, s.pair, s.out, s.out_len
    create = lib.secp256k1_ec_pubkey_create
    tweak_mul = lib.secp256k1_ec_pubkey_tweak_mul
    combine = lib.secp256k1_ec_pubkey_combine
    serialize = lib.secp256k1_ec_pubkey_serialize
    memmove = ffi.memmove
    result: list[bytes] = []
    for j, (c, v) in enumerate(zip(challenges, responses, strict=True)):
        if c == 0 or v == 0:
            return None
        neg_c = (ORDER - c).to_bytes(32, "big")
        v_bytes = v.to_bytes(32, "big")
        # a_j = g^v alpha^-c
        create(ctx, term_g, v_bytes)
        memmove(term_x, alpha, _STRUCT_SIZE)
        tweak_mul(ctx, term_x, neg_c)
        if not combine(ctx, total, pair, 2):
            return None
        out_len[0] = POINT_SIZE
        serialize(ctx, out, out_len, total, _COMPRESSED)
        result.append(ffi.buffer(out)[:])
        # b_j = K^v (beta g^-j)^-c
        key_table.mul_into(v, term_g, s.table_scratch)
        if j == 0:
            memmove(term_x, beta, _STRUCT_SIZE)
        else:
            s.shift_pair[0] = beta
            s.shift_pair[1] = _neg_multiple_raw(j)
            if not combine(ctx, term_x, s.shift_pair, 2):
                return None
        tweak_mul(ctx, term_x, neg_c)
        if not combine(ctx, total, pair, 2):
            return None
        out_len[0] = POINT_SIZE
        serialize(ctx, out, out_len, total, _COMPRESSED)
        result.append(ffi.buffer(out)[:])
    return result
