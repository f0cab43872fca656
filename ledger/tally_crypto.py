"""The encrypted tally: homomorphic sums, trustees' decryption shares, the counts.

1. ``CiphertextAccumulator`` sums, per choice, the ciphertexts of exactly the ballots
   it is given (the caller applies the re-voting policy): (A_c, B_c).
2. Each trustee j posts a ``DecryptionShare``: D_jc = A_c^x_j per choice, with a
   Chaum-Pedersen proof that log_g X_j = log_A_c D_jc, where X_j is its public share key
   (``trustees.public_share_key``). The proof's statement binds the chain, election,
   joint key, trustee and choice.
3. Any t valid shares combine: g^m_c = B_c / prod_j D_jc^lambda_j (Lagrange
   coefficients at 0 over the t trustees used), and m_c is a bounded discrete log,
   at most the number of ballots counted.

``verify_tally`` rechecks a published result from the sums: every posted share's proof
(a bad one is named and left out, and the result still stands on t good ones), and
g^count_c = the combination, per choice. A choice whose A_c is the identity (hostile
ballots can cancel) needs no share: its count is the discrete log of B_c, and its share
entry must be empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from coincurve._libsecp256k1 import ffi, lib

from ledger import codec
from ledger.elgamal import Ciphertext, EncryptedSum, discrete_log
from ledger.errors import BadDecryptionShare, BadEncoding, BadPoint, BadTally, InsufficientShares
from ledger.group import (
    LIB_CONTEXT,
    ORDER,
    POINT_SIZE,
    Point,
    Rng,
    add,
    base_mul,
    decode_optional,
    decode_scalar,
    encode_optional,
    encode_scalar,
    lagrange_at_zero,
    random_scalar,
)
from ledger.hashing import tag
from ledger.sigma import DleqProof, prove_dleq, verify_dleq
from ledger.trustees import CeremonyContext, Commitments, joint_key, public_share_key

SHARE_DOMAIN = tag("tally/decryption-share")
MAX_TALLY_CHOICES = 64 * 64
_CHUNK = 1024  # points summed per libsecp256k1 combine call


# --- sums ------------------------------------------------------------------------------
class CiphertextAccumulator:
    """Running sums per choice. Points are parsed into reused struct arrays and summed
    by one library call per 1,024 ballots (slot 0 carries the running total), so a
    tally of millions of ballots allocates nothing per point. Not thread-safe: one
    accumulator per thread or process (partial sums add with ``EncryptedSum.plus``)."""

    def __init__(self, choices: int) -> None:
        if not 1 <= choices <= MAX_TALLY_CHOICES:
            raise ValueError("choices out of range")
        self.choices = choices
        self.ballots = 0
        # Up to 1,024 ballots per library call, fewer for very wide ballots so that the
        # arrays stay within about 8 MiB.
        self._chunk = max(16, min(_CHUNK, (1 << 16) // choices))
        self._structs = [ffi.new(f"secp256k1_pubkey[{self._chunk + 1}]") for _ in range(2 * choices)]
        self._ptrs = [ffi.new(f"secp256k1_pubkey *[{self._chunk + 1}]") for _ in range(2 * choices)]
        for structs, ptrs in zip(self._structs, self._ptrs, strict=True):
            ptrs[0 : self._chunk + 1] = [structs + i for i in range(self._chunk + 1)]
        self._out = ffi.new("secp256k1_pubkey *")  # combine zeroes its output first: never an input
        self._has_total = [False] * (2 * choices)
        self._fill = 1  # next free slot, the same in every array (one point per ballot each)

    def add_ciphertexts(self, ciphertexts: Sequence[Ciphertext]) -> None:
        """One ballot's ciphertexts in choice order (``EncryptedBallot.ciphertexts()``)."""
        if len(ciphertexts) != self.choices:
            raise ValueError(f"{len(ciphertexts)} ciphertexts for {self.choices} choices")
        slot = self._fill
        for k, ct in enumerate(ciphertexts):
            ffi.memmove(self._ptrs[2 * k][slot], ct.alpha.raw, 64)
            ffi.memmove(self._ptrs[2 * k + 1][slot], ct.beta.raw, 64)
        self._advance()

    def add_encoded(self, points: Sequence[bytes]) -> None:
        """One checked ballot's alpha_0, beta_0, alpha_1, ... as 33-byte encodings
        (``encrypted_ballot.encoded_ciphertexts``): parsed straight into the sums."""
        if len(points) != 2 * self.choices:
            raise ValueError(f"{len(points)} points for {self.choices} choices")
        slot = self._fill
        parse, ctx, ptrs = lib.secp256k1_ec_pubkey_parse, LIB_CONTEXT, self._ptrs
        for k, raw in enumerate(points):
            if len(raw) != POINT_SIZE or not parse(ctx, ptrs[k][slot], raw, POINT_SIZE):
                raise BadPoint("a ciphertext point of a counted ballot does not parse")
        self._advance()

    def _advance(self) -> None:
        self.ballots += 1
        self._fill += 1
        if self._fill > self._chunk:
            self._flush()

    def _flush(self) -> None:
        for k in range(2 * self.choices):
            ptrs = self._ptrs[k]
            start = 0 if self._has_total[k] else 1
            count = self._fill - start
            if count <= 0:
                continue
            # The sum goes to slot 0, the next chunk's first term; the identity (hostile
            # ballots can cancel) leaves slot 0 unused.
            total = lib.secp256k1_ec_pubkey_combine(LIB_CONTEXT, self._out, ptrs + start, count)
            if total:
                ffi.memmove(ptrs[0], self._out, 64)
            self._has_total[k] = bool(total)
        self._fill = 1

    def sums(self) -> tuple[EncryptedSum, ...]:
        self._flush()
        out = []
        for c in range(self.choices):
            pair: list[Point | None] = []
            for k in (2 * c, 2 * c + 1):
                if self._has_total[k]:
                    raw = ffi.new("secp256k1_pubkey *")
                    ffi.memmove(raw, self._ptrs[k][0], 64)
                    pair.append(Point(raw))
                else:
                    pair.append(None)
            out.append(EncryptedSum(pair[0], pair[1]))
        return tuple(out)


