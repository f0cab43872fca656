"""Validator and authority key files: a plain hex secret or an Ethereum keystore (v3).

A keystore (the JSON ``geth``, ``clef`` and ``eth-account`` write) holds the secret
encrypted under a passphrase; the plain hex form stays for tests and local networks.
:func:`read_signing_key` tells them apart by the first byte (``{`` opens a keystore).

Every key file and passphrase file must be readable by its owner alone: a file that its
group or others may read is refused before it is used, in one line naming it. The
passphrase is asked for only when a keystore needs it, and never appears in an error,
a log line or a repr.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger import jsonbound
from ledger.crypto import SigningKey, address_of
from ledger.errors import BadKeyFile, LedgerError, Oversized
from ledger.files import write_atomic
from ledger.passphrase import check_passphrase, read_passphrase_file

MAX_KEY_FILE_BYTES = 16 * 1024  # a keystore is about 500 bytes; hex 65
MAX_KEYSTORE_DEPTH = 4
# What deriving a keystore's key may cost: scrypt memory is 128 * n * r bytes; the
# eth-account default (n = 2^18, r = 8) takes 256 MiB, and 2^20 with r = 8 (1 GiB) is
# the most a node will spend. PBKDF2 iterations likewise (eth-account: 1,000,000).
MAX_SCRYPT_BYTES = 1 << 30
MAX_SCRYPT_P = 16
MAX_PBKDF2_ROUNDS = 10_000_000
DEFAULT_SCRYPT_LOG2_N = 18

Passphrase = Callable[[], str]  # asked only when a keystore needs one


def check_owner_only(path: Path, what: str) -> None:
    """Refuse ``path`` if its group or others may read or write it (``BadKeyFile``)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise BadKeyFile(f"cannot read {what} {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadKeyFile(f"{what} {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                         f"make it owner-only: chmod 600 {path}")


def read_signing_key(path: Path, passphrase: Passphrase | None = None, *, what: str = "key file") -> SigningKey:
    """The secp256k1 key in ``path`` (plain hex or a keystore, owner-only); ``BadKeyFile``
    in one line for anything wrong: loose permissions, a malformed file, a keystore and
    no passphrase, a wrong passphrase."""
    check_owner_only(path, what)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise BadKeyFile(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise BadKeyFile(f"{what} {path} is larger than any key file ({MAX_KEY_FILE_BYTES} bytes)")
    if raw.lstrip().startswith(b"{"):
        if passphrase is None:
            raise BadKeyFile(f"{what} {path} is a keystore and no passphrase was given")
        return decrypt_keystore(raw, passphrase, where=f"{what} {path}")
    try:
        return SigningKey(bytes.fromhex(raw.decode("ascii").strip()))
    except (ValueError, LedgerError):
        raise BadKeyFile(f"{path} does not hold a secp256k1 secret key in hex or a keystore") from None


def _bounded_kdf(crypto: Any, where: str) -> None:
    """Refuse a keystore whose key derivation would cost more than :data:`MAX_SCRYPT_BYTES`
    or :data:`MAX_PBKDF2_ROUNDS` (checked before anything is derived)."""
    if not isinstance(crypto, dict) or not isinstance(crypto.get("kdfparams"), dict):
        raise BadKeyFile(f"{where}: not an Ethereum keystore (no crypto.kdfparams)")
    params = crypto["kdfparams"]

    def number(name: str) -> int:
        value = params.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise BadKeyFile(f"{where}: keystore kdfparams.{name} must be a positive integer")
        return value

    kdf = crypto.get("kdf")
    if kdf == "scrypt":
        n, r, p = number("n"), number("r"), number("p")
        if 128 * n * r > MAX_SCRYPT_BYTES or p > MAX_SCRYPT_P:
            raise BadKeyFile(f"{where}: keystore scrypt parameters (n={n}, r={r}, p={p}) cost more than "
                             f"{MAX_SCRYPT_BYTES >> 20} MiB or p > {MAX_SCRYPT_P}")
    elif kdf == "pbkdf2":
        if number("c") > MAX_PBKDF2_ROUNDS:
            raise BadKeyFile(f"{where}: keystore pbkdf2 rounds exceed {MAX_PBKDF2_ROUNDS}")
    else:
        raise BadKeyFile(f"{where}: keystore kdf {str(kdf)[:20]!r} is neither scrypt nor pbkdf2")


def decrypt_keystore(raw: bytes, passphrase: Passphrase, *, where: str = "keystore") -> SigningKey:
    from eth_account import Account

    try:
        obj = jsonbound.loads(raw, max_bytes=MAX_KEY_FILE_BYTES, max_depth=MAX_KEYSTORE_DEPTH, what=where)
    except LedgerError as exc:
        raise BadKeyFile(f"{where}: {exc.message}") from None
    if not isinstance(obj, dict) or obj.get("version") != 3:
        raise BadKeyFile(f"{where}: not an Ethereum keystore of version 3")
    _bounded_kdf(obj.get("crypto"), where)
    secret = passphrase()
    check_passphrase(secret)
    try:
        plain = bytes(Account.decrypt(obj, secret))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise BadKeyFile(f"{where}: wrong passphrase (the keystore's MAC does not match)") from None
        raise BadKeyFile(f"{where}: malformed keystore ({type(exc).__name__})") from None
    except (KeyError, TypeError):
        raise BadKeyFile(f"{where}: malformed keystore") from None
    try:
        key = SigningKey(plain)
    except LedgerError:
        raise BadKeyFile(f"{where}: the keystore does not hold a secp256k1 secret key") from None
    listed = obj.get("address")
    if isinstance(listed, str) and listed.lower().removeprefix("0x") != address_of(key.public_key).hex():
        raise BadKeyFile(f"{where}: the keystore's address is not that of the key it holds")
    return key


def encrypt_keystore(key: SigningKey, passphrase: str, *, scrypt_log2_n: int = DEFAULT_SCRYPT_LOG2_N) -> bytes:
    """The keystore JSON of ``key`` (scrypt, r = 8, p = 1, AES-128-CTR, as eth-account writes)."""
    from eth_account import Account

    check_passphrase(passphrase)
    if scrypt_log2_n < 1 or 128 * (1 << scrypt_log2_n) * 8 > MAX_SCRYPT_BYTES:
        raise ValueError("scrypt log2(n) must be between 1 and 20")
    obj = Account.encrypt(key.secret, passphrase, kdf="scrypt", iterations=1 << scrypt_log2_n)
    return (json.dumps(obj, indent=1) + "\n").encode()


def write_keystore(path: Path, key: SigningKey, passphrase: str, *, scrypt_log2_n: int = DEFAULT_SCRYPT_LOG2_N,
                   replace: bool = False) -> None:
    """A keystore file of mode 0600 at ``path``; an existing file is never replaced unless asked."""
    write_atomic(path, encrypt_keystore(key, passphrase, scrypt_log2_n=scrypt_log2_n), mode=0o600, replace=replace)


def passphrase_source(file: Path | None, env: str | None, prompt: Callable[[], str] | None,
                      environ: dict[str, str] | os._Environ[str] | None = None) -> Passphrase:
    """Where a keystore's passphrase comes from: a file (owner-only, first line), the
    environment variable named ``env``, else ``prompt`` (None: no terminal to ask on).
    Nothing is read until the keystore asks."""
    env_map = os.environ if environ is None else environ

    def get() -> str:
        if file is not None:
            check_owner_only(file, "passphrase file")
            try:
                return read_passphrase_file(file)
            except Oversized as exc:
                raise BadKeyFile(exc.message) from None
            except OSError as exc:
                raise BadKeyFile(f"cannot read passphrase file {file}: {exc.strerror}") from None
        if env is not None:
            if env not in env_map:
                raise BadKeyFile(f"the passphrase variable {env} is not set in the environment")
            return env_map[env]
        if prompt is None:
            raise BadKeyFile("the key file is a keystore: give key_passphrase_file or key_passphrase_env "
                             "(no terminal to ask for the passphrase on)")
        return prompt()

    return get


def public_summary(key: SigningKey) -> dict[str, str]:
    """What may be shown of a key: the public key genesis lists and its Ethereum address."""
    return {"public_key": key.public_key.hex(), "address": "0x" + address_of(key.public_key).hex()}
