"""``ballotledger``: the one command line for operators, observers and voters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from ballotledger import (
    authority_cli,
    backup_cli,
    gateway_cli,
    keys_cli,
    network_cli,
    state_cli,
    tally_cli,
    trustee_cli,
    validators_cli,
    vote_cli,
    voter_cli,
)
from ballotledger.refusal import refusal

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
receipt_app = typer.Typer(no_args_is_help=True, help="Voter receipts.")
app.add_typer(receipt_app, name="receipt")
node_app = typer.Typer(no_args_is_help=True, help="Run a validator.")
app.add_typer(node_app, name="node")
node_app.command("backup")(backup_cli.backup)
node_app.command("restore")(backup_cli.restore)
app.add_typer(gateway_cli.app, name="gateway")
app.add_typer(authority_cli.app, name="election")
app.add_typer(validators_cli.app, name="validators")
app.add_typer(state_cli.app, name="state")
app.add_typer(network_cli.app, name="network")
app.command("vote")(vote_cli.vote)
app.add_typer(voter_cli.voter_app, name="voter")
app.add_typer(voter_cli.credentials_app, name="credentials")
app.add_typer(trustee_cli.app, name="trustee")
app.add_typer(tally_cli.app, name="tally")
app.add_typer(keys_cli.app, name="keys")
checkpoint_app = typer.Typer(no_args_is_help=True, help="Save checkpoints; prove a newer log extends an older one.")
app.add_typer(checkpoint_app, name="checkpoint")
console = Console()


def refuse(title: str, exc: BaseException, code: int = 2) -> typer.Exit:
    """Say in one line, on stdout, why the input is refused; the caller raises the exit."""
    return refusal(console, title, exc, code)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), help="Where the chain, bundle and receipt go."),
    voters: int = typer.Option(400, min=2, help="Registered voters (each casts one ballot)."),
    validators: int = typer.Option(4, min=1, max=16, help="Validators in the local network."),
) -> None:
    """Run a demo election on a local network end to end, export it and verify it."""
    from ballotledger.demo import run_demo

    raise typer.Exit(run_demo(out, voters, validators, console))


@app.command()
def init(
    directory: Path = typer.Option(..., "--dir", help="Where genesis.json and nodeI/ go."),
    validators: int = typer.Option(4, min=1, max=100, help="Number of validators."),
    voters: int = typer.Option(1000, min=1, help="Demo voter credentials (derived from --seed)."),
    seed: str = typer.Option("localnet", help="Seed of the demo voter credentials."),
    chain_id: str = typer.Option("localnet", help="The chain id."),
    followers: int = typer.Option(0, min=0, max=16, help="Followers (followerJ/: sync and serve, never vote)."),
) -> None:
    """Keys, a genesis and a node.toml per validator (and follower), on loopback ports."""
    from ballotledger.netsetup import init_network

    if (directory / "genesis.json").exists():
        console.print(f"[red]{directory / 'genesis.json'} exists; refusing to overwrite a network[/]")
        raise typer.Exit(2)
    layout = init_network(directory, validators=validators, voters=voters, seed=seed, chain_id=chain_id,
                          followers=followers)
    console.print(f"genesis {layout.genesis.hash().hex()} with {validators} validators")
    for path in layout.configs:
        console.print(f"  ballotledger node run --config {path}")


@node_app.command("run")
def node_run(
    config: Path = typer.Option(..., help="The node's node.toml."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Run one validator (or, with role = "follower", a follower) until SIGINT or SIGTERM."""
    import asyncio

    from ledger.errors import LedgerError, StoreError
    from ledger.files import load_genesis
    from node.config import ConfigError, NodeConfig, load_node_key
    from node.logs import close as close_logs
    from node.logs import configure
    from node.validator import run_node

    try:  # every file the node reads at start, refused here in one line
        node_config = NodeConfig.load(config)
        load_genesis(node_config.genesis_file)
        key = load_node_key(node_config, terminal_prompt("validator key"))
    except (LedgerError, OSError) as exc:
        raise refuse("unusable config", exc) from None
    try:
        configure(node_config.log_format, log_level)
    except ValueError as exc:  # an unknown --log-level
        raise refuse("unusable log level", exc) from None
    try:
        code = asyncio.run(run_node(node_config, key))
    except ConfigError as exc:  # what only the chain tells (a follower holding a validator's key)
        raise refuse("unusable config", exc) from None
    except StoreError as exc:  # a damaged or foreign data directory, found as it is opened
        raise refuse("unusable data directory", exc) from None
    finally:
        # Write the queued log lines now: the interpreter's exit joins worker-pool threads
        # before atexit handlers run, and a slow join must not cost the node its last lines.
        close_logs()
    raise typer.Exit(code)


def terminal_prompt(what: str) -> Callable[[], str] | None:
    """Ask for a keystore's passphrase on the terminal (not echoed); None without one."""
    if not sys.stdin.isatty():
        return None
    return lambda: str(typer.prompt(f"Passphrase of the {what}", hide_input=True, err=True))


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
def export(
    rpc: str = typer.Option(..., help="A node's JSON-RPC address."),
    out: Path = typer.Option(..., help="The bundle directory (resumed if present)."),
) -> None:
    """Write an election bundle (genesis, blocks with certificates, results) from a node."""
    from rich.progress import Progress

    from ledger.errors import LedgerError
    from verifier.export import export_bundle

    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("exporting blocks", total=None)
            height = export_bundle(rpc, out, on_progress=lambda h, tip: progress.update(task, completed=h, total=tip))
    except LedgerError as exc:
        console.print(f"[red]export failed[/]: {exc}")
        raise typer.Exit(2) from exc
    console.print(f"bundle at {out}: blocks 1..{height}")


