"""Request dependencies: the server's state and the API-key check."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from conveyor.serving.auth import PREDICT, AuthResult, token_from_headers
from conveyor.serving.errors import ApiError

if TYPE_CHECKING:
    from conveyor.serving.app import ServeSettings
    from conveyor.serving.auth import KeyCheckerProtocol
    from conveyor.serving.batcher import MicroBatcher
    from conveyor.serving.metrics import ServerMetrics
    from conveyor.serving.model import ModelWatcher
    from conveyor.serving.predlog import AbstractPredictionLog
    from conveyor.serving.supervisor import Supervised

log = logging.getLogger("conveyor.serving")

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token.")


@dataclass(slots=True)
class ServingState:
    """Everything a request handler needs, built by the app factory."""

    settings: ServeSettings
    watcher: ModelWatcher
    metrics: ServerMetrics
    keys: KeyCheckerProtocol | None  # None when auth is off
    batcher: MicroBatcher | None = None  # started with the event loop
    predlog: AbstractPredictionLog | None = None
    tasks: list[Supervised] = field(default_factory=list)  # background work
    # Large JSON bodies are parsed in worker threads, two at a time: parsing holds the GIL, so
    # more threads would add memory (a parsed body is ~10x its bytes), not throughput.
    parsers: CapacityLimiter = field(default_factory=lambda: CapacityLimiter(2))


async def get_state(request: Request) -> ServingState:
    """The server's state (``async``: FastAPI would run a plain ``def`` in its thread pool)."""
    state: ServingState = request.app.state.conveyor
    return state


State = Annotated[ServingState, Depends(get_state)]


async def authenticate(
    request: Request,
    state: State,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> str | None:
    """The name of the key that authorised the request (None with auth off).

    Every secured route of the model server needs the ``predict`` scope: a UI key (``read``,
    ``admin``) cannot score or read the model's metadata here.

    Raises:
        ApiError: 401 without a key or with a wrong one, 403 for a revoked key or one without
            the ``predict`` scope. Failures are counted by reason; the key is never logged.
    """
    if state.keys is None:
        return None
    authorization = (
        f"Bearer {credentials.credentials}" if credentials is not None else None
    ) or request.headers.get("authorization")
    result, name = state.keys.check(token_from_headers(authorization, api_key), scope=PREDICT)
    if result is AuthResult.OK:
        return name
    state.metrics.auth_failures.labels(result.value).inc()
    client = request.client.host if request.client else "?"
    log.warning("auth %s from %s for %s (key %s)", result.value, client, request.url.path, name)
    if result is AuthResult.REVOKED:
        raise ApiError(403, "key_revoked", "this API key was revoked")
    if result is AuthResult.SCOPE:
        raise ApiError(
            403,
            "missing_scope",
            f"this API key lacks the {PREDICT!r} scope; the model server needs a key made with "
            f"'conveyor keys create --name NAME --scope {PREDICT}'",
        )
    challenge = {"WWW-Authenticate": "Bearer"}
    if result is AuthResult.MISSING:
        raise ApiError(
            401,
            "unauthenticated",
            "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers=challenge,
        )
    raise ApiError(401, "invalid_key", "the API key is not valid", headers=challenge)
