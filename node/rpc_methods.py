"""The node's ``ballot_*`` JSON-RPC methods: the one interface the load generator, the
gateway, the verifier's export and the tests use.

The methods are called on the RPC's own loop (``node.rpc_thread``). Every method that
reads the store runs on the read worker (``node.read_pool``), and each does bounded
work: pages stop at a byte or code budget, results come from one tally that follows
the chain (``node.results``). Submissions are charged to the client's token bucket,
decoded from hex here, and admitted through the validator's ``node.admission``: their
costly checks in worker processes, the rest on the consensus loop (they feed the
mempool) a few milliseconds at a time, so that a large batch never holds that loop for
long. A ballot is answered once it is admitted or refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ledger.ballot import BallotEnvelope
from ledger.block import Block
from ledger.chain import Chain
from ledger.elections import Elections
from ledger.errors import BadTreeRange, LedgerError
from ledger.hashing import HASH_SIZE, keccak256
from ledger.receipt import Receipt
from node.admission import BallotAdmission
from node.config import RpcLimits
from node.jsonrpc import InvalidParams, Method, current_client, hex_param, int_param
from node.mempool import Admission, Mempool
from node.read_pool import ReadPool
from node.results import ResultsIndex
from node.rpc_limits import ClientBuckets, LimitExceeded
from node.rpc_thread import ConsensusLoop

MAX_BLOCKS_PAGE = 500
MAX_SUBMIT_BATCH = 5000
RESULTS_WAIT_S = 10.0  # how long a call waits for the tally to reach its height
T = TypeVar("T")


class NodeState(Protocol):
    """What the RPC needs from a running validator."""

    chain: Chain
    mempool: Mempool
    admission: BallotAdmission

    def status(self) -> dict[str, Any]: ...

    def gossip_ballots(self, raws: list[bytes]) -> None: ...

    def tip_elections(self) -> Elections: ...


class BallotMethods:
    def __init__(
        self,
        node: NodeState,
        clock_ms: Callable[[], int] | None = None,
        *,
        limits: RpcLimits | None = None,
        pool: ReadPool | None = None,
        submissions: ClientBuckets | None = None,
        consensus: ConsensusLoop | None = None,
    ) -> None:
        self.node = node
        self.consensus = consensus or ConsensusLoop()
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.limits = limits or RpcLimits()
        self.pool = pool or ReadPool(max_queued=self.limits.read_queue,
                                     max_per_client=self.limits.read_queue_per_client, share=self.limits.read_share)
        self.submissions = submissions or ClientBuckets(
            self.limits.submit_rate, self.limits.submit_burst, exempt=self.limits.submit_exempt)
        self.results = ResultsIndex(node.chain.genesis, node.chain.store.block, node.chain.definitions)
        self._genesis_obj = node.chain.genesis.to_json_obj()

    def table(self) -> dict[str, Method]:
        return {
            "ballot_submit": self.submit,
            "ballot_submitBatch": self.submit_batch,
            "ballot_getReceipt": self.get_receipt,
            "ballot_getBallot": self.get_ballot,
            "ballot_status": self.status,
            "ballot_getBlocks": self.get_blocks,
            "ballot_getTrackingCodes": self.get_tracking_codes,
            "ballot_getGenesis": self.get_genesis,
            "ballot_getElections": self.get_elections,
            "ballot_getCheckpoint": self.get_checkpoint,
            "ballot_getValidators": self.get_validators,
            "ballot_getInclusionProof": self.get_inclusion_proof,
            "ballot_getConsistencyProof": self.get_consistency_proof,
            "ballot_getResults": self.get_results,
        }

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.pool.run(current_client.get(), lambda: fn(*args))

    # --- submissions (admitted through node.admission: they feed the mempool) --------
    async def submit(self, ballot: str) -> dict[str, Any]:
        """Admit one ballot (hex of its canonical encoding); answers its tracking code."""
        raw = hex_param(ballot, "ballot", max_size=self.node.chain.genesis.params.max_ballot_bytes)
        self.submissions.take(current_client.get(), 1, time.monotonic(), "ballots")
        (answer,) = await self.consensus.run(self._admit, [raw])
        if isinstance(answer, LedgerError):
            raise answer
        return _answer(answer)

    async def submit_batch(self, ballots: list[str]) -> list[dict[str, Any]]:
        """Admit many ballots; one answer each, in order (a refusal does not stop the rest)."""
        if not isinstance(ballots, list) or len(ballots) > MAX_SUBMIT_BATCH:
            raise InvalidParams(f"ballots must be a list of at most {MAX_SUBMIT_BATCH} hex strings")
        self.submissions.take(current_client.get(), len(ballots), time.monotonic(), "ballots")
        limit = self.node.chain.genesis.params.max_ballot_bytes
        decoded: list[bytes | LedgerError] = []
        for i, b in enumerate(ballots):
            try:
                decoded.append(hex_param(b, f"ballots[{i}]", max_size=limit))
            except LedgerError as exc:
                decoded.append(exc)
        answers = await self.consensus.run(self._admit, decoded)
        return [
            {"error": {"code": a.code, "message": a.message}} if isinstance(a, LedgerError) else _answer(a)
            for a in answers
        ]

    async def _admit(self, decoded: list[bytes | LedgerError]) -> list[Admission | LedgerError]:
        """On the consensus loop: admit, gossiping what is pending as it goes."""
        return await self.node.admission.admit(decoded, on_pending=self.node.gossip_ballots)

    # --- cheap answers (on the loop) ---------------------------------------------------
    async def status(self) -> dict[str, Any]:
        return await self.consensus.run(self._status)

    async def _status(self) -> dict[str, Any]:
        return self.node.status()

    async def get_genesis(self) -> dict[str, Any]:
        return self._genesis_obj

    async def get_elections(self) -> dict[str, Any]:
        """Every election defined on the committed state: its canonical definition (hex;
        ``ElectionDef.decode``) and its registry phase, in definition order."""
        return await self.consensus.run(self._elections)

    async def _elections(self) -> dict[str, Any]:
        elections = self.node.tip_elections()
        return {
            "height": self.node.chain.store.height,
            "elections": [{"definition": e.encode().hex(), "phase": elections.phase(e.election_id)}
                          for e in elections],
        }

    # --- reads (on the read worker) ----------------------------------------------------
    async def get_receipt(self, tracking_code: str) -> dict[str, Any]:
        code = hex_param(tracking_code, "tracking_code", size=HASH_SIZE)
        return await self._read(self._receipt, code)

    def _position(self, code: bytes) -> tuple[int, int] | dict[str, Any]:
        """(log index, height) of a recorded ballot, or the answer for one in no block yet:
        ``pending`` (in the mempool) or ``unknown``."""
        position = self.node.chain.store.ballot_position(code)
        if position is not None:
            return position
        return {"status": "pending" if self.node.mempool.is_pending(code) else "unknown", "tracking_code": code.hex()}

    def _receipt(self, code: bytes) -> dict[str, Any]:
        store = self.node.chain.store
        found = self._position(code)
        if isinstance(found, dict):
            return found
        index, height = found
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

    async def get_ballot(self, tracking_code: str) -> dict[str, Any]:
        """A recorded ballot's canonical bytes (hex) by its tracking code, with its height
        and log index: what a voter's page checks an encrypted ballot's proofs from. One
        ballot, at most ``max_ballot_bytes``; a ballot not (yet) in a block is ``unknown``
        or ``pending``, as for receipts."""
        code = hex_param(tracking_code, "tracking_code", size=HASH_SIZE)
        return await self._read(self._ballot, code)

    def _ballot(self, code: bytes) -> dict[str, Any]:
        found = self._position(code)
        if isinstance(found, dict):
            return found
        index, height = found
        raw = _ballot_in(self.node.chain.store.block(height), index, code)
        return {"status": "final", "tracking_code": code.hex(), "height": height, "log_index": index,
                "ballot": raw.hex()}

    async def get_blocks(self, start: int, limit: int = 100) -> dict[str, Any]:
        """Committed blocks from ``start`` with their certificates: at most ``limit``, and
        fewer once the page holds ``max_page_bytes`` (never none while any is left)."""
        start = int_param(start, "start", minimum=1)
        limit = int_param(limit, "limit", minimum=1, maximum=MAX_BLOCKS_PAGE)
        return await self._read(self._blocks, start, limit)

    def _blocks(self, start: int, limit: int) -> dict[str, Any]:
        store = self.node.chain.store
        tip = store.height
        blocks: list[dict[str, Any]] = []
        size = 0
        for h in range(start, min(tip, start + limit - 1) + 1):
            block, certificate = store.raw_block(h), store.raw_certificate(h)
            size += len(block) + len(certificate)
            if blocks and size > self.limits.max_page_bytes:
                break
            blocks.append({"block": block.hex(), "certificate": certificate.hex()})
        return {"tip": tip, "start": start, "blocks": blocks}

    async def get_tracking_codes(self, start: int, limit: int = 100) -> dict[str, Any]:
        """Committed blocks from ``start`` as height, time and their ballots' tracking codes
        (one hex string, 64 characters a code, in log order): what a follower needs to
        see its ballots become final, at a twentieth of the bytes of the blocks. At most
        ``limit`` blocks, fewer once the page holds ``max_page_codes`` codes."""
        start = int_param(start, "start", minimum=1)
        limit = int_param(limit, "limit", minimum=1, maximum=MAX_BLOCKS_PAGE)
        return await self._read(self._tracking_codes, start, limit)

    def _tracking_codes(self, start: int, limit: int) -> dict[str, Any]:
        store = self.node.chain.store
        tip = store.height
        blocks: list[dict[str, Any]] = []
        codes_so_far = 0
        for h in range(start, min(tip, start + limit - 1) + 1):
            block = store.block(h)
            codes_so_far += len(block.ballots)
            if blocks and codes_so_far > self.limits.max_page_codes:
                break
            codes = b"".join([keccak256(raw) for raw in block.ballots])
            blocks.append({"height": h, "time_ms": block.header.time_ms, "codes": codes.hex()})
        return {"tip": tip, "start": start, "blocks": blocks}

    async def get_checkpoint(self, height: int | None = None) -> dict[str, Any]:
        h = None if height is None else int_param(height, "height", minimum=1)
        return await self._read(self._checkpoint, h)

    def _checkpoint(self, height: int | None) -> dict[str, Any]:
        cp = self.node.chain.store.checkpoint(height)
        return {
            "height": cp.header.height,
            "log_size": cp.header.log_size,
            "log_root": cp.header.log_root.hex(),
            "checkpoint": cp.encode().hex(),
        }

    async def get_validators(self, height: int | None = None) -> dict[str, Any]:
        """The validator set in force at ``height`` (default: the next block's), known up
        to two heights past the tip (ledger.validators); a node's word, which the
        verifier checks against the chain it replays."""
        h = None if height is None else int_param(height, "height", minimum=1)
        return await self._read(self._validators, h)

    def _validators(self, height: int | None) -> dict[str, Any]:
        chain = self.node.chain
        h = chain.store.height + 1 if height is None else height
        in_force = chain.validators_at(h)
        return {
            "height": h,
            "validator_set_hash": in_force.hash().hex(),
            "validators": [{"name": v.name, "public_key": v.public_key.hex(), "power": v.power}
                           for v in in_force.validators],
        }

    async def get_inclusion_proof(self, index: int, size: int) -> list[str]:
        index = int_param(index, "index")
        size = int_param(size, "size", minimum=1)
        if index >= size:
            raise BadTreeRange(f"index {index} is not below size {size}")
        proof = await self._read(self.node.chain.store.inclusion_proof, index, size)
        return [h.hex() for h in proof]

    async def get_consistency_proof(self, old_size: int, new_size: int) -> list[str]:
        old_size = int_param(old_size, "old_size")
        new_size = int_param(new_size, "new_size")
        if old_size > new_size:
            raise BadTreeRange(f"old size {old_size} is larger than new size {new_size}")
        proof = await self._read(self.node.chain.store.consistency_proof, old_size, new_size)
        return [h.hex() for h in proof]

    async def get_results(self, height: int | None = None) -> dict[str, Any]:
        """The count at ``height`` (default: the tip), from the committed ballots.

        The tally is extended a slice at a time, each slice one turn of the read worker,
        so a long catch-up (a restarted node, a first call on a long chain) shares the
        worker with other clients; a call still short of its height after
        ``RESULTS_WAIT_S`` is answered ``results_pending`` and the count kept so far."""
        store = self.node.chain.store
        h = store.height if height is None else int_param(height, "height", maximum=store.height)
        deadline = time.monotonic() + RESULTS_WAIT_S
        while True:
            counted, results = await self._read(self._count_to, h)
            if results is not None:
                return results
            if time.monotonic() > deadline:
                raise ResultsPending(f"results are counted up to height {counted} of {h}; retry shortly",
                                     retry_after_ms=1000)

    def _count_to(self, height: int) -> tuple[int, dict[str, Any] | None]:
        counted = self.results.extend(height, self.limits.results_slice_ballots)
        return counted, self.results.at(height) if counted >= height else None


def _answer(admission: Admission) -> dict[str, Any]:
    return {"tracking_code": admission.tracking_code.hex(), "status": admission.status}


class ResultsPending(LimitExceeded):
    code = "results_pending"


def _ballot_in(block: Block, index: int, code: bytes) -> bytes:
    """The ballot at log ``index`` of ``block`` (its ballots are the log's last leaves
    after it), found by its place and confirmed by its hash."""
    ballots = block.ballots
    place = index - (block.header.log_size - len(ballots))
    if 0 <= place < len(ballots) and keccak256(ballots[place]) == code:
        return ballots[place]
    for raw in ballots:  # not where the log says: an indexing fault, answered all the same
        if keccak256(raw) == code:
            return raw
    raise LedgerError("indexed ballot not found in its block")


def _election_of(ballots: tuple[bytes, ...], code: bytes) -> str:
    for raw in ballots:
        if keccak256(raw) == code:
            return BallotEnvelope.decode(raw).election_id
    raise LedgerError("indexed ballot not found in its block")
