"""``ballotledger``: the one command line for operators, observers and voters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
receipt_app = typer.Typer(no_args_is_help=True, help="Voter receipts.")
app.add_typer(receipt_app, name="receipt")
node_app = typer.Typer(no_args_is_help=True, help="Run a validator.")
app.add_typer(node_app, name="node")
console = Console()


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), help="Where the chain, bundle and receipt go."),
    voters: int = typer.Option(300, min=1, help="Registered voters (each casts one ballot)."),
    block_size: int = typer.Option(100, min=1, help="Ballots per block."),
) -> None:
    """Run a demo election end to end and verify it."""
    from ballotledger.demo import run_demo

    raise typer.Exit(run_demo(out, voters, block_size, console))


@app.command()
def init(
    directory: Path = typer.Option(..., "--dir", help="Where genesis.json and nodeI/ go."),
    validators: int = typer.Option(4, min=1, max=100, help="Number of validators."),
    voters: int = typer.Option(1000, min=1, help="Demo voter credentials (derived from --seed)."),
    seed: str = typer.Option("localnet", help="Seed of the demo voter credentials."),
    chain_id: str = typer.Option("localnet", help="The chain id."),
) -> None:
    """Keys, a genesis and a node.toml per validator, on loopback ports."""
    from ballotledger.netsetup import init_network

    if (directory / "genesis.json").exists():
        console.print(f"[red]{directory / 'genesis.json'} exists; refusing to overwrite a network[/]")
        raise typer.Exit(2)
    layout = init_network(directory, validators=validators, voters=voters, seed=seed, chain_id=chain_id)
    console.print(f"genesis {layout.genesis.hash().hex()} with {validators} validators")
    for path in layout.configs:
        console.print(f"  ballotledger node run --config {path}")


@node_app.command("run")
def node_run(
    config: Path = typer.Option(..., help="The node's node.toml."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Run one validator until SIGINT or SIGTERM."""
    import asyncio
    import logging

    from node.config import NodeConfig
    from node.validator import run_node

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_node(NodeConfig.load(config)))


@app.command()
def localnet(
    validators: int = typer.Option(4, min=1, max=16, help="Number of validators."),
    directory: Path = typer.Option(Path("localnet"), "--dir", help="Network directory (reused if present)."),
    voters: int = typer.Option(1000, min=1, help="Demo voter credentials."),
) -> None:
    """Start N validators on loopback, write DIR/localnet.json, run until SIGINT/SIGTERM."""
    from ballotledger.localnet import run_localnet

    raise typer.Exit(run_localnet(directory, validators, voters))


@app.command()
def verify(
    bundle: Path = typer.Argument(..., help="An election bundle directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    pin_genesis: str | None = typer.Option(None, help="Refuse unless genesis has this hash."),
) -> None:
    """Replay a chain from genesis and check every rule. Exit 0 valid, 1 invalid, 2 unusable."""
    from ballotledger.report import print_report
    from verifier.verify import verify_bundle

    report = verify_bundle(bundle, pin_genesis=pin_genesis)
    if as_json:
        print(json.dumps(report.to_json_obj()))
    else:
        print_report(console, report)
    raise typer.Exit(report.exit_code)


@receipt_app.command("verify")
def receipt_verify(
    receipt: Path = typer.Argument(..., help="receipt.json"),
    genesis: Path = typer.Option(..., help="The election's genesis.json (pin its hash)."),
) -> None:
    """Check a receipt's inclusion proof against its quorum-signed checkpoint."""
    from ledger.errors import LedgerError
    from ledger.genesis import Genesis
    from ledger.receipt import Receipt

    try:
        g = Genesis.from_json(genesis.read_bytes())
        r = Receipt.from_json_obj(json.loads(receipt.read_text()))
    except (OSError, ValueError, LedgerError) as exc:
        console.print(f"[red]unusable input[/]: {exc}")
        raise typer.Exit(2) from exc
    try:
        r.verify(g)
    except LedgerError as exc:
        console.print(f"[bold red]INVALID[/]: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[bold green]VALID[/]: ballot {r.tracking_code.hex()} is leaf {r.log_index} of the "
                  f"log signed at height {r.checkpoint.header.height}")


@app.command()
def bench(
    name: str = typer.Argument(..., help="A benchmark in scripts/bench (ledger, ...)."),
    quick: bool = typer.Option(False, "--quick", help="The one-minute version."),
) -> None:
    """Run a benchmark; its last line is one JSON object of figures."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench" / f"{name}.py"
    if not script.is_file():
        console.print(f"[red]no benchmark named {name}[/]")
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, str(script), *(["--quick"] if quick else [])]))


def main() -> None:
    app()
