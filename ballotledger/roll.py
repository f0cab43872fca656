"""The roll holder's side of credentials: voters' public keys in, the public list out.

A voter's device makes its own key (``ballotledger voter keygen``); the roll holder
registers only the public key, with an optional reference of its own (a register
number) so it can tell who has registered. The roll (``roll.json``) links people to
keys, so it stays with the roll holder, readable by its owner only.

Issuing freezes the roll into the public credential list (``credentials.json``): the
keys in byte order, never the roll's, so a credential's position reveals nothing about
where its voter stands on the roll, with the root and count an election definition
takes as ``credential_root`` and ``credential_count``. It holds no references; anyone
can rebuild the root from it, and every voter can find their own proof in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ledger import merkle
from ledger.ballot import CredentialProof
from ledger.credentials import CredentialSet
from ledger.crypto import PUBLIC_KEY_SIZE, check_public_key
from ledger.errors import BadEncoding, LedgerError, Oversized
from ledger.genesis import decode_hex_field
from ledger.hashing import HASH_SIZE
from ledger.jsonbound import loads
from ledger.jsonfields import as_list as _list
from ledger.jsonfields import as_str as _str
from ledger.jsonfields import exact_keys as _exact_keys

ROLL_FORMAT = "ballot-ledger/roll/v1"
CREDENTIALS_FORMAT = "ballot-ledger/credentials/v1"
# Roomy for one election's whole electorate (the tree is then 25 levels deep, the chain
# allows 40); with it and the plain-ASCII references below, neither file can be larger
# than the sizes below, so a larger one is refused unread.
MAX_CREDENTIALS = 1 << 25
VOTER_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,63}$"
_REF_RE = re.compile(VOTER_REF_PATTERN)
# Every entry of either file has a fixed shape in ASCII (hex keys, references of at most
# 64 characters that JSON never escapes), written one entry per line as to_json() does.
_MAX_ROLL_ENTRY_BYTES = 256
_MAX_LIST_ENTRY_BYTES = 80
_MAX_HEADER_BYTES = 1024
MAX_ROLL_JSON_BYTES = _MAX_HEADER_BYTES + MAX_CREDENTIALS * _MAX_ROLL_ENTRY_BYTES
MAX_CREDENTIALS_JSON_BYTES = _MAX_HEADER_BYTES + MAX_CREDENTIALS * _MAX_LIST_ENTRY_BYTES
ROLL_JSON_DEPTH = 3  # roll > voters > an entry
CREDENTIALS_JSON_DEPTH = 2  # list > public_keys


class DuplicateRegistration(LedgerError):
    """A public key, or a voter reference, that is already on the roll."""

    code = "duplicate_registration"


class NotListed(LedgerError):
    """A public key that is not on the credential list."""

    code = "not_in_credential_set"


@dataclass(frozen=True)
class RollEntry:
    public_key: bytes
    voter_ref: str | None = None

    def to_json_obj(self) -> dict[str, Any]:
        return {"public_key": self.public_key.hex(), "voter_ref": self.voter_ref}


def check_voter_ref(voter_ref: str) -> None:
    if not _REF_RE.match(voter_ref):
        raise BadEncoding(f"voter reference {voter_ref[:80]!r} must match {VOTER_REF_PATTERN}")


class Roll:
    """The registered public keys in the order they came, each key and each reference once."""

    def __init__(self, entries: Iterable[RollEntry] = ()) -> None:
        self._entries: list[RollEntry] = []
        self._keys: set[bytes] = set()
        self._refs: set[str] = set()
        for entry in entries:
            self.add(entry.public_key, entry.voter_ref)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[RollEntry, ...]:
        return tuple(self._entries)

    def add(self, public_key: bytes, voter_ref: str | None = None) -> RollEntry:
        """Register one key: ``BadPublicKey`` if it is not a compressed point on the
        curve, ``DuplicateRegistration`` if the key or the reference is already on the
        roll, ``Oversized`` past ``MAX_CREDENTIALS``. Nothing changes on a refusal."""
        check_public_key(public_key)
        if voter_ref is not None:
            check_voter_ref(voter_ref)
        if public_key in self._keys:
            raise DuplicateRegistration(f"public key {public_key.hex()} is already on the roll")
        if voter_ref is not None and voter_ref in self._refs:
            raise DuplicateRegistration(f"voter reference {voter_ref!r} already has a key on the roll")
        if len(self._entries) >= MAX_CREDENTIALS:
            raise Oversized(f"the roll already holds {MAX_CREDENTIALS} keys, the most one election takes")
        entry = RollEntry(public_key, voter_ref)
        self._entries.append(entry)
        self._keys.add(public_key)
        if voter_ref is not None:
            self._refs.add(voter_ref)
        return entry

    def issue(self) -> CredentialList:
        """The public credential list: the keys only, in byte order."""
        if not self._entries:
            raise BadEncoding("the roll is empty: there is nothing to issue")
        return CredentialList.of(e.public_key for e in self._entries)

    def to_json(self) -> str:
        lines = ",\n".join("  " + json.dumps(e.to_json_obj(), separators=(", ", ": ")) for e in self._entries)
        return f'{{"format": "{ROLL_FORMAT}", "voters": [\n{lines}\n]}}\n'

    @classmethod
    def from_json(cls, raw: bytes, *, what: str = "roll") -> Roll:
        obj = loads(raw, max_bytes=MAX_ROLL_JSON_BYTES, max_depth=ROLL_JSON_DEPTH, what=what)
        _exact_keys(obj, {"format", "voters"}, what)
        if obj["format"] != ROLL_FORMAT:
            raise BadEncoding(f"{what}: not a roll of format {ROLL_FORMAT}")
        voters = _list(obj["voters"], f"{what}: voters")
        roll = cls()
        for i, entry in enumerate(voters):
            where = f"{what}: voters[{i}]"
            _exact_keys(entry, {"public_key", "voter_ref"}, where)
            ref = entry["voter_ref"]
            if ref is not None and not isinstance(ref, str):
                raise BadEncoding(f"{where}: voter_ref must be a string or null")
            try:
                roll.add(_hex_key(entry["public_key"], f"{where}: public_key"), ref)
            except LedgerError as exc:
                raise exc.at(where) from None
        return roll


@dataclass(frozen=True)
class CredentialList:
    """The public credential list of one election: ``public_keys`` in byte order, their
    tree's ``root``; the ``count`` is how many there are."""

    public_keys: tuple[bytes, ...]
    root: bytes

    @classmethod
    def of(cls, keys: Iterable[bytes]) -> CredentialList:
        ordered = tuple(sorted(keys))
        tree = CredentialSet(ordered)
        issued = cls(ordered, tree.root)
        issued.__dict__["tree"] = tree  # built once: the cached_property below would build it again
        return issued

    @property
    def count(self) -> int:
        return len(self.public_keys)

    @cached_property
    def tree(self) -> CredentialSet:
        return CredentialSet(self.public_keys)

    def proof(self, public_key: bytes) -> CredentialProof:
        """The key's proof, checked against the root; ``NotListed`` if it is not on the list."""
        try:
            proof = self.tree.proof(public_key)
        except KeyError:
            raise NotListed(f"public key {public_key.hex()} is not on the credential list") from None
        merkle.verify_inclusion(public_key, proof.index, self.count, proof.path, self.root)
        return proof

    def to_json(self) -> str:
        keys = ",\n".join(f'    "{k.hex()}"' for k in self.public_keys)
        return (f'{{\n  "format": "{CREDENTIALS_FORMAT}",\n  "credential_root": "{self.root.hex()}",\n'
                f'  "credential_count": {self.count},\n  "public_keys": [\n{keys}\n  ]\n}}\n')

    @classmethod
    def from_json(cls, raw: bytes, *, what: str = "credential list") -> CredentialList:
        """Parse and check a list: format, keys on the curve in strictly increasing order,
        the count, and the root rebuilt from the keys (``BadEncoding``, ``BadPublicKey``)."""
        obj = loads(raw, max_bytes=MAX_CREDENTIALS_JSON_BYTES, max_depth=CREDENTIALS_JSON_DEPTH, what=what)
        _exact_keys(obj, {"format", "credential_root", "credential_count", "public_keys"}, what)
        if obj["format"] != CREDENTIALS_FORMAT:
            raise BadEncoding(f"{what}: not a credential list of format {CREDENTIALS_FORMAT}")
        keys = [_hex_key(k, f"{what}: public_keys[{i}]") for i, k in enumerate(_list(obj["public_keys"], what))]
        if not 1 <= len(keys) <= MAX_CREDENTIALS:
            raise BadEncoding(f"{what}: needs 1 to {MAX_CREDENTIALS} public keys")
        for i in range(1, len(keys)):
            if keys[i - 1] >= keys[i]:
                raise BadEncoding(f"{what}: public_keys[{i}] is out of order or repeated (they are sorted, each once)")
        count = obj["credential_count"]
        if not isinstance(count, int) or isinstance(count, bool) or count != len(keys):
            raise BadEncoding(f"{what}: credential_count is not the number of public keys ({len(keys)})")
        root = decode_hex_field(_str(obj["credential_root"], f"{what}: credential_root"), f"{what}: credential_root")
        issued = cls.of(keys)
        if len(root) != HASH_SIZE or root != issued.root:
            raise BadEncoding(f"{what}: credential_root is not the root of its public keys")
        return issued


def _hex_key(value: Any, what: str) -> bytes:
    raw = decode_hex_field(_str(value, what), what)
    if len(raw) != PUBLIC_KEY_SIZE:
        raise BadEncoding(f"{what} must be a 33-byte compressed public key")
    return raw


def parse_public_key(text: str) -> bytes:
    """A public key as a voter gives it (hex, optionally 0x-prefixed, any case):
    ``BadEncoding`` or ``BadPublicKey`` if it is not a compressed point on the curve."""
    body = text.strip().lower().removeprefix("0x")
    if len(body) != 2 * PUBLIC_KEY_SIZE:
        raise BadEncoding(f"a public key is {2 * PUBLIC_KEY_SIZE} hex digits (33 bytes, compressed)")
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise BadEncoding("the public key is not hex") from None
    check_public_key(key)
    return key
