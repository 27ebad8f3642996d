"""Response bodies as pydantic models: they document the API in OpenAPI (request bodies are
generated per model version, see :mod:`conveyor.serving.contract`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Label = str | int | float | bool


class FieldError(BaseModel):
    """One problem with one field of the request."""

    loc: list[str | int] = Field(description="Where: e.g. ['records', 3, 'continent'].")
    msg: str


class ErrorBody(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable code, e.g. invalid_input.")
    message: str
    request_id: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer."""

    error: ErrorBody


class ModelRef(BaseModel):
    """A model version."""

    name: str
    version: int


class PredictResponse(BaseModel):
    """Predictions for the records sent, in order."""

    request_id: str
    model: ModelRef
    predictions: list[Label]
    probabilities: list[dict[str, float]] | None = Field(
        None, description="Per record, the probability of each class (classifiers only)."
    )


class Health(BaseModel):
    """Liveness."""

    status: str


class TaskHealth(BaseModel):
    """A background task of the server."""

    ok: bool = Field(description="Its last run succeeded.")
    stale: bool = Field(description="No successful run for ten polls (makes /ready 503).")
    failures: int
    error: str | None = Field(None, description="The last run's error, if it failed.")


class Ready(BaseModel):
    """Readiness: the model is loaded and its artifact hash verified; background tasks run."""

    status: str = Field(description="ready, or failing (503) when a background task is stale.")
    model: str
    version: int
    swap_error: str | None = Field(None, description="Why the alias's version is not served.")
    tasks: dict[str, TaskHealth] = Field(default_factory=dict)


class ModelInfo(BaseModel):
    """The model being served and where it came from."""

    name: str
    version: int
    serving: str = Field(description="The reference the server follows, e.g. NAME@production.")
    status: str
    digest: str
    signature: dict[str, Any]
    metrics: dict[str, float]
    dataset: str | None
    run_id: str | None
    git_commit: str | None
    registered_at: float
    loaded_since: float
    swap_error: str | None = Field(None, description="Why the last alias move was not followed.")
