"""``ballotledger gateway ...``: the front ends' HTTP gateway."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ballotledger import vote_cli

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


# the reference voter client, also here for scripts that run this module alone
app.command("vote")(vote_cli.vote)
