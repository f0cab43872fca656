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

from ledger.group import (
    LIB_CONTEXT,
    ORDER,
    POINT_SIZE,
    TERM_WORDS,
    FixedBase,
    base_table,
    neg_base_multiple,
    scalar_lanes,
)

_COMPRESSED = lib.SECP256K1_EC_COMPRESSED
_STRUCT_SIZE = 64  # sizeof(secp256k1_pubkey)
_local = threading.local()


class _Scratch:
    """Per-thread structs and arrays: the variable-base term, the sum, one array of term
    addresses per table (the table's 33 terms, then ours), the serialised commitments."""

    def __init__(self) -> None:
        self.term = ffi.new("secp256k1_pubkey *")
        self.total = ffi.new("secp256k1_pubkey *")
        self.shift_pair = ffi.new("secp256k1_pubkey *[2]", [ffi.NULL, ffi.NULL])
        term_word = int(ffi.cast("uintptr_t", self.term))
        self.g_words = ffi.new(f"uintptr_t[{TERM_WORDS + 1}]")
        self.k_words = ffi.new(f"uintptr_t[{TERM_WORDS + 1}]")
        self.g_words[TERM_WORDS] = self.k_words[TERM_WORDS] = term_word
        self.g_terms = ffi.cast("secp256k1_pubkey **", self.g_words)
        self.k_terms = ffi.cast("secp256k1_pubkey **", self.k_words)
        self.out = ffi.new(f"unsigned char[{2 * POINT_SIZE * _MAX_BRANCHES}]")
        self.slots = [self.out + POINT_SIZE * i for i in range(2 * _MAX_BRANCHES)]
        self.out_len = ffi.new("size_t *", POINT_SIZE)


_MAX_BRANCHES = 65  # a contest limit is at most 64 choices: 65 branches
_N_TERMS = TERM_WORDS + 1


def _scratch() -> _Scratch:
    try:
        scratch: _Scratch = _local.scratch
    except AttributeError:
        scratch = _local.scratch = _Scratch()
    return scratch


def range_commitments_fast(
    key_table: FixedBase, alpha: Any, beta: Any, challenges: tuple[int, ...], responses: tuple[int, ...]
) -> bytes | None:
    """a_0 || b_0 || a_1 || ... encoded (33 bytes each), or None where the reference
    must decide.

    Each commitment is one combine call: the fixed-base table's 33 terms for g^v (or
    K^v) and, after them, the variable-base term alpha^-c (or (beta g^-j)^-c).
    Commitments are serialised side by side into one buffer, ready to hash."""
    if len(challenges) > _MAX_BRANCHES:
        return None
    s = _scratch()
    ctx = LIB_CONTEXT
    term, total, slots, out_len = s.term, s.total, s.slots, s.out_len
    g_table = base_table()
    g_fill, k_fill = g_table.fill, key_table.fill
    g_words, k_words, g_terms, k_terms = s.g_words, s.k_words, s.g_terms, s.k_terms
    tweak_mul = lib.secp256k1_ec_pubkey_tweak_mul
    combine = lib.secp256k1_ec_pubkey_combine
    serialize = lib.secp256k1_ec_pubkey_serialize
    memmove = ffi.memmove
    for j, (c, v) in enumerate(zip(challenges, responses, strict=True)):
        if c == 0 or v == 0:
            return None
        neg_c = (ORDER - c).to_bytes(32, "big")
        lanes = scalar_lanes(v)
        # a_j = g^v alpha^-c
        memmove(term, alpha, _STRUCT_SIZE)
        tweak_mul(ctx, term, neg_c)
        g_fill(lanes, g_words)
        if not combine(ctx, total, g_terms, _N_TERMS):
            return None
        serialize(ctx, slots[2 * j], out_len, total, _COMPRESSED)
        # b_j = K^v (beta g^-j)^-c
        if j == 0:
            memmove(term, beta, _STRUCT_SIZE)
        else:
            s.shift_pair[0] = beta
            s.shift_pair[1] = neg_base_multiple(j).raw
            if not combine(ctx, term, s.shift_pair, 2):
                return None
        tweak_mul(ctx, term, neg_c)
        k_fill(lanes, k_words)
        if not combine(ctx, total, k_terms, _N_TERMS):
            return None
        serialize(ctx, slots[2 * j + 1], out_len, total, _COMPRESSED)
    return ffi.buffer(s.out, 2 * POINT_SIZE * len(challenges))[:]  # type: ignore[no-any-return]
