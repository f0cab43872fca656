"""``ballotledger init``: keys, a genesis and node configs for an N-validator network."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ballotledger.election_kit import DAY_MS, demo_genesis
from ledger.credentials import CredentialSet
from ledger.crypto import SigningKey
from ledger.errors import BadEncoding
from ledger.files import load_json
from ledger.genesis import ChainParams, Genesis
from node.config import ConsensusTimeouts, NodeConfig, PeerConfig, RpcLimits, write_key

VOTERS_FILE = "voters.json"
MAX_VOTERS_FILE_BYTES = 4096  # a seed, a count and an election id


def free_ports(n: int) -> list[int]:
    """Ports the OS says are free now (bound all at once so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def voter_key(seed: str, index: int) -> SigningKey:
    return SigningKey.from_seed(f"{seed}/voter/{index}".encode())


@dataclass(frozen=True)
class NetworkLayout:
    directory: Path
    genesis: Genesis
    configs: list[Path]


def init_network(
    directory: Path,
    *,
    validators: int,
    voters: int,
    seed: str = "localnet",
    chain_id: str = "localnet",
    election_id: str = "board-2026",
    choices: tuple[str, ...] = ("yes", "no", "abstain"),
    deterministic_keys: bool = False,
    timeouts: ConsensusTimeouts | None = None,
    max_block_ballots: int = 4000,
    followers: int = 0,
) -> NetworkLayout:
    """Write DIR/genesis.json, DIR/voters.json and DIR/nodeI/{validator.key,node.toml}
    (and DIR/followerJ/{node.key,node.toml} for each follower).

    Voter credentials are derived from ``seed`` so a load generator can cast ballots:
    that is for demos and tests only; a real election loads registered public keys.
    """
    directory.mkdir(parents=True, exist_ok=True)
    keys = [
        SigningKey.from_seed(f"{seed}/validator/{i}".encode()) if deterministic_keys else SigningKey.generate()
        for i in range(validators)
    ]
    authority = SigningKey.from_seed(f"{seed}/authority".encode()) if deterministic_keys else SigningKey.generate()
    credentials = CredentialSet([voter_key(seed, i).public_key for i in range(voters)])
    now = int(time.time() * 1000)
    genesis = demo_genesis(
        chain_id=chain_id, validator_keys=keys, authority=authority, credentials=credentials,
        election_id=election_id, choices=choices, genesis_time_ms=now - 60_000,
        opens_at_ms=now - 60_000, closes_at_ms=now + 30 * DAY_MS,
        params=ChainParams(max_block_ballots=max_block_ballots, contracts=True),
    )
    (directory / "genesis.json").write_text(genesis.to_json())
    (directory / VOTERS_FILE).write_text(
        json.dumps({"seed": seed, "count": voters, "election_id": election_id, "demo_only": True}) + "\n"
    )
    write_key(directory / "authority.key", authority)
    ports = free_ports(2 * (validators + followers))
    configs: list[Path] = []
    for i, key in enumerate(keys):
        node_dir = directory / f"node{i}"
        node_dir.mkdir(exist_ok=True)
        write_key(node_dir / "validator.key", key)
        peers = tuple(
            PeerConfig(other.public_key, f"127.0.0.1:{ports[2 * j]}") for j, other in enumerate(keys) if j != i
        )
        config = NodeConfig(
            name=f"validator-{i}",
            data_dir=node_dir / "data",
            genesis_file=directory / "genesis.json",
            key_file=node_dir / "validator.key",
            p2p_listen=f"127.0.0.1:{ports[2 * i]}",
            rpc_listen=f"127.0.0.1:{ports[2 * i + 1]}",
            peers=peers,
            timeouts=timeouts or ConsensusTimeouts(),
            # the local gateway and load generator submit from loopback's first address
            rpc_limits=RpcLimits(submit_exempt=("127.0.0.1",)),
        )
        path = node_dir / "node.toml"
        path.write_text(tomli_w.dumps(config.to_obj(relative_to=node_dir)))
        configs.append(path)
    validator_peers = tuple(PeerConfig(k.public_key, f"127.0.0.1:{ports[2 * j]}") for j, k in enumerate(keys))
    for j in range(followers):
        i = validators + j
        key = SigningKey.from_seed(f"{seed}/follower/{j}".encode()) if deterministic_keys else SigningKey.generate()
        configs.append(write_follower(
            directory / f"follower{j}", f"follower-{j}", key, directory / "genesis.json", validator_peers,
            p2p_port=ports[2 * i], rpc_port=ports[2 * i + 1], timeouts=timeouts,
        ))
    return NetworkLayout(directory, genesis, configs)


def write_follower(
    node_dir: Path,
    name: str,
    key: SigningKey,
    genesis_file: Path,
    peers: tuple[PeerConfig, ...],
    *,
    p2p_port: int,
    rpc_port: int,
    timeouts: ConsensusTimeouts | None = None,
) -> Path:
    """DIR/{node.key,node.toml} of a follower that links to ``peers`` with ``key`` (its own,
    in no validator set); the config's path. Set ``role = "validator"`` in it, and
    restart, once a set change made that key a validator's."""
    node_dir.mkdir(parents=True, exist_ok=True)
    write_key(node_dir / "node.key", key)
    config = NodeConfig(
        name=name, role="follower", data_dir=node_dir / "data", genesis_file=genesis_file,
        key_file=node_dir / "node.key", p2p_listen=f"127.0.0.1:{p2p_port}", rpc_listen=f"127.0.0.1:{rpc_port}",
        peers=peers, timeouts=timeouts or ConsensusTimeouts(), rpc_limits=RpcLimits(submit_exempt=("127.0.0.1",)),
    )
    path = node_dir / "node.toml"
    path.write_text(tomli_w.dumps(config.to_obj(relative_to=node_dir)))
    return path


def read_voters(directory: Path) -> dict[str, Any]:
    """The demo voters' description (seed, count, election id) that init wrote."""
    obj = load_json(directory / VOTERS_FILE, max_bytes=MAX_VOTERS_FILE_BYTES, max_depth=1)
    if not isinstance(obj, dict):
        raise BadEncoding(f"{directory / VOTERS_FILE} is not a JSON object")
    return obj


def init_single_validator(
    directory: Path,
    genesis: Genesis,
    key: SigningKey,
    *,
    timeouts: ConsensusTimeouts | None = None,
    admission_workers: int = 2,
) -> Path:
    """DIR/genesis.json and DIR/node0/{validator.key,node.toml} for a one-validator chain
    of a given genesis (such as an ``election_kit`` election); the config's path."""
    node_dir = directory / "node0"
    node_dir.mkdir(parents=True, exist_ok=True)
    (directory / "genesis.json").write_text(genesis.to_json())
    write_key(node_dir / "validator.key", key)
    p2p, rpc = free_ports(2)
    config = NodeConfig(
        name="validator-0", data_dir=node_dir / "data", genesis_file=directory / "genesis.json",
        key_file=node_dir / "validator.key", p2p_listen=f"127.0.0.1:{p2p}", rpc_listen=f"127.0.0.1:{rpc}",
        timeouts=timeouts or ConsensusTimeouts(), admission_workers=admission_workers,
        rpc_limits=RpcLimits(submit_exempt=("127.0.0.1",)),
    )
    path = node_dir / "node.toml"
    path.write_text(tomli_w.dumps(config.to_obj(relative_to=node_dir)))
    return path
