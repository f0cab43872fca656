"""A real network's plan: which authorities run validators, where, and who the election
authority is; the genesis and each node's ``node.toml`` follow from it.

``ballotledger init`` makes a whole local network with fresh keys on loopback. Across data
centres no one holds every key: each operator makes its own (``ballotledger keys new``)
and sends only the public key; the commission writes ``network.toml`` from those::

    chain_id = "national-2027"
    authority = "02ab..."          # the election authority's public key
    [params]                       # optional; ChainParams' defaults otherwise
    max_block_ballots = 4000
    [[validators]]
    name = "commission-seoul"
    public_key = "03cd..."
    address = "10.0.1.5:26656"     # where the other validators reach its p2p port

``genesis_of`` makes the genesis every node loads (its hash is what observers pin; no
election in it: the authority defines elections on chain), ``node_config_of`` one
operator's ``node.toml``. Both are pure: the same plan gives the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ballotledger.roll import parse_public_key
from ledger.errors import LedgerError
from ledger.genesis import ChainParams, Genesis, ValidatorInfo, ValidatorSet
from node.config import ConfigError, NodeConfig, PeerConfig, check_known_keys, load_toml, split_address

MIN_VALIDATORS = 4  # f = 1: the fewest that tolerate one Byzantine validator
MAX_VALIDATORS = 256
_PARAM_KEYS = {"max_block_ballots", "max_ballot_bytes", "max_payload_bytes", "max_proof_depth"}


@dataclass(frozen=True)
class PlannedValidator:
    name: str
    public_key: bytes
    address: str  # host:port of its p2p listener, as the others reach it
    power: int = 1


@dataclass(frozen=True)
class NetworkPlan:
    chain_id: str
    authority: bytes
    validators: tuple[PlannedValidator, ...]
    params: ChainParams

    @classmethod
    def load(cls, path: Path) -> NetworkPlan:
        """The plan in ``path``, or ``ConfigError`` in one line naming the file and the key."""
        raw = load_toml(path, ConfigError)
        try:
            return cls.from_obj(raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}") from None
        except LedgerError as exc:
            raise ConfigError(f"{path}: {exc.message}") from None

    @classmethod
    def from_obj(cls, raw: dict[str, Any]) -> NetworkPlan:
        check_known_keys(raw, {"chain_id", "authority", "params", "validators"}, "network plan")
        params = raw.get("params", {})
        check_known_keys(params, _PARAM_KEYS, "[params]")
        entries = raw.get("validators")
        if not isinstance(entries, list) or not MIN_VALIDATORS <= len(entries) <= MAX_VALIDATORS:
            raise ConfigError(f"[[validators]] must list {MIN_VALIDATORS} to {MAX_VALIDATORS} validators")
        validators = tuple(_validator(entry, i) for i, entry in enumerate(entries))
        _check_distinct(validators)
        chain_id = raw.get("chain_id")
        if not isinstance(chain_id, str) or not chain_id:
            raise ConfigError("chain_id must be a non-empty string")
        return cls(
            chain_id=chain_id,
            authority=_public_key(raw.get("authority"), "authority"),
            validators=validators,
            params=ChainParams(**params, contracts=True),
        )

    def validator(self, name: str) -> PlannedValidator:
        for v in self.validators:
            if v.name == name:
                return v
        names = ", ".join(v.name for v in self.validators)
        raise ConfigError(f"no validator named {name!r} in the plan (names: {names})")


def _validator(entry: Any, i: int) -> PlannedValidator:
    where = f"[[validators]] #{i + 1}"
    check_known_keys(entry, {"name", "public_key", "address", "power"}, where)
    name, address, power = entry.get("name"), entry.get("address"), entry.get("power", 1)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name must be a non-empty string")
    if not isinstance(address, str):
        raise ConfigError(f"{where}: address must be host:port")
    split_address(address)
    if not isinstance(power, int) or isinstance(power, bool) or power <= 0:
        raise ConfigError(f"{where}: power must be a positive integer")
    return PlannedValidator(name, _public_key(entry.get("public_key"), f"{where} public_key"), address, power)


def _public_key(value: Any, what: str) -> bytes:
    try:
        return parse_public_key(value if isinstance(value, str) else "")
    except LedgerError:
        raise ConfigError(f"{what} must be a compressed secp256k1 public key in hex") from None


def _check_distinct(validators: tuple[PlannedValidator, ...]) -> None:
    for field_name in ("name", "public_key", "address"):
        values = [getattr(v, field_name) for v in validators]
        if len(set(values)) != len(values):
            raise ConfigError(f"two validators have the same {field_name.replace('_', ' ')}")


def genesis_of(plan: NetworkPlan, genesis_time_ms: int) -> Genesis:
    validators = ValidatorSet(tuple(ValidatorInfo(v.name, v.public_key, v.power) for v in plan.validators))
    return Genesis(
        chain_id=plan.chain_id, genesis_time_ms=genesis_time_ms, authority=plan.authority,
        validators=validators, params=plan.params, elections=(),
    )


def node_config_of(
    plan: NetworkPlan, name: str, *, data_dir: Path, key_file: Path, genesis_file: Path, rpc_listen: str,
    listen_host: str = "0.0.0.0",
) -> NodeConfig:
    """``name``'s node.toml: its p2p port on ``listen_host``, every other validator a peer."""
    own = plan.validator(name)
    split_address(rpc_listen)
    _, port = split_address(own.address)
    peers = tuple(PeerConfig(v.public_key, v.address) for v in plan.validators if v.name != name)
    return NodeConfig(
        name=name, data_dir=data_dir, genesis_file=genesis_file, key_file=key_file,
        p2p_listen=f"{listen_host}:{port}", rpc_listen=rpc_listen, peers=peers,
    )