@app.command()
def verify(
    bundle: Path | None = typer.Argument(None, help="An election bundle directory."),
    rpc: str | None = typer.Option(None, help="Verify a node's chain instead (exported to a temporary bundle)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    pin_genesis: str | None = typer.Option(None, help="Refuse unless genesis has this hash."),
    jobs: int = typer.Option(1, min=1, max=256, help="Processes checking signatures and proofs."),
    state: Path | None = typer.Option(
        None, help="Keep the replay's state in this directory and resume from it: an interrupted run "
        "goes on where it stopped, a grown bundle is checked from its new blocks on."),
) -> None:
    """Replay a chain from genesis and check every rule. Exit 0 valid, 1 invalid, 2 unusable."""
    import tempfile

    from rich.progress import BarColumn, Progress, TextColumn

    from ballotledger.report import print_report
    from ledger.errors import LedgerError
    from verifier.export import export_bundle
    from verifier.verify import verify_bundle

    if (bundle is None) == (rpc is None):
        console.print("[red]give a bundle directory or --rpc URL (one of them)[/]")
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory(prefix="ballotledger-verify-") as tmp:
        if rpc is not None:
            bundle = Path(tmp)
            try:
                export_bundle(rpc, bundle)
            except LedgerError as exc:
                console.print(f"[red]unusable input[/]: {exc}")
                raise typer.Exit(2) from exc
        assert bundle is not None
        if as_json:
            report = verify_bundle(bundle, pin_genesis=pin_genesis, jobs=jobs, state_dir=state)
        else:
            with Progress(TextColumn("replaying"), BarColumn(), TextColumn("block {task.completed}"),
                          console=console, transient=True) as progress:
                task = progress.add_task("replay", total=None)
                report = verify_bundle(bundle, pin_genesis=pin_genesis, jobs=jobs, state_dir=state,
                                       on_block=lambda h, n: progress.update(task, completed=h))
    if as_json:
        print(json.dumps(report.to_json_obj()))
    else:
        print_report(console, report)
    raise typer.Exit(report.exit_code)


@checkpoint_app.command("save")
def checkpoint_save(
    rpc: str = typer.Option(..., help="A node's JSON-RPC address."),
    out: Path = typer.Option(..., help="Where to write the checkpoint (JSON)."),
) -> None:
    """Save the node's latest quorum-signed checkpoint, after checking its signatures."""
    from ledger.block import Checkpoint
    from ledger.errors import LedgerError
    from ledger.genesis import Genesis
    from verifier.checkpoints import SavedCheckpoint
    from verifier.rpc_client import RpcClient

    try:
        with RpcClient(rpc) as client:
            genesis = Genesis.from_json_obj(client.call("ballot_getGenesis"))
            cp = Checkpoint.decode(bytes.fromhex(client.call("ballot_getCheckpoint")["checkpoint"]))
        saved = SavedCheckpoint(genesis.chain_id, genesis.hash(), cp)
        saved.check(genesis)
    except (LedgerError, ValueError) as exc:
        console.print(f"[red]could not save a checkpoint[/]: {exc}")
        raise typer.Exit(2) from exc
    out.write_text(saved.to_json())
    console.print(f"checkpoint at height {cp.header.height} (log size {cp.header.log_size}) -> {out}")


@checkpoint_app.command("compare")
def checkpoint_compare(
    old: Path = typer.Argument(..., help="The older saved checkpoint."),
    new: Path = typer.Argument(..., help="The newer saved checkpoint."),
    genesis_file: Path = typer.Option(..., "--genesis", help="The chain's genesis.json (pin its hash)."),
    rpc: str = typer.Option(..., help="A node to fetch the consistency proof from (it need not be trusted)."),
) -> None:
    """Prove the newer log extends the older one. Exit 0 consistent, 1 rewritten or forked, 2 unusable."""
    from ledger.errors import LedgerError
    from ledger.files import load_genesis
    from verifier.checkpoints import SavedCheckpoint, compare
    from verifier.rpc_client import RpcClient

    try:
        genesis = load_genesis(genesis_file)
        a, b = SavedCheckpoint.load(old), SavedCheckpoint.load(new)
        with RpcClient(rpc) as client:
            proof = [bytes.fromhex(h) for h in client.call(
                "ballot_getConsistencyProof", a.checkpoint.header.log_size, b.checkpoint.header.log_size)]
    except (LedgerError, OSError, ValueError) as exc:
        raise refuse("unusable input", exc) from None
    try:
        compare(genesis, a, b, proof)
    except LedgerError as exc:
        console.print(f"[bold red]INCONSISTENT[/]: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[bold green]CONSISTENT[/]: the log at height {b.checkpoint.header.height} "
                  f"extends the log at height {a.checkpoint.header.height}")


@receipt_app.command("verify")
def receipt_verify(
    receipt: Path = typer.Argument(..., help="receipt.json"),
    genesis: Path = typer.Option(..., help="The election's genesis.json (pin its hash)."),
) -> None:
    """Check a receipt's inclusion proof against its quorum-signed checkpoint."""
    from ledger.errors import LedgerError
    from ledger.files import load_genesis, read_bounded
    from ledger.receipt import MAX_RECEIPT_JSON_BYTES, Receipt

    try:
        g = load_genesis(genesis)
        r = Receipt.from_json(read_bounded(receipt, MAX_RECEIPT_JSON_BYTES), what=str(receipt))
    except (OSError, ValueError, LedgerError) as exc:
        raise refuse("unusable input", exc) from None
    try:
        r.verify(g)
    except LedgerError as exc:
        raise refuse("[bold]INVALID[/]", exc, 1) from None
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
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    # Every store is closed and every durable write synced by now; skip interpreter
    # teardown, where py-evm's objects over a closed LevelDB print a spurious
    # "Error in sys.excepthook" on stderr after a clean run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
