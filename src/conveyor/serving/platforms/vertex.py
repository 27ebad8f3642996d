"""Vertex AI (custom container): health at ``$AIP_HEALTH_ROUTE``, predictions at
``$AIP_PREDICT_ROUTE``, on ``$AIP_HTTP_PORT`` (8080); the routes are read from the environment,
never assumed (``/health`` and ``/predict`` when run outside Vertex).

A request is ``{"instances": [...], "parameters": {...}}`` (an instance is an object or a list
of values in the signature's column order; this model takes no parameters) and the answer
``{"predictions": [...]}``, one per instance. Requests are capped at 1.5 MB. Errors are
``{"error": "..."}`` naming the instance and field (``instances.3.continent``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from conveyor.serving.deps import State  # noqa: TC001 - FastAPI reads annotations at runtime
from conveyor.serving.errors import REQUEST_ID_HEADER, ApiError, request_id, safe_text
from conveyor.serving.platforms import MB, PlatformSpec, env_port
from conveyor.serving.platforms._core import (
    JSON,
    as_records,
    is_ready,
    load_body,
    media_type,
    predict_records,
    prediction_items,
)
from conveyor.serving.routes._json import read_body

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.serving.contract import InputContract

PORT = 8080
LIMIT = int(1.5 * MB)
HEALTH, PREDICT = "/health", "/predict"


def spec(env: Mapping[str, str]) -> PlatformSpec:
    """Vertex AI's contract in the environment ``env``.

    Raises:
        ValueError: a route variable that is not a path (``/...``), or a bad port.
    """
    health_route = _route(env, "AIP_HEALTH_ROUTE", HEALTH)
    predict_route = _route(env, "AIP_PREDICT_ROUTE", PREDICT)
    router = APIRouter(tags=["vertex"])

    async def health(state: State) -> Response:
        ok = is_ready(state)
        return JSONResponse(
            {"status": "ready" if ok else "failing"}, status_code=200 if ok else 503
        )

    async def predict(request: Request, state: State) -> Response:
        rid = request_id(request)
        try:
            content = await _predict(request, state, rid)
        except ApiError as exc:
            return JSONResponse(
                {"error": safe_text(exc.message, limit=None, keep="\n")},
                status_code=exc.status,
                headers={REQUEST_ID_HEADER: rid, **exc.headers},
            )
        return Response(content, media_type=JSON, headers={REQUEST_ID_HEADER: rid})

    router.add_api_route(health_route, health, methods=["GET"], summary="Vertex AI health")
    router.add_api_route(predict_route, predict, methods=["POST"], summary="Vertex AI predict")
    return PlatformSpec(
        name="vertex",
        port=env_port(env, "AIP_HTTP_PORT", PORT),
        max_body_bytes=LIMIT,
        router=router,
        routes=(health_route, predict_route),
        health=health_route,
    )


async def _predict(request: Request, state: Any, rid: str) -> bytes:
    given = media_type(request)
    if given and given != JSON and not given.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the instances as application/json")
    body = await read_body(request, LIMIT)
    instances = _instances(body, state.watcher.current.contract)
    _, predictions = await predict_records(state, instances, rid, name="instances")
    return json.dumps(
        {"predictions": prediction_items(predictions)}, separators=(",", ":")
    ).encode()


def _instances(body: bytes, contract: InputContract) -> list[Any]:
    """The records of ``{"instances": [...], "parameters": {...}}``.

    Raises:
        ApiError: 400 not JSON; 422 another shape, or parameters (this model takes none).
    """
    payload = load_body(body, contract, expected='{"instances": [...]}')
    if not isinstance(payload, dict) or "instances" not in payload:
        raise ApiError(422, "invalid_input", 'expected {"instances": [...], "parameters": {...}}')
    unknown = sorted(set(payload) - {"instances", "parameters"})
    if unknown:
        raise ApiError(
            422,
            "invalid_input",
            f"unknown field {safe_text(unknown[0])!r}: expected instances and parameters",
        )
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict) or parameters:
        names = (
            ", ".join(safe_text(str(k)) for k in parameters) if isinstance(parameters, dict) else ""
        )
        raise ApiError(
            422,
            "invalid_input",
            f"parameters: this model takes none (got {names or 'a non-object'})",
        )
    return as_records(payload["instances"], contract, name="instances")


def _route(env: Mapping[str, str], variable: str, default: str) -> str:
    value = env.get(variable, "").strip() or default
    if not value.startswith("/"):
        raise ValueError(f"${variable}={value!r} is not a route (it must start with /)")
    return value
