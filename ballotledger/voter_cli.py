"""``ballotledger voter ...`` (the voter's device makes and keeps its key) and
``ballotledger credentials ...`` (the roll holder registers public keys and issues the
election's public credential list)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from ballotledger.refusal import refusal

voter_app = typer.Typer(no_args_is_help=True, help="The voter's credential key, made on the voter's own device.")
credentials_app = typer.Typer(no_args_is_help=True,
                              help="The roll holder: register voters' public keys, issue the credential list.")
console = Console(stderr=True)

if TYPE_CHECKING:  # the modules themselves load when a command runs
    from ballotledger.roll import CredentialList, Roll

PASSPHRASE_HELP = ("A file whose first line is the key file's passphrase (else the environment's "
                   "BALLOTLEDGER_PASSPHRASE, else a prompt).")


def refuse(title: str, exc: BaseException | str, code: int = 2) -> typer.Exit:
    """Say in one line, on stderr, why the command stops; the caller raises the exit."""
    return refusal(console, title, exc, code)


def passphrase(file: Path | None, *, confirm: bool = False) -> str:
    """From ``file``, the environment or a prompt (``voter_key.ask_passphrase``)."""
    from ballotledger.voter_key import ask_passphrase

    return ask_passphrase(file, "voter key file", confirm=confirm)


def write_public(path: Path, text: str) -> None:
    """Write a public file atomically (a reader sees the old file or the new one)."""
    from ledger.files import write_atomic

    write_atomic(path, text.encode(), mode=0o644)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s lock file (beside it) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


# --- the voter's key ---------------------------------------------------------------------
@voter_app.command("keygen")
def keygen(
    out: Path = typer.Option(..., help="The new key file (never replaces an existing one)."),
    passphrase_file: Path | None = typer.Option(None, help=PASSPHRASE_HELP),
) -> None:
    """Make this voter's credential key, sealed under a passphrase in OUT (mode 0600).
    Prints only the public key (hex): that is what the roll holder registers."""
    from ballotledger.voter_key import write_voter_key
    from ledger.crypto import SigningKey
    from ledger.errors import LedgerError

    try:
        secret = passphrase(passphrase_file, confirm=True)
        key = SigningKey.generate()
        write_voter_key(out, key, secret)
    except (LedgerError, OSError) as exc:
        raise refuse("no key made", exc) from None
    console.print(f"key sealed in {escape(str(out))}; give the roll holder this public key:")
    print(key.public_key.hex())


@voter_app.command("public")
def public(
    key_file: Path = typer.Option(..., "--key", help="The voter key file."),
    passphrase_file: Path | None = typer.Option(None, help=PASSPHRASE_HELP),
) -> None:
    """Print the key file's public key (hex); the passphrase proves the file opens."""
    from ballotledger.voter_key import read_voter_key
    from ledger.errors import LedgerError

    try:
        key = read_voter_key(key_file, passphrase(passphrase_file))
    except (LedgerError, OSError) as exc:
        raise refuse("unusable key file", exc) from None
    print(key.public_key.hex())


# --- the roll holder ---------------------------------------------------------------------
def load_roll(path: Path) -> Roll:
    from ballotledger.roll import MAX_ROLL_JSON_BYTES, Roll
    from ledger.files import read_bounded

    return Roll.from_json(read_bounded(path, MAX_ROLL_JSON_BYTES), what=str(path))


def load_credentials(path: Path) -> CredentialList:
    from ballotledger.roll import MAX_CREDENTIALS_JSON_BYTES, CredentialList
    from ledger.files import read_bounded

    return CredentialList.from_json(read_bounded(path, MAX_CREDENTIALS_JSON_BYTES), what=str(path))


@credentials_app.command("import")
def credentials_import(
    roll: Path = typer.Option(..., help="The roll (JSON; created if missing, kept readable by its owner only)."),
    public_key: str = typer.Option(..., help="The voter's public key, hex, as `voter keygen` printed it."),
    voter_ref: str | None = typer.Option(None, help="The roll holder's own reference for this voter "
                                          "(1 to 64 of A-Z a-z 0-9 . _ : / @ + -); never published."),
) -> None:
    """Register one voter's public key (only the public key: the voter's device keeps the
    secret). Refuses a key off the curve, a key or a reference already on the roll."""
    from ballotledger.roll import Roll, parse_public_key
    from ledger.errors import LedgerError
    from node.config import write_secret

    try:
        key = parse_public_key(public_key)
        with _locked(roll):  # imports run one at a time: none is lost to another's rewrite
            current = load_roll(roll) if roll.exists() else Roll()
            current.add(key, voter_ref)
            write_secret(roll, current.to_json().rstrip("\n"))
    except (LedgerError, OSError) as exc:
        raise refuse("not registered", exc) from None
    console.print(f"registered; the roll holds {len(current)} keys")


@credentials_app.command("issue")
def credentials_issue(
    roll: Path = typer.Option(..., help="The roll."),
    out: Path = typer.Option(..., help="The public credential list to write (credentials.json)."),
) -> None:
    """Freeze the roll into the public credential list: the keys sorted (a position says
    nothing about the roll), their root and count, no voter references. Prints the root
    and count, which the election definition takes as credential_root and credential_count."""
    import json

    from ledger.errors import LedgerError

    try:
        issued = load_roll(roll).issue()
        write_public(out, issued.to_json())
    except (LedgerError, OSError) as exc:
        raise refuse("not issued", exc) from None
    console.print(f"{issued.count} credentials issued to {escape(str(out))}")
    print(json.dumps({"credential_root": issued.root.hex(), "credential_count": issued.count}))


@credentials_app.command("proof")
def credentials_proof(
    credentials: Path = typer.Option(..., help="The public credential list (credentials.json)."),
    public_key: str = typer.Option(..., help="The voter's public key, hex."),
) -> None:
    """Print a voter's credential proof (index and path), checked against the list's root.
    Exit 0 listed, 1 not on the list, 2 unusable input."""
    import json

    from ballotledger.roll import NotListed, parse_public_key
    from ledger.errors import LedgerError

    try:
        key = parse_public_key(public_key)
        issued = load_credentials(credentials)
    except (LedgerError, OSError) as exc:
        raise refuse("unusable input", exc) from None
    try:
        proof = issued.proof(key)
    except NotListed as exc:
        raise refuse("NOT LISTED", exc, 1) from None
    print(json.dumps({"public_key": key.hex(), "credential_root": issued.root.hex(),
                      "credential_count": issued.count, "index": proof.index,
                      "path": [h.hex() for h in proof.path]}))
