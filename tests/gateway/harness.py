"""Real processes for the gateway tests: a localnet with extra elections, and gateways."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ballotledger.localnet import Localnet, spawn_gateway, wait_serving
from ballotledger.netsetup import free_ports, init_network
from ledger.genesis import Genesis
from ledger.group import base_mul
from node.config import ConsensusTimeouts
from node.gateway.config import GatewayConfig, add_key
from tests.helpers import wait_until  # noqa: F401 (the gateway tests take it from here)

ROOT = Path(__file__).resolve().parents[2]
# A quiet chain with a checkpoint block every second (the fault suite's assert_finalizing
# watches heights grow).
FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=100,
                         checkpoint_interval_s=1)
VOTERS = 400
MAIN = "board-2026"  # first-counts, open (made by init_network)
REVOTE = "revote-2026"  # last-counts, open
CLOSED = "closed-2025"  # closed an hour ago
FUTURE = "future-2027"  # opens in a day
SECRET = "secret-2026"  # encrypted (two contests), open; its key's secret is SECRET_KEY
SECRET_KEY = 0x5EC2E7


def _secret_key_hex() -> str:
    point = base_mul(SECRET_KEY)
    assert point is not None
    return point.encode().hex()


def make_network(directory: Path, *, voters: int = VOTERS) -> Localnet:
    """A 4-validator localnet whose genesis also holds a last-counts, a closed and a future
    election over the same demo credentials (genesis rewritten before any node starts)."""
    init_network(directory, validators=4, voters=voters, timeouts=FAST)
    obj = json.loads((directory / "genesis.json").read_text())
    base = obj["elections"][0]
    now = int(time.time() * 1000)
    obj["elections"] += [
        {**base, "id": REVOTE, "revoting": "last-counts"},
        {**base, "id": CLOSED, "opens_at_ms": now - 7_200_000, "closes_at_ms": now - 3_600_000},
        {**base, "id": FUTURE, "opens_at_ms": now + 86_400_000, "closes_at_ms": now + 2 * 86_400_000},
        {**base, "id": SECRET, "question": "Board election", "choices": [],
         "payload_scheme": "elgamal-secp256k1/v1", "joint_key": _secret_key_hex(),
         "contests": [{"question": "Chair?", "choices": ["ada", "grace", "alan"], "limit": 1},
                      {"question": "Adopt the budget?", "choices": ["yes", "no"], "limit": 1}]},
    ]
    (directory / "genesis.json").write_text(Genesis.from_json_obj(obj).to_json())
    return Localnet(directory)


@dataclass
class GatewayProc:
    """One ``ballotledger gateway run`` process and its files."""

    directory: Path
    validators: list[str]
    port: int = field(default_factory=lambda: free_ports(1)[0])
    options: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        keys_file = self.directory / "api_keys.json"
        if not keys_file.exists():
            self.keys["main"] = add_key(keys_file, "main", rate_per_s=100_000, burst=100_000)
            self.keys["slow"] = add_key(keys_file, "slow", rate_per_s=0.5, burst=2)
            (self.directory / "keys.json").write_text(json.dumps(self.keys))
        else:
            self.keys = json.loads((self.directory / "keys.json").read_text())
        self.write_config()

    def write_config(self) -> None:
        genesis = self.directory.parent / "genesis.json"
        config = GatewayConfig(
            listen=f"127.0.0.1:{self.port}", genesis_file=genesis, validators=tuple(self.validators),
            outbox_dir=self.directory / "outbox", api_keys_file=self.directory / "api_keys.json",
        )
        obj = config.to_obj()
        obj["gateway"].update(self.options)
        (self.directory / "gateway.toml").write_text(tomli_w.dumps(obj))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['main']}"}

    def start(self, timeout: float = 30.0) -> None:
        log = self.directory / "gateway.log"
        self.proc = spawn_gateway(self.directory / "gateway.toml", log, log_level="WARNING")
        wait_serving(self.url + "/healthz", self.proc, timeout=timeout, log=log)

    def kill(self) -> None:
        """SIGKILL: the crash the outbox must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Voters:
    """The demo voters of a network, able to sign any ballot a test needs."""

    def __init__(self, directory: Path) -> None:
        from ballotledger.netsetup import VOTERS_FILE, voter_key
        from ledger.credentials import CredentialSet

        self.genesis_path = directory / "genesis.json"
        self.genesis = Genesis.from_json(self.genesis_path.read_bytes())
        meta = json.loads((directory / VOTERS_FILE).read_text())
        self.keys = [voter_key(meta["seed"], i) for i in range(meta["count"])]
        self.credentials = CredentialSet([k.public_key for k in self.keys])

    def envelope(self, voter: int, choice: int = 0, *, election: str = MAIN, chain_id: str | None = None) -> Any:
        from ledger.ballot import BallotEnvelope

        key = self.keys[voter]
        return BallotEnvelope.create(
            key, chain_id=chain_id or self.genesis.chain_id, election_id=election,
            proof=self.credentials.proof(key.public_key), payload=bytes([choice]),
        )

    def ballot(self, voter: int, choice: int = 0, *, election: str = MAIN, chain_id: str | None = None) -> bytes:
        raw: bytes = self.envelope(voter, choice, election=election, chain_id=chain_id).encode()
        return raw
