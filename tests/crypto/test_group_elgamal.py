"""The group's encodings and refusals, ElGamal's homomorphism and the bounded discrete log."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.elgamal import Blinder, Ciphertext, ElectionKey, EncryptedSum, decrypt_with_secret, discrete_log, encrypt
from ledger.errors import BadEncoding, BadPoint, BadScalar
from ledger.group import (
    GENERATOR,
    ORDER,
    FixedBase,
    Point,
    add,
    base_mul,
    decode_optional,
    decode_scalar,
    encode_optional,
    encode_scalar,
    lagrange_at_zero,
    random_scalar,
    sub,
)

P_FIELD = 2**256 - 2**32 - 977
scalars = st.integers(min_value=1, max_value=ORDER - 1)


def point(k: int) -> Point:
    p = base_mul(k)
    assert p is not None
    return p


@given(scalars)
def test_scalar_round_trip(k: int) -> None:
    assert decode_scalar(encode_scalar(k)) == k


@pytest.mark.parametrize("value", [ORDER, ORDER + 1, 2**256 - 1])
def test_non_canonical_scalars_refused(value: int) -> None:
    """Fails when the decoder reduces instead of refusing (two encodings, one value)."""
    with pytest.raises(BadScalar):
        decode_scalar(value.to_bytes(32, "big"))


@pytest.mark.parametrize("raw", [b"", b"\x01" * 31, b"\x01" * 33])
def test_scalar_lengths_refused(raw: bytes) -> None:
    with pytest.raises(BadScalar):
        decode_scalar(raw)


@given(scalars)
def test_point_round_trip(k: int) -> None:
    p = point(k)
    assert Point.decode(p.encode()) == p
    assert Point.decode(p.encode()).encode() == p.encode()


def _x_off_curve() -> int:
    x = 5
    while pow(x**3 + 7, (P_FIELD - 1) // 2, P_FIELD) == 1:
        x += 1
    return x


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00" * 33,  # the only "encoding" infinity could have
        b"\x00",
        b"\x04" + b"\x01" * 32,  # wrong prefix
        b"\x02" + _x_off_curve().to_bytes(32, "big"),  # x with no y on the curve
        b"\x02" + P_FIELD.to_bytes(32, "big"),  # x not reduced modulo p
        point(7).encode()[:-1],
        point(7).encode() + b"\x00",
        (b"\x04" + b"\x00" * 64),
    ],
)
def test_bad_points_refused(raw: bytes) -> None:
    """Fails when the decoder accepts infinity, an off-curve x or a wrong length."""
    with pytest.raises(BadPoint):
        Point.decode(raw)
    assert issubclass(BadPoint, BadEncoding)


def test_identity_is_explicit() -> None:
    p = point(12345)
    assert add((p, p.neg())) is None
    assert sub(p, p) is None
    assert p.mul(ORDER) is None
    assert base_mul(0) is None
    assert add(()) is None
    assert add((None, p)) == p
    assert decode_optional(encode_optional(None)) is None
    assert decode_optional(encode_optional(p)) == p


@given(scalars, scalars)
def test_point_arithmetic_agrees_with_scalars(x: int, k: int) -> None:
    p = point(x)
    assert p.mul(k) == base_mul(x * k)
    assert add((p, point(k))) == base_mul(x + k)
    assert p.neg() == base_mul(-x)
    assert add((p, p)) == base_mul(2 * x)  # doubling inside a combine


def test_fixed_base_agrees_with_constant_time_mul() -> None:
    p = point(random_scalar())
    table = FixedBase(p)
    for k in [1, 2, 255, 256, 257, 2**248, ORDER - 1, *(random_scalar() for _ in range(20))]:
        assert table.mul(k) == p.mul(k)
    assert table.mul(0) is None and table.mul(ORDER) is None


def test_long_sums_cross_combine_chunks() -> None:
    ks = [random_scalar() for _ in range(5000)]
    assert add(point(k) for k in ks) == base_mul(sum(ks))
    assert add([point(5), *(point(1) for _ in range(4999)), point(-5004)]) is None


def test_lagrange_interpolates() -> None:
    coeffs = [random_scalar() for _ in range(3)]

    def f(x: int) -> int:
        return sum(c * x**i for i, c in enumerate(coeffs)) % ORDER

    for subset in ([1, 2, 3], [2, 4, 5], [1, 3, 5]):
        assert sum(lagrange_at_zero(i, subset) * f(i) for i in subset) % ORDER == coeffs[0]


def _key() -> tuple[int, ElectionKey]:
    x = random_scalar()
    return x, ElectionKey(point(x))


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=6))
def test_homomorphic_sum_decrypts_to_the_sum(messages: list[int]) -> None:
    x, key = _key()
    cts = [encrypt(key, m, random_scalar()) for m in messages]
    total = EncryptedSum.of(cts)
    assert discrete_log(decrypt_with_secret(total, x), 3 * len(messages)) == sum(messages)
    assert Ciphertext.decode(cts[0].encode()) == cts[0]


def test_encrypt_is_g_m_k_r() -> None:
    _, key = _key()
    r = random_scalar()
    for m in (0, 1, 5):
        ct = encrypt(key, m, r, Blinder())
        assert ct.alpha == base_mul(r)
        assert ct.beta == add((base_mul(m), key.point.mul(r)))


def test_sum_can_be_the_identity() -> None:
    _, key = _key()
    r = random_scalar()
    a = encrypt(key, 1, r)
    b = Ciphertext(a.alpha.neg(), a.beta.neg())  # a hostile "encryption of -1" under -r
    total = EncryptedSum.of([a, b])
    assert total == EncryptedSum(None, None)
    assert discrete_log(decrypt_with_secret(total, 1), 10) == 0


@pytest.mark.parametrize("m,bound", [(0, 0), (1, 1), (999, 1000), (1000, 1000), (4096, 10**4), (123_457, 10**6)])
def test_discrete_log(m: int, bound: int) -> None:
    assert discrete_log(base_mul(m), bound) == m


def test_discrete_log_outside_bound() -> None:
    with pytest.raises(ValueError):
        discrete_log(base_mul(1001), 1000)
    with pytest.raises(ValueError):
        discrete_log(base_mul(ORDER - 1), 50)
    assert discrete_log(GENERATOR, 5) == 1
