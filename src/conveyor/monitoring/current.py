"""The "current" data of a drift check: the server's prediction log, or a table of inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import PredictionLogRecord, ServingStore

# Columns of the prediction log besides the model's inputs (written by conveyor.serving).
PREDICTION = "prediction"
REQUEST_ID = "request_id"
PREDICTED_AT = "predicted_at"
MODEL_VERSION = "model_version"
PROBA_PREFIX = "proba_"


def read_log(
    metadata: ServingStore,
    artifacts: AbstractArtifactStore,
    model_name: str,
    *,
    since: float | None = None,
    until: float | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """The logged rows of ``model_name`` predicted within ``[since, until]`` (all by default)."""
    import pandas as pd

    records: list[PredictionLogRecord] = metadata.list_prediction_logs(
        model_name, version=version, since=since, until=until
    )
    frames = [artifacts.get(r.digest, metadata.artifact_kind(r.digest)) for r in records]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    at = frame[PREDICTED_AT]
    keep = pd.Series(True, index=frame.index)
    if since is not None:
        keep &= at >= since
    if until is not None:
        keep &= at <= until
    kept: pd.DataFrame = frame[keep].reset_index(drop=True)
    return kept
