"""A validator's configuration (TOML) and its key file."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from node.http_limits import HttpLimits


class ConfigError(LedgerError):
    code = "bad_config"


@dataclass(frozen=True)
class PeerConfig:
    public_key: bytes
    address: str  # host:port


@dataclass(frozen=True)
class ConsensusTimeouts:
    propose_ms: int = 1500
    prevote_ms: int = 500
    precommit_ms: int = 500
    delta_ms: int = 500  # added per round: timeouts grow until the network catches up
    block_interval_ms: int = 250  # pause after a commit so blocks can fill


@dataclass(frozen=True)
class NodeConfig:
    name: str
    data_dir: Path
    genesis_file: Path
    key_file: Path
    p2p_listen: str
    rpc_listen: str
    peers: tuple[PeerConfig, ...] = ()
    timeouts: ConsensusTimeouts = field(default_factory=ConsensusTimeouts)
    mempool_max: int = 200_000
    # [rpc] header size and count, header and body deadlines, connections, keep-alive:
    # see node.http_limits for each key, its default and the answer to a client over it.
    rpc_limits: HttpLimits = field(default_factory=HttpLimits)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeConfig:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {p}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p} is not valid TOML: {exc}") from exc
        try:
            return cls._from_obj(raw, p.parent)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{p}: {exc!r}") from exc

    @classmethod
    def _from_obj(cls, raw: dict[str, Any], base: Path) -> NodeConfig:
        def path(value: str) -> Path:
            q = Path(value)
            return q if q.is_absolute() else base / q

        peers = tuple(
            PeerConfig(bytes.fromhex(p["public_key"]), str(p["address"])) for p in raw.get("p2p", {}).get("peers", [])
        )
        t = raw.get("consensus", {})
        timeouts = ConsensusTimeouts(**{k: int(v) for k, v in t.items()})
        return cls(
            name=str(raw["name"]),
            data_dir=path(raw["data_dir"]),
            genesis_file=path(raw["genesis"]),
            key_file=path(raw["key_file"]),
            p2p_listen=str(raw["p2p"]["listen"]),
            rpc_listen=str(raw["rpc"]["listen"]),
            peers=peers,
            timeouts=timeouts,
            mempool_max=int(raw.get("mempool_max", 200_000)),
            rpc_limits=HttpLimits.from_obj(raw["rpc"]),
        )

    def to_obj(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The TOML form; paths relative to ``relative_to`` (the config's folder) where
        given, so a node's directory can be moved or copied whole."""

        def rel(p: Path) -> str:
            if relative_to is None:
                return str(p)
            return os.path.relpath(p, relative_to)

        return {
            "name": self.name,
            "data_dir": rel(self.data_dir),
            "genesis": rel(self.genesis_file),
            "key_file": rel(self.key_file),
            "mempool_max": self.mempool_max,
            "p2p": {
                "listen": self.p2p_listen,
                "peers": [{"public_key": p.public_key.hex(), "address": p.address} for p in self.peers],
            },
            "rpc": {"listen": self.rpc_listen, **self.rpc_limits.to_obj()},
            "consensus": {
                "propose_ms": self.timeouts.propose_ms,
                "prevote_ms": self.timeouts.prevote_ms,
                "precommit_ms": self.timeouts.precommit_ms,
                "delta_ms": self.timeouts.delta_ms,
                "block_interval_ms": self.timeouts.block_interval_ms,
            },
        }


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"address {address!r} must be host:port")
    return host, int(port)


def write_secret(path: Path, text: str) -> None:
    """Write a secret readable by its owner only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def write_key(path: Path, key: SigningKey) -> None:
    write_secret(path, key.secret.hex())


def read_key(path: Path) -> SigningKey:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc}") from exc
    try:
        return SigningKey(bytes.fromhex(text))
    except (ValueError, LedgerError) as exc:
        raise ConfigError(f"{path} does not hold a secp256k1 secret key in hex") from exc
