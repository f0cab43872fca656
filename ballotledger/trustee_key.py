"""A trustee's key file: its encryption secret and, per election it serves, its secret
polynomial and (once the ceremony is over) its share of the election key.

The file holds, in hex, ``ledger.trustees.seal_secret`` (scrypt, AES-256-GCM) of

    RLP [format tag, encryption secret e, [[chain id, election id, TrusteeSecret], ...]]

The public key E = g^e is what the authority lists in an election's ``trustees``; e is
also the key the trustee signs its registry calls with. A polynomial is drawn once per
election and written here before anything is posted, so a trustee that crashes and
runs again deals with the same polynomial. Nothing here ever leaves the process except
as that sealed blob; the passphrase is the caller's.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ballotledger.voter_key import read_sealed_hex
from ledger import codec
from ledger.errors import BadEncoding, BadKeyFile, LedgerError
from ledger.files import write_atomic
from ledger.group import base_mul, decode_scalar, encode_scalar, random_scalar
from ledger.trustees import TrusteeSecret, open_secret, seal_secret

TRUSTEE_KEY_FORMAT = b"ballot-ledger/trustee-secrets/v1"
MAX_SEALED_BYTES = 1 << 16  # what open_secret itself accepts
MAX_KEY_FILE_BYTES = 2 * MAX_SEALED_BYTES + 2  # hex and a newline
# The sealed plaintext stays well inside open_secret's bound: 16 elections at the widest
# threshold (64 coefficients) take about 40 KB.
MAX_ELECTIONS_PER_KEY = 16
_MAX_PLAINTEXT_BYTES = MAX_SEALED_BYTES - 1024


@dataclass(frozen=True)
class TrusteeKey:
    """What a trustee key file holds (see the module). ``elections`` maps (chain id,
    election id) to that election's secret (index, polynomial, final share)."""

    encryption_secret: int
    elections: dict[tuple[str, str], TrusteeSecret] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print secrets
        return f"TrusteeKey(public={self.public_key.hex()}, {len(self.elections)} elections)"

    @classmethod
    def generate(cls) -> TrusteeKey:
        return cls(random_scalar())

    @property
    def public_key(self) -> bytes:
        point = base_mul(self.encryption_secret)
        assert point is not None  # a scalar from [1, ORDER)
        return point.encode()

    def secret_for(self, chain_id: str, election_id: str) -> TrusteeSecret | None:
        return self.elections.get((chain_id, election_id))

    def with_secret(self, chain_id: str, election_id: str, secret: TrusteeSecret) -> TrusteeKey:
        if secret.encryption_secret != self.encryption_secret:
            raise ValueError("an election's secret must use this key's encryption secret")
        if (chain_id, election_id) not in self.elections and len(self.elections) >= MAX_ELECTIONS_PER_KEY:
            raise BadKeyFile(f"the key file already serves {MAX_ELECTIONS_PER_KEY} elections")
        return TrusteeKey(self.encryption_secret, {**self.elections, (chain_id, election_id): secret})

    def encode(self) -> bytes:
        records: list[codec.Item] = [[chain.encode(), election.encode(), secret.encode()]
                                     for (chain, election), secret in sorted(self.elections.items())]
        raw = codec.encode([TRUSTEE_KEY_FORMAT, encode_scalar(self.encryption_secret), records])
        if len(raw) > _MAX_PLAINTEXT_BYTES:
            raise BadKeyFile("the key file's secrets outgrow a sealed file")
        return raw

    @classmethod
    def decode(cls, raw: bytes) -> TrusteeKey:
        """``BadKeyFile`` for anything but a trustee key's plaintext."""
        try:
            fields = codec.as_list(codec.decode(raw, max_size=_MAX_PLAINTEXT_BYTES), None, "trustee key")
            if not fields or fields[0] != TRUSTEE_KEY_FORMAT:
                raise BadKeyFile("not a trustee key file (a sealed secret of another kind)")
            _, secret, records = codec.as_list(fields, 3, "trustee key")
            e = decode_scalar(codec.as_bytes(secret, "encryption secret", size=32), "encryption secret")
            items = codec.as_list(records, None, "elections")
            if len(items) > MAX_ELECTIONS_PER_KEY:
                raise BadKeyFile(f"more than {MAX_ELECTIONS_PER_KEY} elections")
            elections: dict[tuple[str, str], TrusteeSecret] = {}
            for item in items:
                chain, election, body = codec.as_list(item, 3, "election secret")
                where = (codec.as_text(chain, "chain id", max_size=64),
                         codec.as_text(election, "election id", max_size=64))
                secret_of = TrusteeSecret.decode(codec.as_bytes(body, "election secret"))
                if secret_of.encryption_secret != e or where in elections:
                    raise BadKeyFile("an election's secret does not belong to this key")
                elections[where] = secret_of
        except BadEncoding as exc:
            raise BadKeyFile(f"malformed trustee key: {exc.message}") from None
        return cls(e, elections)


def seal_trustee_key(key: TrusteeKey, passphrase: str, *, log2_n: int | None = None) -> bytes:
    if log2_n is None:
        return seal_secret(key.encode(), passphrase)
    return seal_secret(key.encode(), passphrase, log2_n=log2_n)


def open_trustee_key(blob: bytes, passphrase: str) -> TrusteeKey:
    return TrusteeKey.decode(open_secret(blob, passphrase))


def read_trustee_key(path: Path, passphrase: str) -> TrusteeKey:
    """``BadKeyFile`` for anything wrong with the file or the passphrase (one line, no
    secret in it); ``OSError`` is the caller's."""
    blob = read_sealed_hex(path, "trustee key file", MAX_KEY_FILE_BYTES)
    try:
        return open_trustee_key(blob, passphrase)
    except LedgerError as exc:
        raise BadKeyFile(f"{path}: {exc.message}") from None


def _write_sealed(path: Path, blob: bytes, *, replace: bool) -> None:
    """``blob`` as hex in a file of mode 0600, whole and synced before it appears at
    ``path`` (``ledger.files.write_atomic``; without ``replace`` never over an existing one)."""
    write_atomic(path, (blob.hex() + "\n").encode(), mode=0o600, replace=replace)


def write_new_trustee_key(path: Path, key: TrusteeKey, passphrase: str, *, log2_n: int | None = None) -> None:
    """A new key file; an existing one is never replaced (it may be the only copy of a
    key an election lists)."""
    if os.path.lexists(path):
        raise FileExistsError(f"{path} exists; refusing to replace a key file")
    _write_sealed(path, seal_trustee_key(key, passphrase, log2_n=log2_n), replace=False)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s lock file (beside it) while the block runs."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def update_trustee_key(path: Path, passphrase: str, change: Callable[[TrusteeKey], TrusteeKey]) -> TrusteeKey:
    """Read the key file, apply ``change`` and write the result back (atomically, synced,
    under a lock, so two runs of one trustee never lose each other's secrets); returns
    what the file now holds. ``change`` returning its argument writes nothing."""
    with _locked(path):
        current = read_trustee_key(path, passphrase)
        changed = change(current)
        if changed is not current:
            _write_sealed(path, seal_trustee_key(changed, passphrase), replace=True)
        return changed
