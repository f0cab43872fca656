"""Exponential ElGamal on secp256k1 under an election's joint key K.

A message m (a small count) under nonce r is (alpha, beta) = (g^r, g^m K^r). Ciphertexts
multiply into an encryption of the sum of their messages (``EncryptedSum``), which is
how contests are summed and ballots tallied. Decryption recovers g^m (with the secret,
or with trustees' shares in ``tally_crypto``); ``discrete_log`` turns g^m back into m
by baby-step giant-step up to a bound (the number of ballots counted).

Encryption draws on libsecp256k1's constant-time calls only, and the same calls run
whatever m is: g^m is formed as g^(m + rho) * g^(-rho) with a random rho (see
``Blinder``), so the sequence of library calls does not depend on the vote. (Python's
own integer arithmetic is not constant time; the library calls carry the cost.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ledger.errors import BadEncoding
from ledger.group import (
    GENERATOR,
    ORDER,
    POINT_SIZE,
    FixedBase,
    Point,
    Rng,
    add,
    base_mul,
    random_scalar,
)


@dataclass(frozen=True)
class ElectionKey:
    """The joint public key K of an election (a point; never the identity)."""

    point: Point

    @classmethod
    def decode(cls, raw: bytes) -> ElectionKey:
        return cls(Point.decode(raw, "election key"))

    def encode(self) -> bytes:
        return self.point.encode()

    @property
    def table(self) -> FixedBase:
        """Variable-time multiples of K for verification (built once per key)."""
        return _key_table(self.point.encode())


@lru_cache(maxsize=8)
def _key_table(encoded: bytes) -> FixedBase:
    return FixedBase(Point.decode(encoded))


@dataclass(frozen=True)
class Ciphertext:
    """One ballot ciphertext: both points are real points (a decoder refuses infinity)."""

    alpha: Point
    beta: Point

    def encode(self) -> bytes:
        """alpha || beta, 66 bytes: the form every Fiat-Shamir hash of a ballot uses."""
        return self.alpha.encode() + self.beta.encode()

    @classmethod
    def decode(cls, raw: bytes, what: str = "ciphertext") -> Ciphertext:
        if len(raw) != 2 * POINT_SIZE:
            raise BadEncoding(f"{what}: expected {2 * POINT_SIZE} bytes")
        return cls(Point.decode(raw[:POINT_SIZE], f"{what} alpha"), Point.decode(raw[POINT_SIZE:], f"{what} beta"))


@dataclass(frozen=True)
class EncryptedSum:
    """A product of ciphertexts: an encryption of the sum of their messages. Either
    point can be the identity (``None``): sums of hostile ballots can cancel."""

    alpha: Point | None
    beta: Point | None

    @classmethod
    def of(cls, ciphertexts: list[Ciphertext]) -> EncryptedSum:
        return cls(add(c.alpha for c in ciphertexts), add(c.beta for c in ciphertexts))

    def plus(self, other: EncryptedSum) -> EncryptedSum:
        return EncryptedSum(add((self.alpha, other.alpha)), add((self.beta, other.beta)))


ZERO_SUM = EncryptedSum(None, None)


class Blinder:
    """Multiplies by g^t for a secret t with the same library calls whatever t is (zero
    included): g^t = g^(t + rho) * g^(-rho) for a random rho fixed for one ballot."""

    __slots__ = ("_neg", "_rho")

    def __init__(self, rng: Rng = random_scalar) -> None:
        self._rho = rng()
        self._neg = base_mul(-self._rho)

    def times_base(self, point: Point | None, t: int) -> Point | None:
        """point * g^t as one sum of three terms, so t = 0 costs what any t costs.
        (If t + rho happened to be 0, g^(t+rho) is the identity and the sum still right.)"""
        return add((point, base_mul(t + self._rho), self._neg))


def encrypt(key: ElectionKey, m: int, r: int, blinder: Blinder | None = None) -> Ciphertext:
    """(g^r, g^m K^r) for a nonce r in [1, ORDER)."""
    if not 0 < r < ORDER:
        raise ValueError("nonce out of range")
    blinder = blinder or Blinder()
    alpha = base_mul(r)
    beta = blinder.times_base(key.point.mul(r), m)
    if alpha is None or beta is None:  # beta = 1 needs K^r = g^-m: a discrete log of K
        raise ValueError("degenerate encryption; draw another nonce")
    return Ciphertext(alpha, beta)


def decrypt_with_secret(total: EncryptedSum, secret: int) -> Point | None:
    """g^m = beta / alpha^secret, for a test or a single-key election."""
    shared = None if total.alpha is None else total.alpha.mul(secret)
    return add((total.beta, None if shared is None else shared.neg()))


def discrete_log(point: Point | None, bound: int) -> int:
    """The m in [0, bound] with g^m = point (baby-step giant-step, about 2*sqrt(bound)
    point additions); ValueError if there is none."""
    if point is None:
        return 0
    if bound < 0:
        raise ValueError("negative bound")
    step = math.isqrt(bound) + 1
    baby: dict[bytes, int] = {}
    current: Point | None = None
    for j in range(1, step):
        current = add((current, GENERATOR))
        assert current is not None
        baby[current.encode()] = j
    giant = base_mul(step)
    assert giant is not None
    neg_giant = giant.neg()
    target: Point | None = point
    for i in range(step + 1):
        if target is None:
            found = i * step
        else:
            baby_index = baby.get(target.encode())
            found = -1 if baby_index is None else i * step + baby_index
        if 0 <= found <= bound:
            return found
        target = add((target, neg_giant))
    raise ValueError(f"no discrete log in [0, {bound}]")
