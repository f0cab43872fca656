"""A local network: N validator processes (and later the gateway) on loopback.

Used by ``ballotledger localnet``, the demo, the integration tests and the network
benchmark. Each node is a real ``ballotledger node run`` process with its own LevelDB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from ballotledger.netsetup import init_network
from ledger.genesis import Genesis
from node.config import ConsensusTimeouts
from verifier.rpc_client import RpcClient, RpcUnavailable

ROOT = Path(__file__).resolve().parent.parent


class Localnet:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.configs = sorted(directory.glob("node*/node.toml"))
        if not self.configs:
            raise FileNotFoundError(f"{directory} holds no node*/node.toml: run init first")
        self.genesis = Genesis.from_json((directory / "genesis.json").read_bytes())
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.rpc_urls = []
        for path in self.configs:
            rpc = tomllib.loads(path.read_text())["rpc"]["listen"]
            self.rpc_urls.append(f"http://{rpc}")

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        validators: int = 4,
        voters: int = 1000,
        timeouts: ConsensusTimeouts | None = None,
        max_block_ballots: int = 4000,
    ) -> Localnet:
        if not (directory / "genesis.json").exists():
            init_network(directory, validators=validators, voters=voters, timeouts=timeouts,
                         max_block_ballots=max_block_ballots)
        return cls(directory)

    def __len__(self) -> int:
        return len(self.configs)

    def start(self, index: int | None = None) -> None:
        for i in range(len(self.configs)) if index is None else [index]:
            if i in self.procs and self.procs[i].poll() is None:
                continue
            log = (self.configs[i].parent / "node.log").open("ab")
            env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
            self.procs[i] = subprocess.Popen(
                [sys.executable, "-m", "ballotledger", "node", "run", "--config", str(self.configs[i])],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
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
                {"name": f"validator-{i}", "rpc": url} for i, url in enumerate(self.rpc_urls)
            ],
            "gateway": None,
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
    net = Localnet.create(directory, validators=validators, voters=voters)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        net.start()
        net.wait_ready()
        path = net.write_description()
        print(f"localnet: {len(net)} validators serving; described in {path}", flush=True)
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
