"""An election's definition and ceremony read from a running node, over its JSON-RPC.

Definitions and phases come from ``ballot_getElections``. The ceremony view
(``ceremony``) gives, per trustee, the hash of its dealing and of its decryption share;
the bytes are in the registry's ``DealingPosted`` and ``DecryptionSharePosted`` events.
Each posting happens once and is never undone, so the block that carries it is the
first height at which the view shows its hash: a bisection over the view's history
(``eth_call`` at a block number) finds it in about log2(height) calls, and one
``eth_getLogs`` of that block gives the bytes, which must hash to what the view says.
``contracts.ceremony.read_ceremony`` then decodes the ceremony as validators do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts import REGISTRY_ADDRESS, election_key, registry
from contracts.ceremony import Ceremony, read_ceremony
from ledger.errors import LedgerError, UnknownElection
from ledger.genesis import ElectionDef, Genesis
from ledger.hashing import keccak256
from verifier.rpc_client import RpcClient

ZERO = b"\x00" * 32
_EVENTS = ("DealingPosted", "DecryptionSharePosted")


class RegistryReadError(LedgerError):
    """The node's answers do not make a consistent registry (a posting whose event is
    missing or whose bytes do not hash to what the registry holds)."""

    code = "registry_read_error"


@dataclass(frozen=True)
class PublishedElection:
    election: ElectionDef  # with its joint key once the ceremony set one
    phase: str  # setup, open, closed, tallied


# A posting: (0 for a dealing, 1 for a decryption share; trustee index from 1).
Posting = tuple[int, int]


def postings(view: tuple[tuple[bytes, ...], tuple[bool, ...], tuple[bytes, ...]]) -> dict[Posting, bytes]:
    """The hashes the ``ceremony`` view shows posted, by posting."""
    dealt, _, shares = view
    out: dict[Posting, bytes] = {}
    for kind, hashes in enumerate((dealt, shares)):
        for i, h in enumerate(hashes, start=1):
            if h != ZERO:
                out[(kind, i)] = h
    return out


def first_heights(probe: Callable[[int], set[Posting]], lo: int, hi: int, wanted: set[Posting]) -> dict[Posting, int]:
    """For each posting of ``wanted`` (all present at ``hi``, none before ``lo``), the
    first height in [lo, hi] at which ``probe`` shows it: one bisection shared by all."""
    found: dict[Posting, int] = {}
    stack = [(lo, hi, wanted)]
    while stack:
        a, b, items = stack.pop()
        if not items:
            continue
        if a == b:
            found.update(dict.fromkeys(items, a))
            continue
        mid = (a + b) // 2
        present = probe(mid) & items
        stack.append((a, mid, present))
        stack.append((mid + 1, b, items - present))
    return found


class RegistryRpc:
    """Registry reads through one node; dealings and shares found once are kept."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client
        self._genesis: Genesis | None = None
        self._bytes: dict[bytes, bytes] = {}  # hash -> posted bytes
        # per election: a height at which every posting whose bytes are not kept was absent
        self._absent_at: dict[bytes, int] = {}

    @property
    def genesis(self) -> Genesis:
        if self._genesis is None:
            self._genesis = Genesis.from_json_obj(self.client.call("ballot_getGenesis"))
        return self._genesis

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    def election(self, election_id: str) -> PublishedElection:
        """``UnknownElection`` if the registry does not define it."""
        from node.gateway.directory import parse_elections

        defined, phases = parse_elections(self.client.call("ballot_getElections"), {})
        for election in defined:
            if election.election_id == election_id:
                return PublishedElection(election, phases[election_id])
        raise UnknownElection(f"the chain defines no election {election_id!r}")

    def head(self) -> int:
        answer = self.client.call("eth_blockNumber")
        try:
            return int(answer, 16)
        except (TypeError, ValueError):
            raise RegistryReadError("eth_blockNumber: not a block number") from None

    def call(self, data: bytes, height: int) -> bytes:
        out = self.client.call("eth_call", {"to": "0x" + REGISTRY_ADDRESS.hex(), "data": "0x" + data.hex()},
                               hex(height))
        try:
            return bytes.fromhex(str(out).removeprefix("0x"))
        except ValueError:
            raise RegistryReadError("eth_call: not hex") from None

    def _view(self, key: bytes, height: int) -> tuple[tuple[bytes, ...], tuple[bool, ...], tuple[bytes, ...]]:
        reg = registry()
        return reg.decode_ceremony(self.call(reg.fn("ceremony").encode(key), height))

    def ceremony(self, election_id: str) -> Ceremony:
        """The ceremony as of the node's latest block, every posting's bytes checked
        against its hash."""
        key = election_key(election_id)
        head = self.head()
        missing = {p: h for p, h in postings(self._view(key, head)).items() if h not in self._bytes}
        if missing:
            heights = first_heights(lambda h: set(postings(self._view(key, h))), self._absent_at.get(key, 0) + 1,
                                    head, set(missing))
            for height in sorted(set(heights.values())):
                self._fetch_logs(key, height, set(missing.values()))
        ceremony = read_ceremony(_AtHeight(self, head), key)
        self._absent_at[key] = head
        return ceremony

    def _fetch_logs(self, key: bytes, height: int, hashes: set[bytes]) -> None:
        """Keep the bytes of the block's postings that hash to one of ``hashes``."""
        reg = registry()
        topics = [["0x" + reg.events[name].topic.hex() for name in _EVENTS], "0x" + key.hex()]
        logs: Any = self.client.call("eth_getLogs", {"fromBlock": hex(height), "toBlock": hex(height),
                                                     "address": "0x" + REGISTRY_ADDRESS.hex(), "topics": topics})
        for log in logs if isinstance(logs, list) else []:
            try:
                decoded = reg.decode_log([bytes.fromhex(t.removeprefix("0x")) for t in log["topics"]],
                                         bytes.fromhex(log["data"].removeprefix("0x")))
            except (LedgerError, KeyError, TypeError, ValueError, AttributeError):
                continue  # not one of ours: the hash check below decides what counts
            if decoded is None or decoded[0] not in _EVENTS:
                continue
            fields = decoded[1]
            raw = bytes(fields["dealing"] if decoded[0] == "DealingPosted" else fields["share"])
            digest = keccak256(raw)
            if digest in hashes:
                self._bytes[digest] = raw


class _AtHeight:
    """``contracts.ceremony.RegistryReader`` over RPC at one height."""

    def __init__(self, rpc: RegistryRpc, height: int) -> None:
        self.rpc = rpc
        self.height = height

    def call(self, data: bytes) -> bytes:
        return self.rpc.call(data, self.height)

    def preimage(self, digest: bytes) -> bytes | None:
        raw = self.rpc._bytes.get(bytes(digest))
        if raw is None:
            raise RegistryReadError(f"the registry's state names {bytes(digest).hex()}, and no event of the "
                                    "block that posted it carries bytes of that hash")
        return raw
