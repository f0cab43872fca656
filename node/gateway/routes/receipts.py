"""``GET /v1/receipts/{tracking_code}``: pending, final (with its proof) or rejected.

Public: a voter checks their own receipt without a front end's key."""

# No "from __future__ import annotations": FastAPI inspects the route's signature.
from fastapi.responses import Response

from node.gateway.caching import json_answer, tip
from node.gateway.deps import Reader, State, TrackingCode, new_router
from node.gateway.http_problems import responses
from node.gateway.models import ReceiptStatus
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
