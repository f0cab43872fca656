"""secp256k1 keys and ECDSA signatures in one canonical form.

Public keys are 33-byte compressed points; signatures are 64-byte compact (r || s) with
low S, which libsecp256k1's verify insists on. Both forms are canonical, so a signed
object's bytes (and so its hash, the voter's tracking code) cannot be malleated.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

import coincurve
from coincurve._libsecp256k1 import ffi, lib

from ledger.errors import BadPublicKey, BadSignature
from ledger.hashing import keccak256

PUBLIC_KEY_SIZE = 33
SIGNATURE_SIZE = 64
DIGEST_SIZE = 32
_CTX = coincurve.GLOBAL_CONTEXT.ctx
_SCRATCH = threading.local()


@dataclass(frozen=True)
class SigningKey:
    """A private key. ``secret`` never leaves the process except to its key file."""

    secret: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        while True:
            candidate = secrets.token_bytes(32)
            if lib.secp256k1_ec_seckey_verify(_CTX, candidate):
                return cls(candidate)

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic key for tests, demos and benchmarks (never for real elections)."""
        counter = 0
        while True:
            candidate = keccak256(b"ballot-ledger/test-key" + seed + counter.to_bytes(4, "big"))
            if lib.secp256k1_ec_seckey_verify(_CTX, candidate):
                return cls(candidate)
            counter += 1

    def __post_init__(self) -> None:
        if len(self.secret) != 32 or not lib.secp256k1_ec_seckey_verify(_CTX, self.secret):
            raise BadPublicKey("not a valid secp256k1 secret key")

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"SigningKey(public={self.public_key.hex()})"

    @property
    def public_key(self) -> bytes:
        return coincurve.PrivateKey(self.secret).public_key.format(compressed=True)

    def sign(self, digest: bytes) -> bytes:
        """RFC 6979 deterministic, low-S signature over a 32-byte digest."""
        if len(digest) != DIGEST_SIZE:
            raise ValueError("sign() takes a 32-byte digest")
        recoverable = coincurve.PrivateKey(self.secret).sign_recoverable(digest, hasher=None)
        return recoverable[:SIGNATURE_SIZE]


def check_public_key(public_key: bytes) -> None:
    if len(public_key) != PUBLIC_KEY_SIZE or public_key[0] not in (2, 3):
        raise BadPublicKey("public key must be a 33-byte compressed secp256k1 point")
    point = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ec_pubkey_parse(_CTX, point, public_key, PUBLIC_KEY_SIZE):
        raise BadPublicKey("public key is not on the secp256k1 curve")


def is_valid_signature(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a canonical signature of ``digest`` by ``public_key``."""
    if len(signature) != SIGNATURE_SIZE or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    # Scratch structs reused across calls (no allocation per signature), one pair per
    # thread; every call overwrites them fully before use.
    try:
        sig, point = _SCRATCH.sig, _SCRATCH.point
    except AttributeError:
        sig = _SCRATCH.sig = ffi.new("secp256k1_ecdsa_signature *")
        point = _SCRATCH.point = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ecdsa_signature_parse_compact(_CTX, sig, signature):
        return False
    if not lib.secp256k1_ec_pubkey_parse(_CTX, point, public_key, PUBLIC_KEY_SIZE):
        return False
    # secp256k1_ecdsa_verify refuses high-S signatures, which keeps signatures canonical.
    return bool(lib.secp256k1_ecdsa_verify(_CTX, sig, digest, point))


def verify_signature(public_key: bytes, digest: bytes, signature: bytes, what: str) -> None:
    if not is_valid_signature(public_key, digest, signature):
        raise BadSignature(f"{what}: signature does not verify")


def address_of(public_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a public key (used by the EVM side)."""
    uncompressed = coincurve.PublicKey(public_key).format(compressed=False)
    return keccak256(uncompressed[1:])[12:]
