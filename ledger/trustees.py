"""The trustees' key ceremony (pure): Feldman VSS, encrypted shares, complaints, the joint key.

n trustees, numbered 1..n (their polynomial evaluation points), threshold t.

1. Each trustee i draws a secret polynomial f_i of degree t-1 and publishes
   ``Commitments``: C_ik = g^a_ik for each coefficient, each with a Schnorr proof of
   knowledge bound to (chain, election, i, k), so no trustee can publish a commitment
   derived from another's (a rogue-key attack on the joint key).
2. For every other trustee j it publishes ``EncryptedShare``: s_ij = f_i(j) encrypted to
   j's encryption key E_j (``CeremonyContext.trustees``) by ECIES: an ephemeral
   Y = g^y, the shared point S = E_j^y, an AES-256-GCM key from keccak256 of
   (tag, chain, election, i, j, Y, E_j, S). Each key encrypts one message, so the
   GCM nonce is fixed (zero).
3. Trustee j decrypts and checks g^s_ij = prod_k C_ik^(j^k) (``verify_share``). If the
   share does not decrypt or does not verify, j posts a ``Complaint``: the shared point
   S = Y^e_j with a Chaum-Pedersen proof that log_g E_j = log_Y S. Anyone can then
   rebuild the AES key, decrypt the share and see that it fails, so a complaint is
   judged from public data alone (``complaint_upheld``). Revealing S exposes only that
   one message (its ephemeral key is used once), never e_j. A complaint whose proof
   fails is refused; one that names a share which decrypts and verifies is rejected,
   and the complainant is the liar.
4. The qualified dealers are those whose commitments verify and against whom no
   complaint is upheld. The joint key is K = prod over qualified i of C_i0
   (``joint_key``), and trustee j's public share key X_j = g^x_j, where
   x_j = sum over qualified i of s_ij, is prod_i prod_k C_ik^(j^k)
   (``public_share_key``): both follow from the published commitments alone.

Trustee secrets (encryption key, polynomial, final share) leave a process only as a
passphrase-sealed blob (``seal_secret`` / ``open_secret``: scrypt and AES-256-GCM).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from Crypto.Cipher import AES

from ledger import codec
from ledger.crypto import SigningKey
from ledger.errors import BadCeremonyProof, BadComplaint, BadEncoding, BadKeyFile, BadShare
from ledger.group import (
    ORDER,
    POINT_SIZE,
    Point,
    Rng,
    add,
    base_mul,
    decode_scalar,
    encode_scalar,
    random_scalar,
)
from ledger.hashing import keccak256, tag
from ledger.sigma import DleqProof, SchnorrProof, prove_dleq, prove_schnorr, verify_dleq, verify_schnorr

MAX_TRUSTEES = 64
COEFFICIENT_DOMAIN = tag("trustee/coefficient-pok")
SHARE_KDF_DOMAIN = tag("trustee/share-kdf")
COMPLAINT_DOMAIN = tag("trustee/complaint-dleq")
_GCM_NONCE = b"\x00" * 12  # one message per key (fresh ephemeral), so a fixed nonce is safe
_SHARE_CIPHERTEXT_SIZE = 32 + 16  # the share, then the GCM tag


@dataclass(frozen=True)
class CeremonyContext:
    """An election's trustees: their encryption public keys (trustee i is at i - 1)."""

    chain_id: str
    election_id: str
    trustees: tuple[bytes, ...]
    threshold: int

    def __post_init__(self) -> None:
        n = len(self.trustees)
        if not 1 <= n <= MAX_TRUSTEES or not 1 <= self.threshold <= n:
            raise BadCeremonyProof(f"{n} trustees with threshold {self.threshold}")
        for i, key in enumerate(self.trustees, start=1):
            Point.decode(key, f"trustee {i} encryption key")

    def trustee_key(self, index: int) -> Point:
        self.check_index(index)
        return Point.decode(self.trustees[index - 1])

    def check_index(self, index: int) -> None:
        if not 1 <= index <= len(self.trustees):
            raise BadEncoding(f"trustee index {index} outside 1..{len(self.trustees)}")

    def _prefix(self, *indices: int) -> bytes:
        return codec.encode([self.chain_id.encode(), self.election_id.encode(), *(codec.int_bytes(i) for i in indices)])