# --- decryption shares -----------------------------------------------------------------
@dataclass(frozen=True)
class TallyContext:
    """What decryption shares are bound to, and the trustees' public share keys X_j
    (trustee j at index j - 1), all computed from the ceremony's commitments."""

    chain_id: str
    election_id: str
    joint_key: bytes
    threshold: int
    share_keys: tuple[bytes, ...]

    @classmethod
    def from_ceremony(cls, ceremony: CeremonyContext, qualified: Sequence[Commitments]) -> TallyContext:
        """The context a key ceremony leads to: K and every trustee's X_j from the
        qualified dealers' commitments (``trustees.qualified_dealers``)."""
        keys = []
        for j in range(1, len(ceremony.trustees) + 1):
            point = public_share_key(j, qualified)
            if point is None:  # needs the dealers' polynomials to vanish at j: a broken ceremony
                raise BadDecryptionShare(f"trustee {j}'s public share key is the identity")
            keys.append(point.encode())
        return cls(ceremony.chain_id, ceremony.election_id, joint_key(qualified).encode(), ceremony.threshold,
                   tuple(keys))

    def share_key(self, trustee: int) -> Point:
        if not 1 <= trustee <= len(self.share_keys):
            raise BadDecryptionShare(f"trustee {trustee} is not a trustee of this election")
        return _share_key_point(self.share_keys[trustee - 1])


def _share_key_point(raw: bytes) -> Point:
    return Point.decode(raw, "public share key")


@dataclass(frozen=True)
class ShareEntry:
    """D = A^x_j with its proof; both None where A is the identity."""

    point: Point | None
    proof: DleqProof | None


@dataclass(frozen=True)
class DecryptionShare:
    trustee: int
    entries: tuple[ShareEntry, ...]  # one per choice

    def encode(self) -> bytes:
        items: list[codec.Item] = []
        for e in self.entries:
            point = encode_optional(e.point)
            if e.proof is None:
                items.append([point, b"", b""])
            else:
                items.append([point, encode_scalar(e.proof.challenge), encode_scalar(e.proof.response)])
        return codec.encode([codec.int_bytes(self.trustee), items])

    @classmethod
    def decode(cls, raw: bytes) -> DecryptionShare:
        trustee, items = codec.as_list(codec.decode(raw, max_size=16 + MAX_TALLY_CHOICES * 104), 2, "decryption share")
        entries = []
        for c, item in enumerate(codec.as_list(items, None, "decryption share entries")):
            what = f"decryption share choice {c}"
            point_raw, c_raw, v_raw = (codec.as_bytes(x, what) for x in codec.as_list(item, 3, what))
            point = decode_optional(point_raw, what)
            if c_raw == b"" and v_raw == b"":
                proof = None
            else:
                proof = DleqProof(decode_scalar(c_raw, what), decode_scalar(v_raw, what))
            if (point is None) != (proof is None):
                raise BadEncoding(f"{what}: a share point comes with a proof, an empty one without")
            entries.append(ShareEntry(point, proof))
        return cls(codec.as_int(trustee, "trustee"), tuple(entries))


def _share_statement(ctx: TallyContext, trustee: int, choice: int, alpha: Point, result: Point | None) -> bytes:
    prefix = codec.encode(
        [ctx.chain_id.encode(), ctx.election_id.encode(), ctx.joint_key, codec.int_bytes(trustee),
         codec.int_bytes(choice)]
    )
    return prefix + ctx.share_keys[trustee - 1] + alpha.encode() + encode_optional(result)


def make_decryption_share(
    ctx: TallyContext, sums: Sequence[EncryptedSum], trustee: int, share: int, rng: Rng = random_scalar
) -> DecryptionShare:
    """Trustee ``trustee``'s share (its secret ``share`` = x_j) for every choice."""
    entries = []
    for c, total in enumerate(sums):
        if total.alpha is None:
            entries.append(ShareEntry(None, None))
            continue
        point = total.alpha.mul(share)
        statement = _share_statement(ctx, trustee, c, total.alpha, point)
        entries.append(ShareEntry(point, prove_dleq(share, total.alpha, SHARE_DOMAIN, statement, rng)))
    return DecryptionShare(trustee, tuple(entries))


