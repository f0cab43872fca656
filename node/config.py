"""A validator's configuration (TOML) and its key file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.files import write_atomic
from node import tomlbound
from node.http_limits import HttpLimits
from node.keyfile import Passphrase, passphrase_source, read_signing_key
from node.logs import LOG_FORMATS

# A node's config is a few kilobytes, about 40 with a peer for every validator genesis
# allows; a megabyte leaves room for any comments. Tables, arrays of tables and inline
# values nest two or three deep.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 4
HTTP_LIMIT_KEYS = frozenset(HttpLimits.__dataclass_fields__)


class ConfigError(LedgerError):
    code = "bad_config"


def load_toml(path: Path, error: type[LedgerError]) -> dict[str, Any]:
    """A config file bounded in size and nesting, or ``error`` in one line naming it."""
    try:
        return tomlbound.load(path, max_bytes=MAX_CONFIG_BYTES, max_depth=MAX_CONFIG_DEPTH)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    except LedgerError as exc:
        raise error(exc.message) from None


@dataclass(frozen=True)
class PeerConfig:
    public_key: bytes
    address: str  # host:port


ROLES = ("validator", "follower")


@dataclass(frozen=True)
class FollowerLimits:
    """What the followers linked to this node may cost it (TOML: keys of ``[p2p]``).

    A follower is an outside peer, hostile by default: it may only ask for certified
    blocks, at most ``max_followers`` are linked at once, and each is served at most
    ``follower_sync_bytes_per_s`` of blocks (node.followers)."""

    max_followers: int = 8  # 0 refuses every follower
    follower_keys: tuple[bytes, ...] = ()  # transport keys allowed to follow; empty: any key
    follower_sync_bytes_per_s: int = 4 << 20


@dataclass(frozen=True)
class ConsensusTimeouts:
    propose_ms: int = 1500
    prevote_ms: int = 500
    precommit_ms: int = 500
    delta_ms: int = 500  # added per round: timeouts grow until the network catches up
    block_interval_ms: int = 250  # pause after a commit so blocks can fill
    # With nothing pending no block is made, except an empty one this long after the last
    # block, so observers see the chain is alive (seconds, unlike the others). 0: never
    # wait for work (a block every block_interval_ms, empty or not).
    checkpoint_interval_s: int = 60


@dataclass(frozen=True)
class RpcLimits:
    """What one JSON-RPC client may cost a validator (TOML: keys of the ``[rpc]`` table).

    Clients are told apart by their IP address. A call's cost is its method's weight in
    ``node.rpc_limits.METHOD_COSTS`` (1 for a status read, 100 for a page of blocks).
    """

    batch_budget: int = 1_000  # cost units one HTTP request (a batch) may spend
    max_body_bytes: int = 4 << 20  # bytes in one request body (a batch of 1,000 ballots is ~2 MB)
    max_json_values: int = 20_000  # separators (',' ':') in a body, counted before it is parsed
    parse_rate: float = 200_000.0  # parse units (a JSON value, or 128 body bytes) per second per client
    submit_rate: float = 1_000.0  # ballots (and transactions) per second per client address
    submit_burst: int = 5_000  # ballots a client may submit at once before the rate applies
    submit_exempt: tuple[str, ...] = ()  # client addresses not rate-limited (a gateway's)
    read_queue: int = 256  # reads waiting for the read worker, all clients together
    read_queue_per_client: int = 8  # of which one client address may hold
    read_share: float = 0.25  # of a core the read worker may use, however much is asked of it
    max_page_bytes: int = 512 << 10  # raw block bytes in one ballot_getBlocks page
    max_page_codes: int = 16_384  # tracking codes in one ballot_getTrackingCodes page
    results_slice_ballots: int = 50_000  # ballots the results follower counts per turn of the worker
    eth_call_gas: int = 5_000_000  # gas cap of eth_call
    max_log_blocks: int = 2_000  # blocks one eth_getLogs may scan

    @classmethod
    def from_obj(cls, raw: dict[str, Any]) -> RpcLimits:
        known = {f for f in cls.__dataclass_fields__}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "listen":
                continue
            if key not in known:
                raise ValueError(f"unknown rpc setting {key!r}")
            default = getattr(cls(), key)
            if isinstance(default, tuple):
                values[key] = tuple(str(v) for v in value)
            elif isinstance(default, float):
                values[key] = float(value)
            else:
                values[key] = int(value)
            if isinstance(values[key], (int, float)) and values[key] <= 0:
                raise ValueError(f"rpc setting {key} must be positive")
        if values.get("read_share", 0.25) > 1:
            raise ValueError("rpc setting read_share is a fraction of one core: at most 1")
        return cls(**values)

    def to_obj(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


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
    # Worker processes that check costly ballots (encrypted ones) for admission and
    # block sync; 0 checks admissions on the consensus loop.
    admission_workers: int = 2
    rpc_limits: RpcLimits = field(default_factory=RpcLimits)
    # [rpc] header size and count, header and body deadlines, connections, keep-alive:
    # see node.http_limits for each key, its default and the answer to a client over it.
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    # A keystore key_file's passphrase: the first line of this file (owner-only), else
    # this environment variable, else a prompt on the terminal (node.keyfile).
    key_passphrase_file: Path | None = None
    key_passphrase_env: str | None = None
    # "validator": votes while its key is in the set in force; "follower": never votes,
    # syncs and checks every block, serves the read RPC. ``key_file`` is then only the
    # key its peer links authenticate with (any secp256k1 key, in no validator set).
    role: str = "validator"
    followers: FollowerLimits = field(default_factory=FollowerLimits)
    log_format: str = "plain"  # or "json": one JSON object a line (node.logs)
    log_refusals_every_s: int = 10  # refused ballots are logged as counts by code, one line this often

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeConfig:
        p = Path(path)
        raw = load_toml(p, ConfigError)
        try:
            return cls._from_obj(raw, p.parent)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc.message}") from None
        except KeyError as exc:
            raise ConfigError(f"{p}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{p}: {exc}") from None

    @classmethod
    def _from_obj(cls, raw: dict[str, Any], base: Path) -> NodeConfig:
        def path(value: str) -> Path:
            q = Path(value)
            return q if q.is_absolute() else base / q

        check_known_keys(raw, _TOP_KEYS, "node.toml")
        check_known_keys(raw["p2p"], {"listen", "peers", *FollowerLimits.__dataclass_fields__}, "[p2p]")
        for peer in raw["p2p"].get("peers", []):
            check_known_keys(peer, {"public_key", "address"}, "[[p2p.peers]]")
        check_known_keys(raw.get("consensus", {}), set(ConsensusTimeouts.__dataclass_fields__), "[consensus]")
        peers = tuple(
            PeerConfig(bytes.fromhex(p["public_key"]), str(p["address"])) for p in raw.get("p2p", {}).get("peers", [])
        )
        t = raw.get("consensus", {})
        timeouts = ConsensusTimeouts(**{
            k: (_non_negative if k == "checkpoint_interval_s" else _positive)(v, f"[consensus] {k}")
            for k, v in t.items()
        })
        passphrase_env = raw.get("key_passphrase_env")
        if passphrase_env is not None and (not isinstance(passphrase_env, str) or not passphrase_env):
            raise ConfigError("key_passphrase_env must be the name of an environment variable")
        role = raw.get("role", "validator")
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        log_format = raw.get("log_format", "plain")
        if log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(map(repr, LOG_FORMATS))}, not {log_format!r}")
        workers = raw.get("admission_workers", 2)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ConfigError("admission_workers must be 0 (checks on the consensus loop) or more")
        return cls(
            name=str(raw["name"]),
            data_dir=path(raw["data_dir"]),
            genesis_file=path(raw["genesis"]),
            key_file=path(raw["key_file"]),
            p2p_listen=str(raw["p2p"]["listen"]),
            rpc_listen=str(raw["rpc"]["listen"]),
            peers=peers,
            timeouts=timeouts,
            mempool_max=_positive(raw.get("mempool_max", 200_000), "mempool_max"),
            admission_workers=workers,
            rpc_limits=RpcLimits.from_obj({k: v for k, v in raw["rpc"].items() if k not in HTTP_LIMIT_KEYS}),
            http_limits=HttpLimits.from_obj(raw["rpc"]),
            key_passphrase_file=path(raw["key_passphrase_file"]) if "key_passphrase_file" in raw else None,
            key_passphrase_env=passphrase_env,
            role=role,
            followers=_follower_limits(raw["p2p"]),
            log_format=log_format,
            log_refusals_every_s=_positive(raw.get("log_refusals_every_s", 10), "log_refusals_every_s"),
        )

    def to_obj(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The TOML form; paths relative to ``relative_to`` (the config's folder) where
        given, so a node's directory can be moved or copied whole."""

        def rel(p: Path) -> str:
            if relative_to is None:
                return str(p)
            return os.path.relpath(p, relative_to)

        optional: dict[str, Any] = {}
        if self.key_passphrase_file is not None:
            optional["key_passphrase_file"] = rel(self.key_passphrase_file)
        if self.key_passphrase_env is not None:
            optional["key_passphrase_env"] = self.key_passphrase_env
        return {
            "name": self.name,
            "role": self.role,
            "data_dir": rel(self.data_dir),
            "genesis": rel(self.genesis_file),
            "key_file": rel(self.key_file),
            **optional,
            "mempool_max": self.mempool_max,
            "admission_workers": self.admission_workers,
            "log_format": self.log_format,
            "log_refusals_every_s": self.log_refusals_every_s,
            "p2p": {
                "listen": self.p2p_listen,
                "peers": [{"public_key": p.public_key.hex(), "address": p.address} for p in self.peers],
                "max_followers": self.followers.max_followers,
                "follower_keys": [k.hex() for k in self.followers.follower_keys],
                "follower_sync_bytes_per_s": self.followers.follower_sync_bytes_per_s,
            },
            "rpc": {"listen": self.rpc_listen, **self.rpc_limits.to_obj(), **self.http_limits.to_obj()},
            "consensus": {
                "propose_ms": self.timeouts.propose_ms,
                "prevote_ms": self.timeouts.prevote_ms,
                "precommit_ms": self.timeouts.precommit_ms,
                "delta_ms": self.timeouts.delta_ms,
                "block_interval_ms": self.timeouts.block_interval_ms,
                "checkpoint_interval_s": self.timeouts.checkpoint_interval_s,
            },
        }


