"""The node's ``ballot_*`` JSON-RPC methods: the one interface the load generator, the
gateway, the verifier's export and the tests use."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ledger.ballot import BallotEnvelope
from ledger.chain import Chain
from ledger.errors import BadTreeRange, LedgerError
from ledger.hashing import HASH_SIZE, keccak256
from ledger.receipt import Receipt
from ledger.tally import Tally
from node.jsonrpc import InvalidParams, Method, hex_param, int_param
from node.mempool import Mempool

MAX_BLOCKS_PAGE = 500
MAX_SUBMIT_BATCH = 5000


class NodeState(Protocol):
    """What the RPC needs from a running validator."""

    chain: Chain
    mempool: Mempool

    def status(self) -> dict[str, Any]: ...

    def gossip_ballots(self, raws: list[bytes]) -> None: ...


class BallotMethods:
    def __init__(self, node: NodeState, clock_ms: Callable[[], int] | None = None) -> None:
        self.node = node
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._results: dict[int, dict[str, Any]] = {}

    def table(self) -> dict[str, Method]:
        return {
            "ballot_submit": self.submit,
            "ballot_submitBatch": self.submit_batch,
            "ballot_getReceipt": self.get_receipt,
            "ballot_status": self.status,
            "ballot_getBlocks": self.get_blocks,
            "ballot_getTrackingCodes": self.get_tracking_codes,
            "ballot_getGenesis": self.get_genesis,
            "ballot_getCheckpoint": self.get_checkpoint,
            "ballot_getInclusionProof": self.get_inclusion_proof,
            "ballot_getConsistencyProof": self.get_consistency_proof,
            "ballot_getResults": self.get_results,
        }

    async def submit(self, ballot: str) -> dict[str, Any]:
        """Admit one ballot (hex of its canonical encoding); answers its tracking code."""
        raw = hex_param(ballot, "ballot", max_size=self.node.chain.genesis.params.max_ballot_bytes)
        admission = self.node.mempool.admit(raw, self.clock_ms())
        if admission.status == "pending":
            self.node.gossip_ballots([raw])
        return {"tracking_code": admission.tracking_code.hex(), "status": admission.status}

    async def submit_batch(self, ballots: list[str]) -> list[dict[str, Any]]:
        """Admit many ballots; one answer each, in order (a refusal does not stop the rest)."""
        if not isinstance(ballots, list) or len(ballots) > MAX_SUBMIT_BATCH:
            raise InvalidParams(f"ballots must be a list of at most {MAX_SUBMIT_BATCH} hex strings")
        limit = self.node.chain.genesis.params.max_ballot_bytes
        out: list[dict[str, Any]] = []
        fresh: list[bytes] = []
        now = self.clock_ms()
        for i, b in enumerate(ballots):
            try:
                raw = hex_param(b, f"ballots[{i}]", max_size=limit)
                admission = self.node.mempool.admit(raw, now)
            except LedgerError as exc:
                out.append({"error": {"code": exc.code, "message": exc.message}})
                continue
            if admission.status == "pending":
                fresh.append(raw)
            out.append({"tracking_code": admission.tracking_code.hex(), "status": admission.status})
        if fresh:
            self.node.gossip_ballots(fresh)
        return out

    async def get_receipt(self, tracking_code: str) -> dict[str, Any]:
        code = hex_param(tracking_code, "tracking_code", size=HASH_SIZE)
        store = self.node.chain.store
        position = store.ballot_position(code)
        if position is None:
            status = "pending" if self.node.mempool.is_pending(code) else "unknown"
            return {"status": status, "tracking_code": code.hex()}
        index, height = position
        checkpoint = store.checkpoint()
        size = checkpoint.header.log_size
        block = store.block(height)
        election_id = _election_of(block.ballots, code)
        receipt = Receipt(
            chain_id=store.genesis.chain_id,
            election_id=election_id,
            tracking_code=code,
            log_index=index,
            height=height,
            checkpoint=checkpoint,
            inclusion_proof=tuple(store.inclusion_proof(index, size)),
        )
        return {"status": "final", "tracking_code": code.hex(), "receipt": receipt.to_json_obj()}

    async def status(self) -> dict[str, Any]:
        return self.node.status()

    async def get_blocks(self, start: int, limit: int = 100) -> dict[str, Any]:
        store = self.node.chain.store
        start = int_param(start, "start", minimum=1)
        limit = int_param(limit, "limit", minimum=1, maximum=MAX_BLOCKS_PAGE)
        tip = store.height
        blocks = [
            {"block": store.raw_block(h).hex(), "certificate": store.raw_certificate(h).hex()}
            for h in range(start, min(tip, start + limit - 1) + 1)
        ]
        return {"tip": tip, "start": start, "blocks": blocks}

    async def get_tracking_codes(self, start: int, limit: int = 100) -> dict[str, Any]:
        """Committed blocks from ``start`` as height, time and their ballots' tracking codes
        (one hex string, 64 characters a code, in log order): what a follower needs to
        see its ballots become final, at a twentieth of the bytes of the blocks."""
        store = self.node.chain.store
        start = int_param(start, "start", minimum=1)
        limit = int_param(limit, "limit", minimum=1, maximum=MAX_BLOCKS_PAGE)
        tip = store.height
        blocks = []
        for h in range(start, min(tip, start + limit - 1) + 1):
            block = store.block(h)
            codes = b"".join([keccak256(raw) for raw in block.ballots])
            blocks.append({"height": h, "time_ms": block.header.time_ms, "codes": codes.hex()})
        return {"tip": tip, "start": start, "blocks": blocks}

    async def get_genesis(self) -> dict[str, Any]:
        return self.node.chain.genesis.to_json_obj()

    async def get_checkpoint(self, height: int | None = None) -> dict[str, Any]:
        store = self.node.chain.store
        h = store.height if height is None else int_param(height, "height", minimum=1)
        cp = store.checkpoint(h)
        return {
            "height": cp.header.height,
            "log_size": cp.header.log_size,
            "log_root": cp.header.log_root.hex(),
            "checkpoint": cp.encode().hex(),
        }

    async def get_inclusion_proof(self, index: int, size: int) -> list[str]:
        index = int_param(index, "index")
        size = int_param(size, "size", minimum=1)
        if index >= size:
            raise BadTreeRange(f"index {index} is not below size {size}")
        return [h.hex() for h in self.node.chain.store.inclusion_proof(index, size)]

    async def get_consistency_proof(self, old_size: int, new_size: int) -> list[str]:
        old_size = int_param(old_size, "old_size")
        new_size = int_param(new_size, "new_size")
        if old_size > new_size:
            raise BadTreeRange(f"old size {old_size} is larger than new size {new_size}")
        return [h.hex() for h in self.node.chain.store.consistency_proof(old_size, new_size)]


    async def get_results(self, height: int | None = None) -> dict[str, Any]:
        """The count at ``height`` (default: the tip), from the committed ballots."""
        store = self.node.chain.store
        h = store.height if height is None else int_param(height, "height", maximum=store.height)
        cached = self._results.get(h)
        if cached is not None:
            return cached
        tally = Tally(store.genesis)
        for block_height in range(1, h + 1):
            for raw in store.block(block_height).ballots:
                tally.record(BallotEnvelope.decode(raw))
        tally.height = h
        result = tally.to_json_obj()
        self._results = {h: result}
        return result


def _election_of(ballots: tuple[bytes, ...], code: bytes) -> str:
    for raw in ballots:
        if keccak256(raw) == code:
            return BallotEnvelope.decode(raw).election_id
    raise LedgerError("indexed ballot not found in its block")
