"""``ballotledger network``: a real network's genesis and each operator's node.toml from
the commission's plan (:mod:`ballotledger.network_plan`); no secret key is ever read."""

from __future__ import annotations

import time
from pathlib import Path

import tomli_w
import typer
from rich.console import Console

from ballotledger.network_plan import NetworkPlan, genesis_of, node_config_of
from ballotledger.refusal import refusal
from ledger.errors import LedgerError
from ledger.files import load_genesis, write_atomic

app = typer.Typer(no_args_is_help=True, help="A network across data centres: its genesis and each node's config.")
console = Console()


def _refuse(title: str, exc: BaseException) -> typer.Exit:
    return refusal(console, title, exc)


def _load_plan(path: Path) -> NetworkPlan:
    try:
        return NetworkPlan.load(path)
    except LedgerError as exc:
        raise _refuse("unusable plan", exc) from None


def _write_new(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data, replace=False)
    except FileExistsError:
        raise _refuse("refused", FileExistsError(f"{path} exists; refusing to overwrite it")) from None
    except OSError as exc:
        raise _refuse("cannot write", exc) from None


@app.command("genesis")
def genesis(
    plan: Path = typer.Option(..., help="The commission's network.toml."),
    out: Path = typer.Option(..., help="Where genesis.json goes (never overwritten)."),
    time_ms: int = typer.Option(0, min=0, help="Genesis time, ms since the epoch (0: now)."),
) -> None:
    """Write the chain's genesis.json from the plan and print the hash observers pin."""
    made = genesis_of(_load_plan(plan), time_ms or int(time.time() * 1000))
    _write_new(out, made.to_json().encode())
    console.print(f"genesis {made.hash().hex()} ({len(made.validators.validators)} validators) -> {out}")


@app.command("node-config")
def node_config(
    plan: Path = typer.Option(..., help="The commission's network.toml."),
    name: str = typer.Option(..., help="This validator's name in the plan."),
    genesis_file: Path = typer.Option(..., "--genesis", help="The genesis.json made from the same plan."),
    key_file: Path = typer.Option(..., help="This validator's key file (not read here)."),
    rpc_listen: str = typer.Option("127.0.0.1:8545", help="host:port of the node's JSON-RPC."),
    listen_host: str = typer.Option("0.0.0.0", help="Host the p2p port listens on."),
    out: Path = typer.Option(..., help="The folder node.toml goes in."),
    data_dir: Path = typer.Option(None, help="The node's stores (default: OUT/data)."),
) -> None:
    """Write one validator's node.toml: its peers are every other validator in the plan."""
    network = _load_plan(plan)
    try:
        pinned = load_genesis(genesis_file)
    except (LedgerError, OSError) as exc:
        raise _refuse("unusable genesis", exc) from None
    made = genesis_of(network, pinned.genesis_time_ms)
    if made.hash() != pinned.hash():
        raise _refuse("refused", ValueError(f"{genesis_file} was not made from {plan} (another plan or a changed one)"))
    try:
        config = node_config_of(network, name, data_dir=(data_dir or out / "data").resolve(),
                                key_file=key_file.resolve(), genesis_file=genesis_file.resolve(),
                                rpc_listen=rpc_listen, listen_host=listen_host)
    except LedgerError as exc:
        raise _refuse("refused", exc) from None
    out.mkdir(parents=True, exist_ok=True)
    _write_new(out / "node.toml", tomli_w.dumps(config.to_obj(relative_to=out.resolve())).encode())
    written = out / "node.toml"
    console.print(f"{written}: {name}, {len(config.peers)} peers; run: ballotledger node run --config {written}")
