"""What the Ethereum RPC modules share: hex encodings, quantities, tags, the base error."""

from __future__ import annotations

from typing import Any

from eth.constants import UINT_256_MAX

from ledger.errors import LedgerError
from node.jsonrpc import InvalidParams

# Every block is final (BFT): each of these names the tip.
FINAL_TAGS = ("latest", "safe", "finalized", "pending")


class EthRpcError(LedgerError):
    code = "eth_rpc_error"


def data_hex(data: bytes) -> str:
    """Ethereum's DATA encoding: 0x then two hex digits a byte."""
    return "0x" + data.hex()


def qty(n: int) -> str:
    """Ethereum's QUANTITY encoding: 0x then hex digits without leading zeros."""
    return hex(n)


def parse_quantity(value: Any, what: str) -> int:
    """A quantity (hex string or JSON number) of at most 256 bits, as every EVM word is."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT_256_MAX:
        return value
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3 or len(value) > 66:
        raise InvalidParams(f"{what} must be a hex quantity of at most 256 bits")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise InvalidParams(f"{what} must be a hex quantity of at most 256 bits") from exc
