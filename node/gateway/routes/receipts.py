"""``GET /v1/receipts/{tracking_code}``: pending, final (with its proof) or rejected;
``GET /v1/ballots/{tracking_code}``: a recorded ballot's bytes.

Public: a voter checks their own receipt, and their encrypted ballot's proofs, without a
front end's key."""

# No "from __future__ import annotations": FastAPI inspects the route's signature.
from fastapi.responses import Response

from ledger.hashing import keccak256
from node.gateway.caching import IMMUTABLE, json_answer, tip
from node.gateway.deps import Reader, State, TrackingCode, new_router
from node.gateway.http_problems import responses
from node.gateway.models import ReceiptStatus, RecordedBallot
from node.gateway.problems import Problem
from node.gateway.upstream import UpstreamUnavailable
from verifier.rpc_client import RpcError

RECEIPT_CODES = ["unauthorized", "not_found", "validation_error", "rate_limited", "unavailable"]

router = new_router()


@router.get(
    "/v1/receipts/{tracking_code}",
    response_model=ReceiptStatus,
    responses=responses(RECEIPT_CODES),
    summary="A ballot's receipt: pending, final (with proof and checkpoint) or rejected",
)
async def get_receipt(tracking_code: TrackingCode, reader: Reader, state: State) -> Response:
    code = bytes.fromhex(tracking_code)
    record = state.outbox.record(code) if state.outbox is not None and state.outbox.is_open else None
    if record is not None and record.status == "rejected":
        return json_answer({"status": "rejected", "tracking_code": tracking_code,
                            "error": {"code": record.error_code, "detail": record.detail}}, tip(60))
    try:
        answer = await state.rpc().call("ballot_getReceipt", tracking_code)
    except (UpstreamUnavailable, RpcError) as exc:
        if record is not None:
            return json_answer({"status": "pending", "tracking_code": tracking_code}, "no-cache")
        raise Problem("unavailable", f"no validator answered: {exc}") from None
    if answer.get("status") == "final":
        return json_answer({"status": "final", "tracking_code": tracking_code, "receipt": answer["receipt"]}, tip(2))
    if record is not None or answer.get("status") == "pending":
        return json_answer({"status": "pending", "tracking_code": tracking_code}, "no-cache")
    raise Problem("not_found", f"no ballot with tracking code {tracking_code} is known")


@router.get(
    "/v1/ballots/{tracking_code}",
    response_model=RecordedBallot,
    responses=responses(RECEIPT_CODES),
    summary="A recorded ballot's canonical bytes, with its block height and log index",
)
async def get_ballot(tracking_code: TrackingCode, reader: Reader, state: State) -> Response:
    try:
        answer = await state.rpc().call("ballot_getBallot", tracking_code)
    except UpstreamUnavailable as exc:
        raise Problem("unavailable", f"no validator answered: {exc}") from None
    except RpcError as exc:
        raise Problem("not_found", exc.message) from None
    if not isinstance(answer, dict) or answer.get("status") != "final":
        raise Problem("not_found", f"no recorded ballot with tracking code {tracking_code}")
    try:
        raw = bytes.fromhex(answer["ballot"])
        view = RecordedBallot(tracking_code=tracking_code, height=int(answer["height"]),
                              log_index=int(answer["log_index"]), ballot=raw.hex())
    except (KeyError, TypeError, ValueError):
        raise Problem("unavailable", "a validator answered with a malformed ballot") from None
    if len(raw) > state.genesis.params.max_ballot_bytes or keccak256(raw).hex() != tracking_code:
        raise Problem("unavailable", "a validator answered with a ballot of another tracking code")
    return json_answer(view.model_dump(mode="json"), IMMUTABLE)