# --- secrets ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TrusteeSecret:
    """One trustee's secret material: its encryption key e (E = g^e is published), its
    polynomial's coefficients, and once the ceremony is over its share x of the key."""

    index: int
    encryption_secret: int
    coefficients: tuple[int, ...]
    share: int | None = None

    def __repr__(self) -> str:  # never print secrets
        return f"TrusteeSecret(index={self.index}, <secret>)"

    @classmethod
    def generate(cls, index: int, threshold: int, rng: Rng = random_scalar) -> TrusteeSecret:
        return cls(index, rng(), tuple(rng() for _ in range(threshold)))

    @property
    def encryption_key(self) -> bytes:
        point = base_mul(self.encryption_secret)
        assert point is not None
        return point.encode()

    @property
    def signing_key(self) -> SigningKey:
        """The same key as the one its transactions are signed with: a trustee's registry
        calls come from the address of the public key the election lists for it."""
        return SigningKey(encode_scalar(self.encryption_secret))

    def evaluate(self, x: int) -> int:
        """f(x) by Horner's rule."""
        acc = 0
        for a in reversed(self.coefficients):
            acc = (acc * x + a) % ORDER
        return acc

    def with_share(self, share: int) -> TrusteeSecret:
        return TrusteeSecret(self.index, self.encryption_secret, self.coefficients, share)

    def encode(self) -> bytes:
        return codec.encode(
            [
                codec.int_bytes(self.index),
                encode_scalar(self.encryption_secret),
                [encode_scalar(a) for a in self.coefficients],
                b"" if self.share is None else encode_scalar(self.share),
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> TrusteeSecret:
        index, enc, coeffs, share = codec.as_list(codec.decode(raw, max_size=4096), 4, "trustee secret")
        coefficients = codec.as_bytes_list(coeffs, "coefficients", size=32, max_items=MAX_TRUSTEES)
        share_raw = codec.as_bytes(share, "share")
        return cls(
            codec.as_int(index, "index"),
            decode_scalar(codec.as_bytes(enc, "encryption secret")),
            tuple(decode_scalar(a, "coefficient") for a in coefficients),
            None if share_raw == b"" else decode_scalar(share_raw, "share"),
        )


# --- commitments -----------------------------------------------------------------------
@dataclass(frozen=True)
class Commitments:
    """Trustee ``dealer``'s Feldman commitments C_k = g^a_k with proofs of knowledge."""

    dealer: int
    points: tuple[Point, ...]
    proofs: tuple[SchnorrProof, ...]

    def encode(self) -> bytes:
        return codec.encode(
            [
                codec.int_bytes(self.dealer),
                [p.encode() for p in self.points],
                [[encode_scalar(p.challenge), encode_scalar(p.response)] for p in self.proofs],
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Commitments:
        dealer, points, proofs = codec.as_list(
            codec.decode(raw, max_size=MAX_TRUSTEES * 110 + 64), 3, "commitments"
        )
        pts = codec.as_bytes_list(points, "commitments", size=POINT_SIZE, max_items=MAX_TRUSTEES)
        proof_items = codec.as_list(proofs, len(pts), "commitment proofs")
        parsed = []
        for k, item in enumerate(proof_items):
            what = f"commitment proof {k}"
            c, v = codec.as_list(item, 2, what)
            parsed.append(SchnorrProof(decode_scalar(codec.as_bytes(c, what), what),
                                       decode_scalar(codec.as_bytes(v, what), what)))
        return cls(
            codec.as_int(dealer, "dealer"),
            tuple(Point.decode(p, f"commitment {k}") for k, p in enumerate(pts)),
            tuple(parsed),
        )


def _coefficient_statement(ctx: CeremonyContext, dealer: int, k: int, point: Point) -> bytes:
    return ctx._prefix(dealer, k) + point.encode()


def make_commitments(ctx: CeremonyContext, secret: TrusteeSecret, rng: Rng = random_scalar) -> Commitments:
    points, proofs = [], []
    for k, a in enumerate(secret.coefficients):
        point = base_mul(a)
        assert point is not None  # coefficients are drawn from [1, ORDER)
        points.append(point)
        proofs.append(prove_schnorr(a, COEFFICIENT_DOMAIN, _coefficient_statement(ctx, secret.index, k, point), rng))
    return Commitments(secret.index, tuple(points), tuple(proofs))


def verify_commitments(ctx: CeremonyContext, commitments: Commitments) -> None:
    """Raise ``BadCeremonyProof`` naming the trustee and coefficient that fail."""
    ctx.check_index(commitments.dealer)
    where = f"trustee {commitments.dealer}"
    if len(commitments.points) != ctx.threshold or len(commitments.proofs) != ctx.threshold:
        raise BadCeremonyProof(f"expected {ctx.threshold} commitments", where=where)
    for k, (point, proof) in enumerate(zip(commitments.points, commitments.proofs, strict=True)):
        statement = _coefficient_statement(ctx, commitments.dealer, k, point)
        if not verify_schnorr(point, proof, COEFFICIENT_DOMAIN, statement):
            raise BadCeremonyProof("proof of knowledge does not verify", where=f"{where} coefficient {k}")


def share_public(recipient: int, commitments: Commitments) -> Point | None:
    """g^f_i(j) from the commitments alone: prod_k C_ik^(j^k)."""
    acc: Point | None = None
    for point in reversed(commitments.points):  # Horner in the exponent
        acc = add((None if acc is None else acc.mul(recipient), point))
    return acc


def verify_share(share: int, recipient: int, commitments: Commitments) -> bool:
    """Feldman's check: g^share = prod_k C_k^(recipient^k)."""
    expected = share_public(recipient, commitments)
    return base_mul(share) == expected if expected is not None else share % ORDER == 0


# --- encrypted shares ------------------------------------------------------------------
@dataclass(frozen=True)
class EncryptedShare:
    dealer: int
    recipient: int
    ephemeral: Point  # Y = g^y
    ciphertext: bytes  # AES-256-GCM of the 32-byte share, then its 16-byte tag

    def encode(self) -> bytes:
        return codec.encode(
            [codec.int_bytes(self.dealer), codec.int_bytes(self.recipient), self.ephemeral.encode(), self.ciphertext]
        )

    @classmethod
    def decode(cls, raw: bytes) -> EncryptedShare:
        dealer, recipient, eph, ct = codec.as_list(codec.decode(raw, max_size=256), 4, "encrypted share")
        return cls(
            codec.as_int(dealer, "dealer"),
            codec.as_int(recipient, "recipient"),
            Point.decode(codec.as_bytes(eph, "ephemeral key"), "ephemeral key"),
            codec.as_bytes(ct, "share ciphertext", size=_SHARE_CIPHERTEXT_SIZE),
        )


def _share_key(ctx: CeremonyContext, dealer: int, recipient: int, ephemeral: Point, shared: Point) -> bytes:
    material = ctx._prefix(dealer, recipient) + ephemeral.encode() + ctx.trustees[recipient - 1] + shared.encode()
    return keccak256(SHARE_KDF_DOMAIN + material)


def _aad(dealer: int, recipient: int) -> bytes:
    return dealer.to_bytes(2, "big") + recipient.to_bytes(2, "big")


def encrypt_share(
    ctx: CeremonyContext, dealer: int, recipient: int, share: int, rng: Rng = random_scalar
) -> EncryptedShare:
    ctx.check_index(dealer)
    y = rng()
    ephemeral, shared = base_mul(y), ctx.trustee_key(recipient).mul(y)
    assert ephemeral is not None and shared is not None
    cipher = AES.new(_share_key(ctx, dealer, recipient, ephemeral, shared), AES.MODE_GCM, nonce=_GCM_NONCE)
    cipher.update(_aad(dealer, recipient))
    body, mac = cipher.encrypt_and_digest(encode_scalar(share))
    return EncryptedShare(dealer, recipient, ephemeral, body + mac)


def _open_with_shared(ctx: CeremonyContext, enc: EncryptedShare, shared: Point) -> int | None:
    """The share, or None if it does not decrypt to a canonical scalar."""
    key = _share_key(ctx, enc.dealer, enc.recipient, enc.ephemeral, shared)
    cipher = AES.new(key, AES.MODE_GCM, nonce=_GCM_NONCE)
    cipher.update(_aad(enc.dealer, enc.recipient))
    try:
        plain = cipher.decrypt_and_verify(enc.ciphertext[:32], enc.ciphertext[32:])
        return decode_scalar(plain)
    except (ValueError, BadEncoding):
        return None


def decrypt_share(ctx: CeremonyContext, enc: EncryptedShare, recipient_secret: TrusteeSecret) -> int:
    """The recipient's share from ``enc``; ``BadShare`` if it does not decrypt."""
    if recipient_secret.index != enc.recipient:
        raise ValueError("this share is for another trustee")
    shared = enc.ephemeral.mul(recipient_secret.encryption_secret)
    assert shared is not None
    share = _open_with_shared(ctx, enc, shared)
    if share is None:
        raise BadShare("share does not decrypt", where=f"trustee {enc.dealer} to trustee {enc.recipient}")
    return share


def deal(
    ctx: CeremonyContext, secret: TrusteeSecret, rng: Rng = random_scalar
) -> tuple[Commitments, list[EncryptedShare]]:
    """Trustee ``secret.index``'s ceremony messages: its commitments and one encrypted
    share for every other trustee."""
    if len(secret.coefficients) != ctx.threshold:
        raise ValueError("polynomial degree does not match the threshold")
    shares = [
        encrypt_share(ctx, secret.index, j, secret.evaluate(j), rng)
        for j in range(1, len(ctx.trustees) + 1)
        if j != secret.index
    ]
    return make_commitments(ctx, secret, rng), shares


@dataclass(frozen=True)
class Dealing:
    """What one trustee posts in the ceremony: its commitments and, in recipient order,
    the share it encrypted to every other trustee (``deal``'s output as one message)."""

    commitments: Commitments
    shares: tuple[EncryptedShare, ...]

    @property
    def dealer(self) -> int:
        return self.commitments.dealer

    def encode(self) -> bytes:
        return codec.encode([self.commitments.encode(), [s.encode() for s in self.shares]])

    @classmethod
    def decode(cls, raw: bytes) -> Dealing:
        """Canonical encodings only; a dealing is at most MAX_DEALING_BYTES."""
        if len(raw) > MAX_DEALING_BYTES:
            raise BadEncoding(f"dealing of {len(raw)} bytes exceeds {MAX_DEALING_BYTES}")
        commitments, shares = codec.as_list(codec.decode(raw, max_size=MAX_DEALING_BYTES), 2, "dealing")
        encoded = codec.as_list(shares, None, "dealing shares")
        if len(encoded) >= MAX_TRUSTEES:
            raise BadEncoding(f"a dealing has at most {MAX_TRUSTEES - 1} shares")
        dealing = cls(Commitments.decode(codec.as_bytes(commitments, "commitments")),
                      tuple(EncryptedShare.decode(codec.as_bytes(x, "encrypted share")) for x in encoded))
        if dealing.encode() != raw:
            raise BadEncoding("dealing: non-canonical encoding")
        return dealing

    def share_to(self, recipient: int) -> EncryptedShare:
        for share in self.shares:
            if share.recipient == recipient:
                return share
        raise BadShare(f"trustee {self.dealer} dealt no share to trustee {recipient}")


MAX_DEALING_BYTES = 16384  # the registry's bound; 64 commitments and 63 shares take ~12 KB


def check_dealing(ctx: CeremonyContext, dealing: Dealing, dealer: int) -> None:
    """What anyone can check of trustee ``dealer``'s dealing: its commitments' proofs, and
    one well-formed share to each other trustee, in order (whether a share is right only
    its recipient can tell: see complaints). Raises ``BadCeremonyProof``."""
    if dealing.dealer != dealer:
        raise BadCeremonyProof(f"the dealing is trustee {dealing.dealer}'s", where=f"trustee {dealer}")
    verify_commitments(ctx, dealing.commitments)
    expected = [j for j in range(1, len(ctx.trustees) + 1) if j != dealer]
    if [(s.dealer, s.recipient) for s in dealing.shares] != [(dealer, j) for j in expected]:
        raise BadCeremonyProof("the dealing needs one share to every other trustee, in order",
                               where=f"trustee {dealer}")


def deal_message(ctx: CeremonyContext, secret: TrusteeSecret, rng: Rng = random_scalar) -> Dealing:
    """:func:`deal` as the one message a trustee posts."""
    commitments, shares = deal(ctx, secret, rng)
    return Dealing(commitments, tuple(shares))


# --- complaints ------------------------------------------------------------------------
@dataclass(frozen=True)
class Complaint:
    """Trustee ``recipient`` says ``dealer``'s share to it is bad, revealing the shared
    point S = Y^e of that one message with a proof that log_g E = log_Y S."""

    dealer: int
    recipient: int
    shared: Point
    proof: DleqProof

    def encode(self) -> bytes:
        return codec.encode(
            [
                codec.int_bytes(self.dealer),
                codec.int_bytes(self.recipient),
                self.shared.encode(),
                encode_scalar(self.proof.challenge),
                encode_scalar(self.proof.response),
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Complaint:
        dealer, recipient, shared, c, v = codec.as_list(codec.decode(raw, max_size=256), 5, "complaint")
        return cls(
            codec.as_int(dealer, "dealer"),
            codec.as_int(recipient, "recipient"),
            Point.decode(codec.as_bytes(shared, "shared point"), "shared point"),
            DleqProof(decode_scalar(codec.as_bytes(c, "challenge")), decode_scalar(codec.as_bytes(v, "response"))),
        )


def _complaint_statement(ctx: CeremonyContext, enc: EncryptedShare, shared: Point) -> bytes:
    return (
        ctx._prefix(enc.dealer, enc.recipient)
        + ctx.trustees[enc.recipient - 1]
        + enc.ephemeral.encode()
        + shared.encode()
    )


def make_complaint(
    ctx: CeremonyContext, enc: EncryptedShare, recipient_secret: TrusteeSecret, rng: Rng = random_scalar
) -> Complaint:
    shared = enc.ephemeral.mul(recipient_secret.encryption_secret)
    assert shared is not None
    proof = prove_dleq(recipient_secret.encryption_secret, enc.ephemeral, COMPLAINT_DOMAIN,
                       _complaint_statement(ctx, enc, shared), rng)
    return Complaint(enc.dealer, enc.recipient, shared, proof)


def complaint_upheld(
    ctx: CeremonyContext, complaint: Complaint, enc: EncryptedShare, commitments: Commitments
) -> bool:
    """Judge a complaint from public data: True if the named share is bad (the dealer
    is disqualified), False if it decrypts and verifies (the complaint is false).
    ``BadComplaint`` if the complaint does not match the share or its proof fails."""
    where = f"trustee {complaint.recipient} against trustee {complaint.dealer}"
    if (complaint.dealer, complaint.recipient) != (enc.dealer, enc.recipient) or enc.dealer != commitments.dealer:
        raise BadComplaint("complaint, share and commitments name different trustees", where=where)
    ctx.check_index(complaint.recipient)
    statement = _complaint_statement(ctx, enc, complaint.shared)
    if not verify_dleq(ctx.trustee_key(complaint.recipient), enc.ephemeral, complaint.shared, complaint.proof,
                       COMPLAINT_DOMAIN, statement):
        raise BadComplaint("the revealed shared point's proof does not verify", where=where)
    share = _open_with_shared(ctx, enc, complaint.shared)
    return share is None or not verify_share(share, enc.recipient, commitments)


# --- the joint key ---------------------------------------------------------------------
def qualified_dealers(
    ctx: CeremonyContext, commitments: Iterable[Commitments], upheld_against: Iterable[int] = ()
) -> list[Commitments]:
    """The commitments of dealers that count: each trustee once, its proofs verified,
    no upheld complaint against it. Invalid ones are dropped (``verify_commitments``
    names why)."""
    excluded = set(upheld_against)
    seen: dict[int, Commitments] = {}
    for c in commitments:
        if c.dealer in excluded or c.dealer in seen:
            continue
        try:
            verify_commitments(ctx, c)
        except (BadCeremonyProof, BadEncoding):
            continue
        seen[c.dealer] = c
    return [seen[i] for i in sorted(seen)]


def joint_key(qualified: Sequence[Commitments]) -> Point:
    """K = prod over qualified dealers of C_i0."""
    key = add(c.points[0] for c in qualified)
    if key is None:
        raise BadCeremonyProof("the joint key is the identity")
    return key


def public_share_key(recipient: int, qualified: Sequence[Commitments]) -> Point | None:
    """X_j = g^x_j, where x_j = sum of f_i(j) over qualified dealers."""
    return add(share_public(recipient, c) for c in qualified)


def combine_shares(shares: Iterable[int]) -> int:
    """x_j from the shares a trustee received (its own f_j(j) included)."""
    return sum(shares) % ORDER


# --- sealed secrets --------------------------------------------------------------------
KEY_FILE_VERSION = b"ballot-ledger/trustee-key/v1"
_SCRYPT_LOG2_N = 15
_SCRYPT_R = 8
_SCRYPT_P = 1
_MAX_SCRYPT_LOG2_N = 20  # bounds what a hostile file can make us allocate (128 * r * 2^n bytes)


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        passphrase.encode(), salt=salt, n=1 << log2_n, r=r, p=p, maxmem=256 * r * (1 << log2_n) + (1 << 20), dklen=32
    )


def seal_secret(plaintext: bytes, passphrase: str, *, log2_n: int = _SCRYPT_LOG2_N) -> bytes:
    """Encrypt ``plaintext`` (a ``TrusteeSecret.encode()``) under a passphrase:
    RLP [version, salt, [log2 N, r, p], nonce, AES-256-GCM ciphertext || tag], the
    header authenticated as associated data."""
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    params: list[codec.Item] = [codec.int_bytes(log2_n), codec.int_bytes(_SCRYPT_R), codec.int_bytes(_SCRYPT_P)]
    header = codec.encode([KEY_FILE_VERSION, salt, params])
    cipher = AES.new(_derive(passphrase, salt, log2_n, _SCRYPT_R, _SCRYPT_P), AES.MODE_GCM, nonce=nonce)
    cipher.update(header)
    body, mac = cipher.encrypt_and_digest(plaintext)
    return codec.encode([KEY_FILE_VERSION, salt, params, nonce, body + mac])


def open_secret(blob: bytes, passphrase: str) -> bytes:
    """The plaintext of ``seal_secret``; ``BadKeyFile`` if malformed or the passphrase
    is wrong (the two are told apart in the message, never by what is revealed)."""
    try:
        version, salt, params, nonce, body = codec.as_list(codec.decode(blob, max_size=1 << 16), 5, "key file")
        log2_n, r, p = (codec.as_int(x, "scrypt parameter") for x in codec.as_list(params, 3, "scrypt parameters"))
        salt_b = codec.as_bytes(salt, "salt", size=16)
        nonce_b = codec.as_bytes(nonce, "nonce", size=12)
        body_b = codec.as_bytes(body, "ciphertext")
    except BadEncoding as exc:
        raise BadKeyFile(f"malformed key file: {exc.message}") from exc
    if version != KEY_FILE_VERSION:
        raise BadKeyFile("not a trustee key file of this version")
    if not (10 <= log2_n <= _MAX_SCRYPT_LOG2_N and 1 <= r <= 16 and 1 <= p <= 4) or len(body_b) < 16:
        raise BadKeyFile("key file parameters out of bounds")
    header = codec.encode([version, salt_b, [codec.int_bytes(log2_n), codec.int_bytes(r), codec.int_bytes(p)]])
    cipher = AES.new(_derive(passphrase, salt_b, log2_n, r, p), AES.MODE_GCM, nonce=nonce_b)
    cipher.update(header)
    try:
        return bytes(cipher.decrypt_and_verify(body_b[:-16], body_b[-16:]))
    except ValueError as exc:
        raise BadKeyFile("wrong passphrase or damaged key file") from exc
