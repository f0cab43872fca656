"""A local network: N validator processes (and later the gateway) on loopback.

Used by ``ballotledger localnet``, the demo, the integration tests and the network
benchmark. Each node is a real ``ballotledger node run`` process with its own LevelDB.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ballotledger.netsetup import free_ports, init_network
from ledger.files import load_genesis
from node.config import ConsensusTimeouts, NodeConfig
from node.gateway.config import GatewayConfig
from verifier.rpc_client import RpcClient, RpcUnavailable

ROOT = Path(__file__).resolve().parent.parent


GATEWAY_KEY_FILE = "frontend.key"


def spawn_gateway(config: Path, log: Path, *, log_level: str = "INFO") -> subprocess.Popen[bytes]:
    """``ballotledger gateway run`` as its own process (output appended to ``log``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        # the gateway's own entry point: it needs none of the rest of the CLI's imports
        return subprocess.Popen(
            [sys.executable, "-c", "from ballotledger.gateway_cli import app; app()", "run",
             "--config", str(config), "--log-level", log_level],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
        )


def wait_serving(url: str, proc: subprocess.Popen[bytes], *, timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    import httpx  # only callers that run a gateway pay for the import

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:g} s; see {log}")
        time.sleep(0.05)


def init_gateway(directory: Path) -> Path:
    """DIR/gateway/gateway.toml on a free loopback port, and a demo front end's API key
    in DIR/gateway/frontend.key (only the key's hash is in the gateway's key file)."""
    import tomli_w

    from node.config import write_secret
    from node.gateway.config import GatewayConfig, add_key

    gw = directory / "gateway"
    gw.mkdir(parents=True, exist_ok=True)
    urls = tuple(f"http://{NodeConfig.load(p).rpc_listen}" for p in sorted(directory.glob("node*/node.toml")))
    config = GatewayConfig(
        listen=f"127.0.0.1:{free_ports(1)[0]}", genesis_file=(directory / "genesis.json").resolve(),
        validators=urls, outbox_dir=(gw / "outbox").resolve(), api_keys_file=(gw / "api_keys.json").resolve(),
    )
    path = gw / "gateway.toml"
    path.write_text(tomli_w.dumps(config.to_obj()))
    write_secret(gw / GATEWAY_KEY_FILE, add_key(config.api_keys_file, "demo-frontend"))
    return path


def _limit_file_size(max_bytes: int) -> None:
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG instead of killing.
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


class Localnet:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # validators first, then followers (``init --followers``)
        self.configs = sorted(directory.glob("node*/node.toml")) + sorted(directory.glob("follower*/node.toml"))
        if not self.configs:
            raise FileNotFoundError(f"{directory} holds no node*/node.toml: run init first")
        self.genesis = load_genesis(directory / "genesis.json")
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.rpc_urls = [f"http://{NodeConfig.load(path).rpc_listen}" for path in self.configs]
        gateway_config = directory / "gateway" / "gateway.toml"
        self.gateway_config = gateway_config if gateway_config.exists() else None
        self.gateway_url = f"http://{GatewayConfig.load(gateway_config).listen}" if self.gateway_config else None
        self.gateway_proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        validators: int = 4,
        voters: int = 1000,
        timeouts: ConsensusTimeouts | None = None,
        max_block_ballots: int = 4000,
        gateway: bool = False,
        followers: int = 0,
    ) -> Localnet:
        if not (directory / "genesis.json").exists():
            init_network(directory, validators=validators, voters=voters, timeouts=timeouts,
                         max_block_ballots=max_block_ballots, followers=followers)
        if gateway and not (directory / "gateway" / "gateway.toml").exists():
            init_gateway(directory)
        return cls(directory)

    @property
    def gateway_key(self) -> str:
        return (self.directory / "gateway" / GATEWAY_KEY_FILE).read_text().strip()

    def start_gateway(self) -> None:
        if self.gateway_config is None or (self.gateway_proc is not None and self.gateway_proc.poll() is None):
            return
        self.gateway_proc = spawn_gateway(self.gateway_config, self.directory / "gateway" / "gateway.log")

    def wait_gateway(self, timeout: float = 60.0) -> None:
        if self.gateway_url is None or self.gateway_proc is None:
            return
        wait_serving(self.gateway_url + "/readyz", self.gateway_proc, timeout=timeout,
                     log=self.directory / "gateway" / "gateway.log")

    def stop_gateway(self) -> None:
        proc, self.gateway_proc = self.gateway_proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __len__(self) -> int:
        return len(self.configs)

    def start(
        self, index: int | None = None, *, env: Mapping[str, str] | None = None, max_file_bytes: int | None = None
    ) -> None:
        """Start node ``index`` (or every node not running). ``env``: extra environment
        variables; ``max_file_bytes``: RLIMIT_FSIZE of the process, so that writing any file
        past that size fails with EFBIG, as on a full disk (the fault suite's)."""
        limit = None if max_file_bytes is None else functools.partial(_limit_file_size, max_file_bytes)
        for i in range(len(self.configs)) if index is None else [index]:
            if i in self.procs and self.procs[i].poll() is None:
                continue
            log = (self.configs[i].parent / "node.log").open("ab")
            child_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
            self.procs[i] = subprocess.Popen(
                [sys.executable, "-m", "ballotledger", "node", "run", "--config", str(self.configs[i])],
                stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=str(ROOT), preexec_fn=limit,
            )
            log.close()

    def wait_ready(self, timeout: float = 60.0, indexes: list[int] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for i in indexes if indexes is not None else list(self.procs):
            with RpcClient(self.rpc_urls[i], timeout=2.0) as client:
                while True:
                    proc = self.procs.get(i)
                    if proc is not None and proc.poll() is not None:
                        raise RuntimeError(f"node {i} exited with {proc.returncode}; see {self.log_path(i)}")
                    try:
                        client.call("ballot_status")
                        break
                    except RpcUnavailable:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"node {i} did not serve RPC within {timeout} s") from None
                        time.sleep(0.1)

    def log_path(self, index: int) -> Path:
        return self.configs[index].parent / "node.log"

    def kill(self, index: int) -> None:
        """SIGKILL: the crash a node must survive."""
        proc = self.procs.pop(index, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self, index: int | None = None, timeout: float = 15.0) -> None:
        if index is None:
            self.stop_gateway()
        targets = list(self.procs) if index is None else [index]
        for i in targets:
            proc = self.procs.get(i)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for i in targets:
            proc = self.procs.pop(i, None)
            if proc is None:
                continue
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def client(self, index: int = 0) -> RpcClient:
        return RpcClient(self.rpc_urls[index])

    def description(self) -> dict[str, Any]:
        return {
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash().hex(),
            "nodes": [
                {"name": path.parent.name.replace("node", "validator-"), "rpc": url}
                for path, url in zip(self.configs, self.rpc_urls, strict=True)
            ],
            "gateway": self.gateway_url,
        }

    def write_description(self) -> Path:
        path = self.directory / "localnet.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.description(), indent=2) + "\n")
        tmp.replace(path)
        return path

    def __enter__(self) -> Localnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_localnet(directory: Path, validators: int, voters: int) -> int:
    """Start everything, write localnet.json, run until SIGINT/SIGTERM, stop cleanly."""
    net = Localnet.create(directory, validators=validators, voters=voters, gateway=True)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        net.start()
        net.wait_ready()
        net.start_gateway()
        net.wait_gateway()
        path = net.write_description()
        print(f"localnet: {len(net)} validators and the gateway ({net.gateway_url}) serving; "
              f"described in {path}", flush=True)
        print(f"localnet: the demo front end's API key is in {directory / 'gateway' / GATEWAY_KEY_FILE}", flush=True)
        while not stopping:
            for i, proc in list(net.procs.items()):
                if proc.poll() is not None:
                    print(f"localnet: node {i} exited with {proc.returncode}; see {net.log_path(i)}", flush=True)
                    net.procs.pop(i)
            time.sleep(0.2)
    finally:
        net.stop()
        (directory / "localnet.json").unlink(missing_ok=True)
    print("localnet: stopped", flush=True)
    return 0
