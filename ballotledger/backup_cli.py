"""``ballotledger node backup`` and ``node restore`` (node.backup says what each does and
why a backup holds no signing log)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from ballotledger.refusal import refusal

console = Console()


def _refuse(title: str, exc: BaseException) -> typer.Exit:
    return refusal(console, title, exc)


def backup(
    config: Path = typer.Option(..., help="The running node's node.toml."),
    out: Path = typer.Option(..., help="A new (or empty) directory the node writes the backup to."),
    as_json: bool = typer.Option(False, "--json", help="Print the node's answer as one JSON object."),
) -> None:
    """Back up a running node's chain (a consistent snapshot, taken without stopping it)."""
    from ledger.errors import LedgerError
    from node.backup import request_backup
    from node.config import NodeConfig

    try:
        node_config = NodeConfig.load(config)
        answer = request_backup(node_config.data_dir, out.absolute())
    except (LedgerError, OSError) as exc:
        raise _refuse("backup failed", exc) from None
    if as_json:
        print(json.dumps(answer))
        return
    manifest = answer["manifest"]
    console.print(f"backup of {manifest['node']} at height {manifest['height']} (block {manifest['tip_hash'][:16]}...) "
                  f"in {out}: {answer['seconds']} s, consensus paused {answer['pause_ms']} ms", highlight=False)


def restore(
    source: Path = typer.Option(..., "--from", help="A backup directory (from node backup)."),
    data_dir: Path = typer.Option(..., help="The new node's data directory (must not hold a chain yet)."),
    genesis: Path | None = typer.Option(None, help="The node's genesis.json (default: the backup's; the node "
                                        "refuses to start on a chain other than its own genesis's anyway)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Check a backup block by block and make it a data directory's chain; the node started
    on it then catches up from its peers (a validator votes only once caught up)."""
    from dataclasses import asdict

    from ledger.errors import LedgerError
    from ledger.files import load_genesis
    from node.backup import GENESIS_FILE, restore_backup

    try:
        pinned = load_genesis(genesis if genesis is not None else source / GENESIS_FILE)
        restored = restore_backup(source, data_dir, pinned)
    except (LedgerError, OSError) as exc:
        raise _refuse("restore refused", exc) from None
    if as_json:
        print(json.dumps(asdict(restored)))
        return
    console.print(f"restored height {restored.height} (block {restored.tip_hash[:16]}...) into {data_dir}; "
                  f"checked in {restored.check_seconds} s. Start the node: it catches up from its peers and, "
                  f"a validator, votes once caught up.", highlight=False)