def verify_decryption_share(ctx: TallyContext, sums: Sequence[EncryptedSum], share: DecryptionShare) -> None:
    """Raise ``BadDecryptionShare`` naming the trustee and choice that fail."""
    key = ctx.share_key(share.trustee)
    where = f"trustee {share.trustee}"
    if len(share.entries) != len(sums):
        raise BadDecryptionShare(f"{len(share.entries)} entries for {len(sums)} choices", where=where)
    for c, (total, entry) in enumerate(zip(sums, share.entries, strict=True)):
        if total.alpha is None:
            if entry.point is not None or entry.proof is not None:
                raise BadDecryptionShare("a share for a sum that needs none", where=f"{where} choice {c}")
            continue
        statement = _share_statement(ctx, share.trustee, c, total.alpha, entry.point)
        if entry.proof is None or not verify_dleq(key, total.alpha, entry.point, entry.proof, SHARE_DOMAIN, statement):
            raise BadDecryptionShare("the share's proof does not verify", where=f"{where} choice {c}")


def combine(sums: Sequence[EncryptedSum], shares: Sequence[DecryptionShare], threshold: int) -> list[Point | None]:
    """g^m_c per choice from exactly ``threshold`` verified shares of distinct trustees."""
    if len(shares) != threshold or len({s.trustee for s in shares}) != threshold:
        raise InsufficientShares(f"combining needs {threshold} shares of distinct trustees")
    indices = [s.trustee for s in shares]
    lambdas = [lagrange_at_zero(i, indices) for i in indices]
    out: list[Point | None] = []
    for c, total in enumerate(sums):
        if total.alpha is None:
            out.append(total.beta)
            continue
        terms: list[Point | None] = [total.beta]
        for share, lam in zip(shares, lambdas, strict=True):
            d = share.entries[c].point
            terms.append(None if d is None else d.mul(ORDER - lam))
        out.append(add(terms))
    return out


@dataclass(frozen=True)
class TallyOutcome:
    counts: tuple[int, ...]
    used: tuple[int, ...]  # trustees whose shares were combined
    rejected: Mapping[int, str]  # trustee -> why its share was refused (code and location)


def select_valid_shares(
    ctx: TallyContext, sums: Sequence[EncryptedSum], shares: Iterable[DecryptionShare]
) -> tuple[list[DecryptionShare], dict[int, str]]:
    """The first ``threshold`` valid shares by trustee index, and the refused ones named."""
    valid: list[DecryptionShare] = []
    rejected: dict[int, str] = {}
    seen: set[int] = set()
    for share in sorted(shares, key=lambda s: s.trustee):
        if share.trustee in seen:
            rejected[share.trustee] = "duplicate share"
            continue
        seen.add(share.trustee)
        try:
            verify_decryption_share(ctx, sums, share)
        except BadDecryptionShare as exc:
            rejected[share.trustee] = str(exc)
            continue
        if len(valid) < ctx.threshold:
            valid.append(share)
    if len(valid) < ctx.threshold:
        raise InsufficientShares(f"{len(valid)} valid shares, {ctx.threshold} needed; refused: {rejected}")
    return valid, rejected


def decrypt_tally(
    ctx: TallyContext, sums: Sequence[EncryptedSum], shares: Iterable[DecryptionShare], ballots: int
) -> TallyOutcome:
    """The counts from posted shares: bad shares are named and left out; any t good
    ones suffice. ``ballots`` (the number summed) bounds each count."""
    valid, rejected = select_valid_shares(ctx, sums, shares)
    points = combine(sums, valid, ctx.threshold)
    counts = []
    for c, point in enumerate(points):
        try:
            counts.append(discrete_log(point, ballots))
        except ValueError as exc:
            raise BadTally(f"no count in [0, {ballots}]", where=f"choice {c}") from exc
    return TallyOutcome(tuple(counts), tuple(s.trustee for s in valid), rejected)


def verify_tally(
    ctx: TallyContext,
    sums: Sequence[EncryptedSum],
    shares: Iterable[DecryptionShare],
    counts: Sequence[int],
    ballots: int,
) -> TallyOutcome:
    """Recheck a published result against the sums (which the caller recomputes from
    exactly the counted ballots): raises ``BadTally`` naming the first wrong choice,
    ``InsufficientShares`` without t valid shares; returns which shares were refused."""
    valid, rejected = select_valid_shares(ctx, sums, shares)
    if len(counts) != len(sums):
        raise BadTally(f"{len(counts)} counts for {len(sums)} choices")
    points = combine(sums, valid, ctx.threshold)
    for c, (count, point) in enumerate(zip(counts, points, strict=True)):
        if not 0 <= count <= ballots or base_mul(count) != point:
            raise BadTally(f"the published count {count} is not the decryption", where=f"choice {c}")
    return TallyOutcome(tuple(counts), tuple(s.trustee for s in valid), rejected)

