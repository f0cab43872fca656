"""Non-interactive zero-knowledge proofs (Fiat-Shamir) over secp256k1.

Three sigma protocols, each proven and checked here and nowhere else:

- ``RangeProof``: a disjunctive Chaum-Pedersen proof (Cramer-Damgard-Schoenmakers) that
  an ElGamal ciphertext (alpha, beta) under K encrypts some m in [0, L]. L = 1 is the
  "0 or 1" proof of a selection; a contest's sum uses its selection limit.
- ``DleqProof``: Chaum-Pedersen, log_g X = log_A D (a decryption share, a revealed
  Diffie-Hellman point in a complaint).
- ``SchnorrProof``: knowledge of log_g C (a trustee's coefficient commitment).

Every proof is in challenge form, (c, v) per branch: the verifier recomputes each
commitment from the statement and checks that the challenges hash back. The hash is
``hash_to_scalar(domain, statement || commitments)``: each caller passes its own domain
tag (``hashing.tag``) and a statement that binds everything the proof must not be moved
away from (chain, election, key, credential, the whole ballot, the position).

Commitments that land on the identity are hashed as the empty string; an honest prover
never produces one (it would need a nonce of 0), and a verifier refuses nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.elgamal import Blinder, Ciphertext, ElectionKey, EncryptedSum
from ledger.group import (
    ORDER,
    FixedBase,
    Point,
    Rng,
    add,
    base_mul,
    encode_optional,
    hash_to_scalar,
    neg_base_multiple,
    random_scalar,
)
from ledger.range_fast import range_commitments_fast


# --- range proofs (disjunctive Chaum-Pedersen) -----------------------------------------
@dataclass(frozen=True)
class RangeProof:
    """Per branch j in [0, L]: a challenge c_j and a response v_j. The c_j sum to the
    Fiat-Shamir challenge; branch j's commitments are a_j = g^v_j alpha^-c_j and
    b_j = K^v_j (beta g^-j)^-c_j."""

    challenges: tuple[int, ...]
    responses: tuple[int, ...]


def prove_range(
    key: ElectionKey,
    ciphertext: Ciphertext | EncryptedSum,
    message: int,
    nonce: int,
    limit: int,
    domain: bytes,
    statement: bytes,
    blinder: Blinder,
    rng: Rng = random_scalar,
) -> RangeProof:
    """Prove that ``ciphertext`` = (g^nonce, g^message K^nonce) with 0 <= message <= limit.

    Every branch is computed by the same calls, the real one included (m stays secret):
    with random s_j and e_j, a_j = g^s_j and b_j = K^s_j g^((j - m) e_j); then c_j = e_j
    off the real branch, c_m = c - sum of the others, and v_j = s_j + r c_j for all j.
    Checking: g^v_j alpha^-c_j = g^s_j, and K^v_j (g^(m-j) K^r)^-c_j = K^s_j g^((j-m) c_j),
    which is b_j since c_j = e_j wherever j != m."""
    if not 0 <= message <= limit:
        raise ValueError("message outside the range being proven")
    branches = range(limit + 1)
    s = [rng() for _ in branches]
    e = [rng() for _ in branches]
    parts = [statement]
    for j in branches:
        a = base_mul(s[j])
        b = blinder.times_base(key.point.mul(s[j]), (j - message) * e[j])
        parts.append(encode_optional(a))
        parts.append(encode_optional(b))
    c = hash_to_scalar(domain, b"".join(parts))
    challenges = [0 if j == message else e[j] for j in branches]
    challenges[message] = (c - sum(challenges)) % ORDER
    responses = tuple((s[j] + nonce * challenges[j]) % ORDER for j in branches)
    return RangeProof(tuple(challenges), responses)


def range_commitments(
    key_table: FixedBase, ciphertext: Ciphertext | EncryptedSum, proof: RangeProof
) -> list[bytes]:
    """The commitments (a_0, b_0, ..., a_L, b_L), encoded, that ``proof`` implies."""
    alpha, beta = ciphertext.alpha, ciphertext.beta
    out: list[bytes] = []
    for j, (c, v) in enumerate(zip(proof.challenges, proof.responses, strict=True)):
        neg_c = ORDER - c if c else 0
        shifted = beta if j == 0 else add((beta, neg_base_multiple(j)))
        a = add((base_mul(v), None if alpha is None else alpha.mul(neg_c)))
        b = add((key_table.mul(v), None if shifted is None else shifted.mul(neg_c)))
        out.append(encode_optional(a))
        out.append(encode_optional(b))
    return out


def verify_range(
    key_table: FixedBase,
    ciphertext: Ciphertext | EncryptedSum,
    proof: RangeProof,
    limit: int,
    domain: bytes,
    statement: bytes,
) -> bool:
    """Whether ``proof`` shows ``ciphertext`` encrypts a value in [0, limit] under the
    key whose table is ``key_table``, for this domain and statement."""
    if len(proof.challenges) != limit + 1 or len(proof.responses) != limit + 1:
        return False
    commitments = None
    if ciphertext.alpha is not None and ciphertext.beta is not None:
        commitments = range_commitments_fast(
            key_table, ciphertext.alpha.raw, ciphertext.beta.raw, proof.challenges, proof.responses
        )
    if commitments is None:
        commitments = b"".join(range_commitments(key_table, ciphertext, proof))
    c = hash_to_scalar(domain, statement + commitments)
    return sum(proof.challenges) % ORDER == c


# --- Chaum-Pedersen (equal discrete logs) ----------------------------------------------
@dataclass(frozen=True)
class DleqProof:
    """log_g X = log_A D, as (c, v) with a = g^v X^-c, b = A^v D^-c."""

    challenge: int
    response: int


def prove_dleq(
    secret: int, base: Point, domain: bytes, statement: bytes, rng: Rng = random_scalar
) -> DleqProof:
    """Prove log_g(g^secret) = log_base(base^secret). The statement must contain both
    g^secret and base^secret (and whatever the proof is bound to)."""
    w = rng()
    a, b = base_mul(w), base.mul(w)
    c = hash_to_scalar(domain, statement + encode_optional(a) + encode_optional(b))
    return DleqProof(c, (w + c * secret) % ORDER)


def verify_dleq(
    public: Point, base: Point, result: Point | None, proof: DleqProof, domain: bytes, statement: bytes
) -> bool:
    """Whether ``proof`` shows log_g(public) = log_base(result)."""
    neg_c = ORDER - proof.challenge if proof.challenge else 0
    a = add((base_mul(proof.response), public.mul(neg_c)))
    b = add((base.mul(proof.response), None if result is None else result.mul(neg_c)))
    c = hash_to_scalar(domain, statement + encode_optional(a) + encode_optional(b))
    return c == proof.challenge


# --- Schnorr (knowledge of a discrete log) ---------------------------------------------
@dataclass(frozen=True)
class SchnorrProof:
    """Knowledge of log_g C, as (c, v) with a = g^v C^-c."""

    challenge: int
    response: int


def prove_schnorr(secret: int, domain: bytes, statement: bytes, rng: Rng = random_scalar) -> SchnorrProof:
    """Prove knowledge of ``secret`` for g^secret (which the statement must contain)."""
    w = rng()
    c = hash_to_scalar(domain, statement + encode_optional(base_mul(w)))
    return SchnorrProof(c, (w + c * secret) % ORDER)


def verify_schnorr(public: Point, proof: SchnorrProof, domain: bytes, statement: bytes) -> bool:
    neg_c = ORDER - proof.challenge if proof.challenge else 0
    a = add((base_mul(proof.response), public.mul(neg_c)))
    return hash_to_scalar(domain, statement + encode_optional(a)) == proof.challenge
