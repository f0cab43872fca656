"""The gateway's configuration (TOML) and its API keys file (JSON, keys stored hashed)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import LedgerError
from ledger.files import load_json
from node.config import check_known_keys, load_toml
from node.http_limits import HttpLimits

# A keys file holds one short entry (name, hash, rate, burst) per front end: some 150
# bytes each, so four megabytes hold tens of thousands. {"keys": [{...}]} nests 3 deep.
MAX_KEYS_FILE_BYTES = 4 << 20
KEYS_FILE_DEPTH = 3


class GatewayConfigError(LedgerError):
    code = "bad_gateway_config"


@dataclass(frozen=True)
class GatewayConfig:
    listen: str  # host:port
    genesis_file: Path
    validators: tuple[str, ...]  # JSON-RPC URLs, in priority order
    outbox_dir: Path
    api_keys_file: Path
    max_request_bytes: int = 65536
    # group commit: one synced WriteBatch per at most this many ballots / this long a wait
    commit_max_items: int = 1024
    commit_linger_ms: float = 0.0
    forward_batch: int = 1000
    forward_interval_ms: int = 20
    resubmit_after_s: float = 10.0
    rpc_timeout_s: float = 5.0
    # Reads without an API key (receipts, elections, checkpoints, the page): per client address.
    public_read_rate_per_s: float = 20.0
    public_read_burst: float = 60.0
    # Worker processes that check encrypted ballots' proofs off the event loop; 0 checks
    # every submission on the loop.
    admission_workers: int = 2
    # HTTPS: certificate and key of the gateway; with a client CA, mutual TLS (front ends
    # must present a certificate that CA signed, as well as their API key).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_client_ca: Path | None = None
    # Header size and count, header and body deadlines, connections, keep-alive (keys in
    # the [gateway] table): see node.http_limits for each default and its answer (431,
    # 408, 503). The body limit is max_request_bytes (413).
    http_limits: HttpLimits = field(default_factory=HttpLimits)

    def __post_init__(self) -> None:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise GatewayConfigError("tls_certfile and tls_keyfile go together")
        if self.tls_client_ca is not None and self.tls_certfile is None:
            raise GatewayConfigError("tls_client_ca (mutual TLS) needs tls_certfile and tls_keyfile")
        if self.public_read_rate_per_s <= 0 or self.public_read_burst < 1:
            raise GatewayConfigError("public_read_rate_per_s must be positive and public_read_burst at least 1")
        if self.admission_workers < 0:
            raise GatewayConfigError("admission_workers must be 0 (checks on the event loop) or more")

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GatewayConfig:
        p = Path(path)
        raw = load_toml(p, GatewayConfigError)
        try:
            return cls.from_obj(raw.get("gateway", raw), p.parent)
        except GatewayConfigError as exc:
            raise GatewayConfigError(f"{p}: {exc.message}") from None
        except KeyError as exc:
            raise GatewayConfigError(f"{p}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise GatewayConfigError(f"{p}: {exc}") from None

    @classmethod
    def from_obj(cls, raw: dict[str, Any], base: Path) -> GatewayConfig:
        def path(value: str) -> Path:
            q = Path(value)
            return q if q.is_absolute() else base / q

        validators = tuple(str(u) for u in raw["validators"])
        if not validators:
            raise GatewayConfigError("validators: at least one RPC URL is needed")
        optional = {
            "max_request_bytes": int, "commit_max_items": int, "commit_linger_ms": float,
            "forward_batch": int, "forward_interval_ms": int, "resubmit_after_s": float, "rpc_timeout_s": float,
            "public_read_rate_per_s": float, "public_read_burst": float,
            "admission_workers": int,
        }
        tls = ("tls_certfile", "tls_keyfile", "tls_client_ca")
        known = {"listen", "genesis_file", "validators", "outbox_dir", "api_keys_file", *optional, *tls,
                 *HttpLimits.__dataclass_fields__}
        check_known_keys(raw, known, "[gateway]", GatewayConfigError)
        extra: dict[str, Any] = {k: conv(raw[k]) for k, conv in optional.items() if k in raw}
        for key in tls:
            if key in raw:
                extra[key] = path(raw[key])
        return cls(
            http_limits=HttpLimits.from_obj(raw),
            listen=str(raw["listen"]),
            genesis_file=path(raw["genesis_file"]),
            validators=validators,
            outbox_dir=path(raw["outbox_dir"]),
            api_keys_file=path(raw["api_keys_file"]),
            **extra,
        )

    def to_obj(self) -> dict[str, Any]:
        return {
            "gateway": {
                "listen": self.listen,
                "genesis_file": str(self.genesis_file),
                "validators": list(self.validators),
                "outbox_dir": str(self.outbox_dir),
                "api_keys_file": str(self.api_keys_file),
                "max_request_bytes": self.max_request_bytes,
                "commit_max_items": self.commit_max_items,
                "commit_linger_ms": self.commit_linger_ms,
                "forward_batch": self.forward_batch,
                "forward_interval_ms": self.forward_interval_ms,
                "resubmit_after_s": self.resubmit_after_s,
                "rpc_timeout_s": self.rpc_timeout_s,
                "public_read_rate_per_s": self.public_read_rate_per_s,
                "public_read_burst": self.public_read_burst,
                "admission_workers": self.admission_workers,
                **self.http_limits.to_obj(),
                **{
                    k: str(v)
                    for k, v in (
                        ("tls_certfile", self.tls_certfile),
                        ("tls_keyfile", self.tls_keyfile),
                        ("tls_client_ca", self.tls_client_ca),
                    )
                    if v is not None
                },
            }
        }


# --- API keys ------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiKey:
    name: str  # the front end's name, used in metrics and logs (never the key)
    key_hash: bytes  # sha256 of the key: keys are 256-bit random, so a slow hash adds nothing
    rate_per_s: float
    burst: float


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return "blg_" + secrets.token_urlsafe(32)


def load_keys(path: Path) -> dict[bytes, ApiKey]:
    """The keys file: ``{"keys": [{"name", "sha256", "rate_per_s", "burst"}]}``."""
    try:
        obj = _read_keys_file(path)
        keys = {}
        for entry in obj["keys"]:
            k = ApiKey(
                name=str(entry["name"]),
                key_hash=bytes.fromhex(entry["sha256"]),
                rate_per_s=float(entry.get("rate_per_s", 1000.0)),
                burst=float(entry.get("burst", 2000.0)),
            )
            if len(k.key_hash) != 32 or k.rate_per_s <= 0 or k.burst < 1:
                raise ValueError(f"key {k.name}: bad hash, rate or burst")
            keys[k.key_hash] = k
        return keys
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GatewayConfigError(f"{path}: malformed keys file: {exc!r}") from None


def _read_keys_file(path: Path) -> Any:
    try:
        return load_json(path, max_bytes=MAX_KEYS_FILE_BYTES, max_depth=KEYS_FILE_DEPTH)
    except OSError as exc:
        raise GatewayConfigError(f"cannot read {path}: {exc.strerror}") from None
    except LedgerError as exc:
        raise GatewayConfigError(exc.message) from None


def add_key(path: Path, name: str, *, rate_per_s: float = 1000.0, burst: float = 2000.0) -> str:
    """Create a key for front end ``name``, store only its hash, return the key (shown once)."""
    obj: Any = _read_keys_file(path) if path.exists() else {"keys": []}
    if not isinstance(obj, dict) or not isinstance(obj.get("keys"), list):
        raise GatewayConfigError(f"{path}: malformed keys file: no list of keys")
    if any(isinstance(e, dict) and e.get("name") == name for e in obj["keys"]):
        raise GatewayConfigError(f"{path}: a key named {name!r} exists")
    key = new_key()
    obj["keys"].append({"name": name, "sha256": hash_key(key).hex(), "rate_per_s": rate_per_s, "burst": burst})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)
    return key
