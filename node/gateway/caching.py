"""Answers of public reads with the caching they allow.

What a height or a pair of tree sizes names never changes (a committed checkpoint, a
consistency proof, the genesis), so those answers may be kept by any cache; what follows
the tip (the latest checkpoint, a receipt, an election's counts) for a second or two.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

IMMUTABLE = "public, max-age=31536000, immutable"
GENESIS = "public, max-age=300"  # the file itself never changes; a short age lets a wrong deployment be fixed


def tip(seconds: int) -> str:
    return f"public, max-age={seconds}"


def json_answer(body: Any, cache_control: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={"Cache-Control": cache_control})
