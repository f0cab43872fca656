"""Public reads for voters and observers: the chain's genesis and validator set, signed
checkpoints, consistency proofs between two log sizes, and the recent blocks.

Nothing here needs a key (``Reader``: keyless reads are rate-limited per client
address) and nothing here needs to be trusted: a client checks a checkpoint's quorum
signatures against the validator set of a genesis whose hash it compares with the one
the election commission published, and a consistency proof against two checkpoints.
"""

# No "from __future__ import annotations": FastAPI inspects the routes' signatures.
import json
import time
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response

from ledger.block import Block, Checkpoint, CommitCertificate
from ledger.errors import LedgerError
from node.gateway.caching import GENESIS, IMMUTABLE, json_answer, tip
from node.gateway.deps import Reader, State, new_router
from node.gateway.http_problems import responses
from node.gateway.models import (
    BlockSummary,
    ChainView,
    CheckpointView,
    ConsistencyView,
    RecentBlocks,
    ValidatorActivity,
    ValidatorView,
)
from node.gateway.problems import Problem
from node.gateway.state import GatewayState
from node.gateway.upstream import UpstreamUnavailable
from verifier.rpc_client import RpcError

READ_CODES = ["unauthorized", "validation_error", "rate_limited", "unavailable"]
MAX_RECENT = 20  # blocks the observer view shows
RECENT_TTL_S = 1.0  # one look at the recent blocks per second, whatever the number of observers
MAX_RECENT_PAGES = 4  # block pages stop at a byte budget: at most this many calls to fill one view
MAX_SIZE = 2**63

router = new_router()


async def _call(state: GatewayState, method: str, *params: Any) -> Any:
    try:
        return await state.rpc().call(method, *params)
    except UpstreamUnavailable as exc:
        raise Problem("unavailable", f"no validator answered: {exc}") from None
    except RpcError as exc:
        raise Problem("not_found", exc.message) from None


@router.get(
    "/v1/chain",
    response_model=ChainView,
    responses=responses(["unauthorized", "rate_limited"]),
    summary="The genesis, its hash and the validator set",
)
async def get_chain(reader: Reader, state: State) -> Response:
    if state.chain_view is None:  # the genesis never changes: rendered once (a genesis may be tens of MB)
        genesis = state.genesis
        validators = genesis.validators
        view = ChainView(
            chain_id=genesis.chain_id, genesis_hash=genesis.hash().hex(), validator_set_hash=validators.hash().hex(),
            validators=[ValidatorView(index=i, name=v.name, public_key=v.public_key.hex(), power=v.power)
                        for i, v in enumerate(validators.validators)],
            genesis=genesis.to_json_obj(),
        )
        state.chain_view = json.dumps(view.model_dump(mode="json"), separators=(",", ":")).encode()
    return Response(state.chain_view, media_type="application/json", headers={"Cache-Control": GENESIS})


@router.get(
    "/v1/checkpoint",
    response_model=CheckpointView,
    responses=responses([*READ_CODES, "not_found"]),
    summary="A quorum-signed checkpoint: the latest, or the one of a committed height",
)
async def get_checkpoint(
    reader: Reader, state: State, height: Annotated[int | None, Query(ge=1, le=MAX_SIZE)] = None
) -> Response:
    answer = await _call(state, "ballot_getCheckpoint", *([] if height is None else [height]))
    try:
        checkpoint = Checkpoint.decode(bytes.fromhex(answer["checkpoint"]))
    except (LedgerError, ValueError, KeyError, TypeError):
        raise Problem("unavailable", "a validator answered with a malformed checkpoint") from None
    header = checkpoint.header
    view = CheckpointView(height=header.height, time_ms=header.time_ms, log_size=header.log_size,
                          log_root=header.log_root.hex(), block_hash=header.hash().hex(),
                          checkpoint=checkpoint.encode().hex())
    return json_answer(view.model_dump(mode="json"), tip(1) if height is None else IMMUTABLE)


@router.get(
    "/v1/consistency",
    response_model=ConsistencyView,
    responses=responses([*READ_CODES, "not_found"]),
    summary="An RFC 9162 consistency proof between two sizes of the ballot log",
)
async def get_consistency(
    reader: Reader, state: State,
    old_size: Annotated[int, Query(ge=0, le=MAX_SIZE)], new_size: Annotated[int, Query(ge=0, le=MAX_SIZE)],
) -> Response:
    if old_size > new_size:
        raise Problem("validation_error", f"old_size {old_size} is larger than new_size {new_size}")
    proof = await _call(state, "ballot_getConsistencyProof", old_size, new_size)
    if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
        raise Problem("unavailable", "a validator answered with a malformed proof")
    view = ConsistencyView(old_size=old_size, new_size=new_size, proof=proof)
    return json_answer(view.model_dump(mode="json"), IMMUTABLE)


@router.get(
    "/v1/blocks/recent",
    response_model=RecentBlocks,
    responses=responses(READ_CODES),
    summary="The most recent blocks and the last of them each validator signed",
)
async def recent_blocks(
    reader: Reader, state: State, limit: Annotated[int, Query(ge=1, le=MAX_RECENT)] = 10
) -> Response:
    now = time.monotonic()
    if state.recent_blocks is None or now - state.recent_blocks[0] > RECENT_TTL_S:
        state.recent_blocks = (now, await _recent(state))
    view = dict(state.recent_blocks[1])
    view["blocks"] = view["blocks"][:limit]
    return json_answer(view, tip(1))


async def _recent(state: GatewayState) -> dict[str, Any]:
    status = await _call(state, "ballot_status")
    height = int(status.get("height", 0))
    validators = state.genesis.validators.validators
    blocks: list[BlockSummary] = []
    start = max(1, height - MAX_RECENT + 1)
    for _ in range(MAX_RECENT_PAGES):
        if start > height:
            break
        page = await _call(state, "ballot_getBlocks", start, height - start + 1)
        rows = page.get("blocks", []) if isinstance(page, dict) else []
        if not rows:
            break
        for row in rows:
            blocks.append(_summary(row, validators))
        start = blocks[-1].height + 1
    blocks.reverse()
    last_signed: dict[int, int] = {}
    for block in blocks:
        for index in block.signers:
            last_signed.setdefault(index, block.height)
    activity = [ValidatorActivity(index=i, name=v.name, last_signed_height=last_signed.get(i))
                for i, v in enumerate(validators)]
    return RecentBlocks(height=height, blocks=blocks, validators=activity).model_dump(mode="json")


def _summary(row: Any, validators: Any) -> BlockSummary:
    try:
        block = Block.decode(bytes.fromhex(row["block"]))
        certificate = CommitCertificate.decode(bytes.fromhex(row["certificate"]))
    except (LedgerError, ValueError, KeyError, TypeError):
        raise Problem("unavailable", "a validator answered with a malformed block") from None
    header = block.header
    names = {v.public_key: v.name for v in validators}
    return BlockSummary(
        height=header.height, time_ms=header.time_ms, block_hash=header.hash().hex(),
        proposer=names.get(header.proposer, header.proposer.hex()), ballots=len(block.ballots),
        transactions=len(block.transactions), log_size=header.log_size,
        signers=[s.validator_index for s in certificate.signatures], round=certificate.round,
    )
