"""Problems over HTTP: the FastAPI side of :mod:`node.gateway.problems`. Every refusal
is rendered as ``application/problem+json``, and the OpenAPI document says so."""

# No "from __future__ import annotations": FastAPI inspects the handlers' signatures.
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from node.gateway.models import ProblemDetail
from node.gateway.problems import PROBLEM_MEDIA_TYPE, Problem, status_of

log = logging.getLogger(__name__)


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def responses(codes: list[str]) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI ``responses`` for the problem codes it can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        status = status_of(code)
        entry = out.setdefault(status, {"description": "", "model": ProblemDetail})
        entry["description"] = ", ".join(filter(None, [entry["description"], f"`{code}`"]))
        if code == "rate_limited":
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
        if code == "unauthorized":
            entry["headers"] = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
    return out


def install_handlers(app: FastAPI) -> None:
    """Render every exception a request can end in as a problem."""

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()[:5]
        )
        return problem_response(Problem("validation_error", details or "invalid request"), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code)
        if code is None:
            code = "validation_error" if 400 <= exc.status_code < 500 else "internal_error"
        headers = dict(exc.headers or {})
        return problem_response(Problem(code, str(exc.detail), status=exc.status_code, headers=headers),
                                request.url.path)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(Problem("internal_error", "internal error"), request.url.path)


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the document say what the server does: every 4xx/5xx is problem+json (FastAPI
    would advertise application/json and its own 422 shape)."""
    ref = {"$ref": "#/components/schemas/Problem"}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = ProblemDetail.model_json_schema(ref_template="#/components/schemas/{model}")
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                if str(status)[0] in "45":
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": ref}}
                    if str(status) == "422" and response.get("description") == "Validation Error":
                        response["description"] = "`validation_error`"
    for name in ("HTTPValidationError", "ValidationError", "ProblemDetail"):
        components.pop(name, None)
    copied: dict[str, Any] = json.loads(json.dumps(schema))
    return copied
