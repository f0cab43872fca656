"""Reference client for front ends (httpx): submit, follow the receipt, verify it.

Submission is idempotent at the gateway, so the client retries it freely on transport
errors, 429 (after Retry-After) and 503: a retry can never become a second ballot.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.receipt import Receipt

RETRY_STATUSES = frozenset({429, 503})


class ReceiptMismatch(LedgerError):
    code = "receipt_mismatch"


class GatewayProblem(Exception):
    """The gateway refused; ``code`` is the stable problem code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class GatewayClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0, retries: int = 5) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers={"Authorization": f"Bearer {api_key}"}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = 0.2
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if last:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                retry_after = response.headers.get("retry-after")
                time.sleep(float(retry_after) if retry_after and retry_after.isdigit() else delay)
                delay = min(delay * 2, 5.0)
                continue
            return response
        raise AssertionError("unreachable")

    @staticmethod
    def _ok(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
                raise GatewayProblem(response.status_code, str(body.get("code")), str(body.get("detail")))
            except ValueError:
                raise GatewayProblem(response.status_code, "unknown", response.text[:200]) from None
        return response.json()

    def submit(self, election_id: str, envelope: bytes) -> dict[str, Any]:
        """Returns ``{"tracking_code", "receipt_url"}`` once the gateway holds the ballot durably."""
        response = self._request("POST", f"/v1/elections/{election_id}/ballots", json={"ballot": envelope.hex()})
        result: dict[str, Any] = self._ok(response)
        return result

    def receipt(self, tracking_code: str) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self._request("GET", f"/v1/receipts/{tracking_code}"))
        return result

    def election(self, election_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self._request("GET", f"/v1/elections/{election_id}"))
        return result

    def wait_final(self, tracking_code: str, *, timeout: float = 60.0, poll: float = 0.25) -> Receipt:
        """Poll until the receipt is final; refusals after acceptance raise GatewayProblem."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.receipt(tracking_code)
            if answer["status"] == "final":
                return Receipt.from_json_obj(answer["receipt"])
            if answer["status"] == "rejected":
                err = answer.get("error") or {}
                raise GatewayProblem(200, str(err.get("code")), str(err.get("detail")))
            if time.monotonic() > deadline:
                raise TimeoutError(f"ballot {tracking_code} not final within {timeout} s")
            time.sleep(poll)


def verified_receipt(receipt: Receipt, genesis: Genesis, tracking_code: str) -> Receipt:
    """Check the receipt against the genesis (quorum-signed checkpoint, inclusion proof)
    and that it is for the ballot we sent."""
    if receipt.tracking_code.hex() != tracking_code:
        raise ReceiptMismatch(f"receipt is for {receipt.tracking_code.hex()}, not {tracking_code}")
    receipt.verify(genesis)
    return receipt