_TOP_KEYS = {"name", "role", "data_dir", "genesis", "key_file", "key_passphrase_file", "key_passphrase_env",
             "mempool_max", "admission_workers", "p2p", "rpc", "consensus", "log_format", "log_refusals_every_s"}


def check_known_keys(table: Any, known: set[str], where: str, error: type[LedgerError] = ConfigError) -> None:
    """A misspelt key is refused, never silently ignored (its default would apply)."""
    if not isinstance(table, dict):
        raise error(f"{where} must be a table")
    unknown = sorted(set(table) - known)
    if unknown:
        raise error(f"unknown key {unknown[0]!r} in {where}; known keys: {', '.join(sorted(known))}")


def _follower_limits(p2p: dict[str, Any]) -> FollowerLimits:
    most = p2p.get("max_followers", FollowerLimits.max_followers)
    if not isinstance(most, int) or isinstance(most, bool) or most < 0:
        raise ConfigError(f"[p2p] max_followers must be 0 (no followers) or more, not {most!r}")
    keys = p2p.get("follower_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError("[p2p] follower_keys must be a list of hex public keys")
    parsed = tuple(bytes.fromhex(k) for k in keys)
    if any(len(k) != 33 for k in parsed):
        raise ConfigError("[p2p] follower_keys: each key is 33 bytes (66 hex digits, compressed)")
    rate = _positive(p2p.get("follower_sync_bytes_per_s", FollowerLimits.follower_sync_bytes_per_s),
                     "[p2p] follower_sync_bytes_per_s")
    return FollowerLimits(most, parsed, rate)


def _positive(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{what} must be a positive integer, not {value!r}")
    return value


def _non_negative(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{what} must be 0 or a positive integer, not {value!r}")
    return value


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"address {address!r} must be host:port")
    return host, int(port)


def write_secret(path: Path, text: str) -> None:
    """Write a secret readable by its owner only, atomically (``ledger.files.write_atomic``
    with mode 0600: never readable by others, not even for a moment)."""
    write_atomic(path, (text + "\n").encode(), mode=0o600)


def write_key(path: Path, key: SigningKey) -> None:
    write_secret(path, key.secret.hex())


def read_key(path: Path, passphrase: Passphrase | None = None) -> SigningKey:
    """A validator's or the authority's key: plain hex or a keystore (``node.keyfile``),
    owner-only; ``ConfigError`` in one line otherwise."""
    try:
        return read_signing_key(path, passphrase)
    except LedgerError as exc:
        raise ConfigError(exc.message) from None


def load_node_key(config: NodeConfig, prompt: Callable[[], str] | None = None) -> SigningKey:
    """The node's key, its keystore opened with the passphrase the config names (or, with
    neither ``key_passphrase_file`` nor ``key_passphrase_env``, by ``prompt``)."""
    return read_key(config.key_file,
                    passphrase_source(config.key_passphrase_file, config.key_passphrase_env, prompt))
