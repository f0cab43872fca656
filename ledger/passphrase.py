"""Passphrases of sealed key files (voter, trustee, validator and authority keys).

One place for what a passphrase may be and how one is read from a file, so every key
file of the project refuses an empty or oversized passphrase in the same words. The
passphrase is returned to the caller and never appears in an error message.
"""

from __future__ import annotations

from pathlib import Path

from ledger.errors import BadKeyFile, Oversized
from ledger.files import read_bounded

MAX_PASSPHRASE_BYTES = 4096


def check_passphrase(passphrase: str) -> None:
    if not passphrase:
        raise BadKeyFile("the passphrase is empty")
    if len(passphrase.encode()) > MAX_PASSPHRASE_BYTES:
        raise BadKeyFile(f"the passphrase is longer than {MAX_PASSPHRASE_BYTES} bytes")


def read_passphrase_file(path: Path) -> str:
    """The first line of ``path``; ``BadKeyFile`` for an empty, oversized or non-UTF-8
    one (``OSError`` is the caller's)."""
    try:
        raw = read_bounded(path, MAX_PASSPHRASE_BYTES, what="passphrase file")
    except Oversized:
        raise BadKeyFile(f"passphrase file is longer than {MAX_PASSPHRASE_BYTES} bytes") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise BadKeyFile("passphrase file is not UTF-8") from None
    passphrase = text.splitlines()[0] if text else ""
    check_passphrase(passphrase)
    return passphrase
