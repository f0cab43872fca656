"""``ballotledger state verify``: an election's phase (and published result) proven with
``eth_getProof`` against the state root of a quorum-signed checkpoint.

The node asked need not be trusted: the checkpoint's certificate is checked against the
pinned genesis's validators, and every value is checked offline against the state root
it signs (:mod:`ballotledger.state_proof`). Exit 0 proven, 1 a check failed (named),
2 unusable input or no answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from ballotledger.state_proof import (
    MAX_CHOICES,
    ProvenAccount,
    StateProofFailed,
    check_account_proof,
    definition_hash_slot,
    phase_slot,
    result_slots,
)
from contracts import REGISTRY_ADDRESS, Phase

app = typer.Typer(no_args_is_help=True, help="Prove registry state against a quorum-signed checkpoint.")
console = Console()


def _proof(client: Any, height: int, slots: list[int]) -> Any:
    return client.call("eth_getProof", "0x" + REGISTRY_ADDRESS.hex(), [hex(s) for s in slots], hex(height))


@app.command("verify")
def verify(
    rpc: str = typer.Option(..., help="A node's JSON-RPC address (it need not be trusted)."),
    election: str = typer.Option(..., help="The election id."),
    genesis_file: Path = typer.Option(..., "--genesis", help="The chain's genesis.json (pin its hash)."),
    checkpoint_file: Path | None = typer.Option(
        None, "--checkpoint", help="A saved checkpoint (ballotledger checkpoint save); default: the node's latest."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Prove an election's phase and published result against a checkpoint's state root."""
    from ledger.block import Checkpoint
    from ledger.errors import LedgerError
    from ledger.files import load_genesis
    from verifier.checkpoints import SavedCheckpoint
    from verifier.rpc_client import RpcClient, RpcError

    try:
        genesis = load_genesis(genesis_file)
        saved = SavedCheckpoint.load(checkpoint_file) if checkpoint_file is not None else None
    except (LedgerError, OSError, ValueError) as exc:
        console.print(f"[red]unusable input[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    checks: list[str] = []
    try:
        with RpcClient(rpc) as client:
            if saved is None:
                cp = Checkpoint.decode(bytes.fromhex(client.call("ballot_getCheckpoint")["checkpoint"]))
                saved = SavedCheckpoint(genesis.chain_id, genesis.hash(), cp)
            header = saved.checkpoint.header
            try:
                saved.check(genesis)
            except LedgerError as exc:
                raise StateProofFailed("checkpoint", str(exc)) from None
            checks.append("checkpoint")
            first = [phase_slot(election), definition_hash_slot(election), *result_slots(election)]
            account = check_account_proof(header.state_root, REGISTRY_ADDRESS, _proof(client, header.height, first),
                                          first)
            checks += ["proof_shape", "account_proof", "account_fields", "storage_proof", "storage_value"]
            choices = account.storage[first[2]]
            if choices > MAX_CHOICES:
                raise StateProofFailed("storage_value", f"a result of {choices} counts: the registry keeps at most 255")
            counts: list[int] = []
            if choices:
                slots = result_slots(election, choices)
                proven: ProvenAccount = check_account_proof(
                    header.state_root, REGISTRY_ADDRESS, _proof(client, header.height, slots), slots)
                counts = [proven.storage[s] for s in slots]
    except StateProofFailed as exc:
        if as_json:
            print(json.dumps({"proven": False, "check": exc.code, "message": exc.message}))
        else:
            console.print(f"[bold red]NOT PROVEN[/] (check {exc.code}): {escape(exc.message)}", soft_wrap=True)
        raise typer.Exit(1) from None
    except (RpcError, LedgerError, ValueError, KeyError, TypeError) as exc:
        console.print(f"[red]no usable answer[/]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    phase_value = account.storage[first[0]]
    phase = Phase(phase_value).name.lower() if phase_value in set(Phase) else f"unknown ({phase_value})"
    definition_hash = account.storage[first[1]].to_bytes(32, "big")
    if as_json:
        print(json.dumps({
            "proven": True, "election": election, "phase": phase, "height": header.height,
            "state_root": header.state_root.hex(), "definition_hash": definition_hash.hex(),
            "result": counts, "checks": checks,
        }))
        return
    if phase_value == Phase.NONE:
        console.print(f"[bold green]PROVEN[/]: the registry holds no election {escape(election)} "
                      f"at height {header.height}")
        return
    console.print(f"[bold green]PROVEN[/]: election {escape(election)} is [bold]{phase}[/] at height "
                  f"{header.height} (state root {header.state_root.hex()}, quorum-signed)")
    console.print(f"definition hash {definition_hash.hex()}")
    if counts:
        console.print(f"published result: {', '.join(map(str, counts))}")
