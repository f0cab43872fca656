"""``ballotledger gateway ...`` and ``ballotledger vote``: the front ends' HTTP gateway
and a reference voter client."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ledger.ballot import BallotEnvelope

app = typer.Typer(no_args_is_help=True, help="The HTTP gateway for voting front ends.")
console = Console(stderr=True)


@app.command("run")
def run(
    config: Path = typer.Option(..., help="The gateway's gateway.toml."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    from rich.markup import escape

    from ledger.errors import LedgerError
    from ledger.files import load_genesis
    from node.gateway.config import GatewayConfig, load_keys
    from node.gateway.server import run_gateway

    try:  # every file the gateway reads at start, refused here in one line
        gateway_config = GatewayConfig.load(config)
        load_genesis(gateway_config.genesis_file)
        load_keys(gateway_config.api_keys_file)
    except (LedgerError, OSError) as exc:
        console.print(f"[red]unusable config[/]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    run_gateway(gateway_config, log_level=log_level)


@app.command("add-key")
def add_key(
    keys_file: Path = typer.Option(..., help="The API keys file (JSON; created if missing)."),
    name: str = typer.Option(..., help="The front end's name."),
    rate: float = typer.Option(1000.0, help="Sustained requests per second."),
    burst: float = typer.Option(2000.0, help="Bucket size (requests allowed at once)."),
) -> None:
    """Make an API key for a front end; only its hash is stored. Prints the key once."""
    from node.gateway.config import add_key as add

    print(add(keys_file, name, rate_per_s=rate, burst=burst))


@app.command("init")
def init(
    directory: Path = typer.Option(..., "--dir", help="A network directory (genesis.json, nodeI/node.toml)."),
    listen: str = typer.Option("127.0.0.1:8080", help="host:port to serve on."),
    name: str = typer.Option("frontend", help="Name of the first front end's API key."),
) -> None:
    """Write DIR/gateway/gateway.toml for a local network and one API key (printed once)."""
    import tomli_w

    from node.config import NodeConfig
    from node.gateway.config import GatewayConfig
    from node.gateway.config import add_key as add

    gw = directory / "gateway"
    gw.mkdir(parents=True, exist_ok=True)
    urls = tuple(f"http://{NodeConfig.load(p).rpc_listen}" for p in sorted(directory.glob("node*/node.toml")))
    config = GatewayConfig(listen=listen, genesis_file=(directory / "genesis.json").resolve(), validators=urls,
                           outbox_dir=(gw / "outbox").resolve(), api_keys_file=(gw / "api_keys.json").resolve())
    (gw / "gateway.toml").write_text(tomli_w.dumps(config.to_obj()))
    print(add(config.api_keys_file, name))
    console.print(f"ballotledger gateway run --config {gw / 'gateway.toml'}")


@app.command("vote")
def vote(
    directory: Path = typer.Option(..., "--dir", help="A localnet directory (genesis.json, voters.json)."),
    voter: int = typer.Option(..., min=0, help="Index of the demo voter credential to vote with."),
    choice: int = typer.Option(0, min=0, help="Index of the choice."),
    gateway: str | None = typer.Option(None, help="Gateway URL (default: DIR/localnet.json's gateway)."),
    api_key: str | None = typer.Option(None, envvar="BALLOTLEDGER_API_KEY", help="The front end's API key."),
    election: str | None = typer.Option(None, help="Election id (default: voters.json's)."),
    out: Path = typer.Option(Path("receipt.json"), help="Where the verified receipt goes."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for finality."),
) -> None:
    """Cast one demo voter's ballot through the gateway, wait until final, verify the receipt."""
    from ledger.files import load_genesis, load_json
    from node.gateway.client import GatewayClient, GatewayProblem, verified_receipt

    if api_key is None:
        console.print("[red]an API key is needed: --api-key or BALLOTLEDGER_API_KEY[/]")
        raise typer.Exit(2)
    if gateway is None:
        described = directory / "localnet.json"
        gateway = load_json(described, max_bytes=1 << 20, max_depth=3).get("gateway") if described.exists() else None
        if not gateway:
            console.print("[red]no --gateway and no gateway in localnet.json[/]")
            raise typer.Exit(2)
    genesis = load_genesis(directory / "genesis.json")
    envelope = demo_ballot(directory, voter, choice, election_id=election)
    try:
        with GatewayClient(gateway, api_key) as client:
            accepted = client.submit(envelope.election_id, envelope.encode())
            code = accepted["tracking_code"]
            console.print(f"accepted: tracking code {code}")
            receipt = verified_receipt(client.wait_final(code, timeout=timeout), genesis, code)
    except GatewayProblem as exc:
        console.print(f"[red]refused: {exc.code}: {exc.detail}[/]")
        raise typer.Exit(1) from None
    except TimeoutError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    tmp = out.with_suffix(".tmp")
    tmp.write_text(receipt.to_json())
    os.replace(tmp, out)
    console.print(f"final at height {receipt.height}, log index {receipt.log_index}; receipt verified, saved to {out}")
    print(json.dumps({"tracking_code": code, "height": receipt.height, "receipt": str(out)}))


def demo_ballot(directory: Path, voter: int, choice: int, *, election_id: str | None = None) -> BallotEnvelope:
    """Demo voter ``voter``'s signed ballot for ``choice`` (credentials derived from the
    seed in voters.json: for demos and tests only)."""
    from ballotledger.netsetup import read_voters, voter_key
    from ledger.ballot import BallotEnvelope
    from ledger.credentials import CredentialSet
    from ledger.files import load_genesis

    genesis = load_genesis(directory / "genesis.json")
    voters = read_voters(directory)
    if not 0 <= voter < voters["count"]:
        raise typer.BadParameter(f"voter must be below {voters['count']}")
    keys = [voter_key(voters["seed"], i).public_key for i in range(voters["count"])]
    credentials = CredentialSet(keys)
    key = voter_key(voters["seed"], voter)
    return BallotEnvelope.create(
        key, chain_id=genesis.chain_id, election_id=election_id or voters["election_id"],
        proof=credentials.proof(key.public_key), payload=bytes([choice]),
    )
