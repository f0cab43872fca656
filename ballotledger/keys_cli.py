"""``ballotledger keys``: validator and authority keys in the Ethereum keystore format.

``new`` makes a key in a keystore, ``import`` wraps an existing plain hex key file into
one, ``export-public`` prints what genesis lists (the public key) and its Ethereum
address. The passphrase comes from ``--passphrase-file`` (owner-only, first line), the
BALLOTLEDGER_PASSPHRASE environment variable or a prompt; it is never printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from ballotledger.refusal import refusal
from ledger.crypto import SigningKey
from ledger.errors import LedgerError

app = typer.Typer(no_args_is_help=True, help="Validator and authority keys (Ethereum keystore files).")
console = Console()
err_console = Console(stderr=True)

_PASSPHRASE_HELP = "A file whose first line is the passphrase (owner-only); else BALLOTLEDGER_PASSPHRASE or a prompt."
_LOG2_N_HELP = "log2 of scrypt's n (18, eth-account's default, takes 256 MiB and about a second to open)."


def _refuse(message: str) -> typer.Exit:
    return refusal(err_console, "refused", message)


def _passphrase(file: Path | None, what: str, *, confirm: bool) -> str:
    from ballotledger.voter_key import ask_passphrase
    from node.keyfile import check_owner_only

    if file is not None:
        check_owner_only(file, "passphrase file")
    return ask_passphrase(file, what, confirm=confirm)


def _show(key: SigningKey, as_json: bool) -> None:
    from node.keyfile import public_summary

    summary = public_summary(key)
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"public key {summary['public_key']}\naddress    {summary['address']}", highlight=False)


def _write(out: Path, key: SigningKey, passphrase_file: Path | None, log2_n: int) -> None:
    from node.keyfile import write_keystore

    write_keystore(out, key, _passphrase(passphrase_file, f"new keystore {out}", confirm=True), scrypt_log2_n=log2_n)


@app.command("new")
def new(
    out: Path = typer.Option(..., help="The keystore file to create (never replaced)."),
    passphrase_file: Path | None = typer.Option(None, help=_PASSPHRASE_HELP),
    scrypt_log2_n: int = typer.Option(18, min=1, max=20, help=_LOG2_N_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the public key and address as JSON."),
) -> None:
    """Make a new secp256k1 key in a keystore file (mode 0600) and print its public key."""
    key = SigningKey.generate()
    try:
        _write(out, key, passphrase_file, scrypt_log2_n)
    except (LedgerError, OSError) as exc:
        raise _refuse(str(exc)) from None
    _show(key, as_json)


@app.command("import")
def import_key(
    hex_key: Path = typer.Option(..., help="The plain hex key file to wrap (owner-only)."),
    out: Path = typer.Option(..., help="The keystore file to create (never replaced)."),
    passphrase_file: Path | None = typer.Option(None, help=_PASSPHRASE_HELP),
    scrypt_log2_n: int = typer.Option(18, min=1, max=20, help=_LOG2_N_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the public key and address as JSON."),
) -> None:
    """Wrap a plain hex key file into a keystore; the hex file is left for you to shred."""
    from node.keyfile import read_signing_key

    try:
        key = read_signing_key(hex_key)
        _write(out, key, passphrase_file, scrypt_log2_n)
    except (LedgerError, OSError) as exc:
        raise _refuse(str(exc)) from None
    _show(key, as_json)


@app.command("export-public")
def export_public(
    key_file: Path = typer.Option(..., "--key", help="A keystore or plain hex key file."),
    passphrase_file: Path | None = typer.Option(None, help=_PASSPHRASE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the public key and address as JSON."),
) -> None:
    """Print the public key (what genesis lists) and the Ethereum address of a key."""
    from node.keyfile import read_signing_key

    try:
        key = read_signing_key(key_file, lambda: _passphrase(passphrase_file, f"keystore {key_file}", confirm=False))
    except (LedgerError, OSError) as exc:
        raise _refuse(str(exc)) from None
    _show(key, as_json)
