"""``ballotledger validators ...``: the authority changes the validator set with signed
registry calls (ledger.validators: in force two blocks after the block that carries
them); anyone reads the set in force at a height.

Exit codes: 0 done, 1 the chain refused the change (its code is shown:
``bad_validator_change`` for a missing or duplicate key or a set that would fall below 4
or exceed 256, ``not_authority``) or it was not in a block in time, 2 unusable input.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ballotledger.authority_cli import AuthorityActionFailed, send_registry_call

app = typer.Typer(no_args_is_help=True, help="Add, remove or replace validators; show the set in force.")
console = Console()

RPC = typer.Option(..., help="A validator's JSON-RPC address.")
AUTHORITY_KEY = typer.Option(..., help="The authority's key file.")


def _key(value: str, what: str) -> bytes:
    from ledger.crypto import check_public_key
    from ledger.errors import LedgerError

    try:
        key = bytes.fromhex(value.removeprefix("0x"))
        check_public_key(key)
    except (ValueError, LedgerError):
        console.print(f"[red]unusable input[/]: {what} must be a compressed secp256k1 public key in hex (66 digits)")
        raise typer.Exit(2) from None
    return key


def _change(rpc: str, authority_key: Path, removed: bytes, added: bytes, name: str, power: int, what: str) -> None:
    from contracts import registry
    from ledger.genesis import ValidatorInfo
    from ledger.validators import VALIDATOR_CHANGE_DELAY

    if added and not 1 <= len(name.encode()) <= 64:
        console.print("[red]unusable input[/]: --name must be 1 to 64 bytes")
        raise typer.Exit(2)
    info = ValidatorInfo(name, added, power) if added else None
    try:
        height = send_registry_call(rpc, authority_key, registry().change_validators(removed, info), what)
    except AuthorityActionFailed as exc:
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"{what}: in block {height}, in force from height {height + VALIDATOR_CHANGE_DELAY}")


@app.command("add")
def add(rpc: str = RPC, authority_key: Path = AUTHORITY_KEY,
        public_key: str = typer.Option(..., help="The new validator's public key (hex; a follower's status shows it)."),
        name: str = typer.Option(..., help="Its name in the set (1 to 64 bytes)."),
        power: int = typer.Option(1, min=1, help="Its voting power.")) -> None:
    """Add a validator (its node then votes from the effective height on)."""
    _change(rpc, authority_key, b"", _key(public_key, "--public-key"), name, power, f"add {name}")


@app.command("remove")
def remove(rpc: str = RPC, authority_key: Path = AUTHORITY_KEY,
           public_key: str = typer.Option(..., help="The validator's public key (hex).")) -> None:
    """Remove a validator (its votes stop counting at the effective height)."""
    _change(rpc, authority_key, _key(public_key, "--public-key"), b"", "", 0, f"remove {public_key[:16]}..")


@app.command("replace")
def replace(rpc: str = RPC, authority_key: Path = AUTHORITY_KEY,
            old: str = typer.Option(..., help="The public key (hex) of the validator to replace."),
            public_key: str = typer.Option(..., help="The public key (hex) that takes its place."),
            name: str = typer.Option(..., help="The new validator's name (1 to 64 bytes)."),
            power: int = typer.Option(1, min=1, help="Its voting power.")) -> None:
    """Replace one validator by another, in its place in the set (a new key, a new site)."""
    _change(rpc, authority_key, _key(old, "--old"), _key(public_key, "--public-key"), name, power,
            f"replace {old[:16]}.. by {name}")


@app.command("show")
def show(rpc: str = RPC, height: int | None = typer.Option(None, min=1, help="Default: the next block's.")) -> None:
    """The validator set in force at a height (as the node tells it)."""
    from ledger.errors import LedgerError
    from verifier.rpc_client import RpcClient

    try:
        with RpcClient(rpc) as client:
            answer = client.call("ballot_getValidators", *([] if height is None else [height]))
    except LedgerError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    console.print(f"height {answer['height']}: set {answer['validator_set_hash']}")
    for i, v in enumerate(answer["validators"]):
        console.print(f"  {i}  {escape(v['name'])}  {v['public_key']}  power {v['power']}")
