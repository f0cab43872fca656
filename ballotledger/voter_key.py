"""The voter's credential key file: made on the voter's device, sealed under a passphrase.

The file holds, in hex, ``ledger.trustees.seal_secret`` (scrypt, AES-256-GCM) of
RLP [format tag, 32-byte secret]. The tag tells a voter key from any other sealed secret
(a trustee's file opens under its passphrase too, but is refused here). The secret and
the passphrase never leave this module except as that sealed blob; only the public key
is ever shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ledger import codec
from ledger.crypto import SigningKey
from ledger.errors import BadEncoding, BadKeyFile, BadPublicKey, LedgerError, Oversized
from ledger.files import read_bounded, write_atomic
from ledger.passphrase import check_passphrase, read_passphrase_file
from ledger.trustees import open_secret, seal_secret

VOTER_KEY_FORMAT = b"ballot-ledger/voter-key/v1"
MAX_SEALED_BYTES = 1 << 16  # what open_secret itself accepts
MAX_KEY_FILE_BYTES = 2 * MAX_SEALED_BYTES + 2  # hex and a newline
PASSPHRASE_ENV = "BALLOTLEDGER_PASSPHRASE"


def seal_voter_key(key: SigningKey, passphrase: str, *, log2_n: int | None = None) -> bytes:
    plaintext = codec.encode([VOTER_KEY_FORMAT, key.secret])
    if log2_n is None:
        return seal_secret(plaintext, passphrase)
    return seal_secret(plaintext, passphrase, log2_n=log2_n)


def open_voter_key(blob: bytes, passphrase: str) -> SigningKey:
    """The key sealed in ``blob``; ``BadKeyFile`` if the passphrase is wrong, the blob
    damaged, or it is not a voter key."""
    plaintext = open_secret(blob, passphrase)
    try:
        tag, secret = codec.as_list(codec.decode(plaintext, max_size=128), 2, "voter key")
        if tag != VOTER_KEY_FORMAT:
            raise BadKeyFile("not a voter key file (a sealed secret of another kind)")
        return SigningKey(codec.as_bytes(secret, "voter key", size=32))
    except (BadEncoding, BadPublicKey) as exc:
        raise BadKeyFile(f"malformed voter key: {exc.message}") from None


def write_voter_key(path: Path, key: SigningKey, passphrase: str, *, log2_n: int | None = None) -> None:
    """Seal ``key`` into a new file of mode 0600, written whole and synced before it
    appears at ``path``; an existing file is never replaced (it may hold the only copy
    of a registered credential), not even by a race: the file is linked in, and a link
    never replaces anything."""
    write_atomic(path, (seal_voter_key(key, passphrase, log2_n=log2_n).hex() + "\n").encode(), mode=0o600,
                 replace=False)


def read_sealed_hex(path: Path, what: str, max_bytes: int = MAX_KEY_FILE_BYTES) -> bytes:
    """The sealed blob a key file holds as one line of hex; ``BadKeyFile`` naming ``what``
    for anything else (``OSError`` is the caller's)."""
    try:
        return bytes.fromhex(read_bounded(path, max_bytes).decode("ascii").strip())
    except Oversized:
        raise BadKeyFile(f"{path} is larger than any {what}") from None
    except ValueError:  # not ASCII hex (UnicodeDecodeError is a ValueError)
        raise BadKeyFile(f"{path} is not a {what} (expected hex)") from None


def read_voter_key(path: Path, passphrase: str) -> SigningKey:
    """``BadKeyFile`` for anything wrong with the file or the passphrase; ``OSError``
    is the caller's."""
    blob = read_sealed_hex(path, "voter key file")
    try:
        return open_voter_key(blob, passphrase)
    except LedgerError as exc:
        raise BadKeyFile(f"{path}: {exc.message}") from None


def passphrase_from(file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The passphrase from ``file`` (its first line) or the environment; None if neither
    gives one (the caller then asks). ``BadKeyFile`` for an empty or oversized one."""
    if file is not None:
        return read_passphrase_file(file)
    if PASSPHRASE_ENV not in environ:
        return None
    check_passphrase(environ[PASSPHRASE_ENV])
    return environ[PASSPHRASE_ENV]


def ask_passphrase(file: Path | None, what: str, *, confirm: bool = False) -> str:
    """A key file's passphrase: from ``file``, the environment or a prompt naming ``what``
    (on stderr, not echoed); ``BadKeyFile`` if empty or too long."""
    import os

    import typer

    given = passphrase_from(file, os.environ)
    if given is None:
        given = str(typer.prompt(f"Passphrase of the {what}", hide_input=True, confirmation_prompt=confirm, err=True))
        check_passphrase(given)
    return given
