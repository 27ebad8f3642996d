"""One monitoring check: the served model's reference profile vs current data -> drift (and,
with labels, performance) -> report artifacts linked to the model version -> alerts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError, DataValidationError
from conveyor.monitoring.alerts import Alert, dispatch
from conveyor.monitoring.current import PREDICTION, PROBA_PREFIX, REQUEST_ID, read_log
from conveyor.monitoring.drift import DriftResult, DriftSettings, detect
from conveyor.monitoring.profile import PROBABILITY, ReferenceProfile
from conveyor.monitoring.report import build_report
from conveyor.registry import versions

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.monitoring.alerts import Channel
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ModelVersionRecord, SqlMetadataStore

PROFILE_TAG = "reference_profile"


@dataclass
class CheckResult:
    """What one check found and where its report is."""

    model: ModelVersionRecord
    drift: DriftResult
    source: str
    report: dict[str, Any]
    html: bytes
    report_digest: str
    html_digest: str
    performance: dict[str, Any] | None = None
    alerts: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.model.name}:{self.model.version}"


def reference_profile(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore, record: ModelVersionRecord
) -> ReferenceProfile:
    """The profile saved with a model version at training time.

    Raises:
        ConfigError: the version has none (trained before profiles existed, or outside the
            train line): retrain it.
    """
    digest = record.tags.get(PROFILE_TAG)
    if not digest:
        raise ConfigError(
            f"{record.name}:{record.version} has no reference profile (registered before "
            "conveyor saved one, or outside the train line): retrain it with `conveyor run`"
        )
    return ReferenceProfile.from_dict(artifacts.get(digest, metadata.artifact_kind(digest)))


def outputs_of(frame: pd.DataFrame, positive: Any) -> pd.DataFrame | None:
    """The ``prediction`` and positive-class ``probability`` columns of logged or scored rows."""
    import pandas as pd

    if PREDICTION not in frame.columns:
        return None
    out = pd.DataFrame({PREDICTION: frame[PREDICTION].astype(str)})
    proba = f"{PROBA_PREFIX}{positive}"
    if proba in frame.columns:
        out[PROBABILITY] = frame[proba].astype("float64")
    return out


def score(model: Any, features: pd.DataFrame) -> pd.DataFrame:
    """Predictions and class probabilities for rows that were not served (the columns the
    server's log has)."""
    import pandas as pd

    out = pd.DataFrame({PREDICTION: pd.Series(model.predict(features)).astype(str)})
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        proba = model.predict_proba(features)
        for i, cls in enumerate(model.classes_):
            out[f"{PROBA_PREFIX}{cls}"] = proba[:, i]
    return out


def performance(
    record: ModelVersionRecord,
    current: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    key: str,
    target: str,
    positive: Any,
) -> dict[str, Any]:
    """The training metrics recomputed on labelled current rows, next to the test metrics.

    ``labels`` holds ``key`` (an id column of the inputs, or ``request_id``) and ``target``.

    Raises:
        DataValidationError: a column is missing or no labelled row matches.
    """
    from conveyor.evaluation.metrics import classification_metrics, regression_metrics

    for frame, name, cols in ((labels, "labels", (key, target)), (current, "current", (key,))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataValidationError(f"{name}: missing column(s) {', '.join(missing)}")
    joined = current.merge(labels[[key, target]], on=key, how="inner", suffixes=("", "_label"))
    truth = f"{target}_label" if f"{target}_label" in joined.columns else target
    if joined.empty:
        raise DataValidationError(f"labels: no row matches a current row on {key!r}")
    task = (record.signature or {}).get("task", "classification")
    if task == "regression":
        scores = regression_metrics(joined[truth], joined[PREDICTION].astype("float64"))
    else:
        proba_cols = [c for c in joined.columns if c.startswith(PROBA_PREFIX)]
        classes = [c.removeprefix(PROBA_PREFIX) for c in proba_cols]
        y_true = joined[truth].astype(str)
        proba = joined[proba_cols].to_numpy() if len(classes) >= 2 else None
        scores = classification_metrics(
            y_true,
            joined[PREDICTION].astype(str),
            proba,
            classes=classes or sorted(set(y_true)),
            positive=str(positive) if positive is not None else None,
        )
    rows = [
        {
            "name": name,
            "training": record.metrics.get(name),
            "current": value,
            "change": None if record.metrics.get(name) is None else value - record.metrics[name],
        }
        for name, value in scores.items()
    ]
    return {"rows": len(joined), "key": key, "metrics": rows}


def check(
    metadata: SqlMetadataStore,
    artifacts: AbstractArtifactStore,
    model_ref: str,
    *,
    current: pd.DataFrame | None = None,
    source: str | None = None,
    window_seconds: float = 86_400.0,
    settings: DriftSettings | None = None,
    labels: pd.DataFrame | None = None,
    label_key: str | None = None,
    target: str | None = None,
    channels: list[Channel] | None = None,
    alert_cooldown_seconds: float = 3600.0,
    now: float | None = None,
) -> CheckResult:
    """Run one check of ``model_ref`` (``NAME@ALIAS`` or ``NAME:VER``).

    Current data is ``current`` (a table of inputs; the model scores it for prediction drift)
    or, by default, the server's prediction log of the last ``window_seconds``.

    Raises:
        ConfigError: the model has no reference profile.
        DataValidationError: labels cannot be joined.
    """
    now = time.time() if now is None else now
    record = versions.resolve(metadata, model_ref)
    profile = reference_profile(metadata, artifacts, record)
    positive = profile.positive
    if current is None:
        current = read_log(metadata, artifacts, record.name, since=now - window_seconds)
        source = source or f"the prediction log, last {window_seconds / 3600:g} h"
        outputs = outputs_of(current, positive)
    else:
        model = versions.load(metadata, artifacts, f"{record.name}:{record.version}")
        features = current[[c for c in profile.columns if c in current.columns]]
        scored = score(model, features) if len(features) else None
        outputs = outputs_of(scored, positive) if scored is not None else None
        if scored is not None:
            import pandas as pd

            kept = current.drop(columns=[c for c in scored.columns if c in current.columns])
            current = pd.concat([kept.reset_index(drop=True), scored], axis=1)
        source = source or "a file"
    drift = detect(profile, current, settings, outputs=outputs)
    perf = None
    if labels is not None:
        key = label_key or REQUEST_ID
        perf = performance(
            record, current, labels, key=key, target=target or "target", positive=positive
        )
    report, html = build_report(
        drift,
        model=f"{record.name}:{record.version}",
        source=source,
        performance=perf,
        checked_at=now,
    )
    stored = [artifacts.put(report), artifacts.put(html)]
    from conveyor.store.metadata import ArtifactRef

    metadata.record_artifacts(
        [
            ArtifactRef(n, a.digest, a.kind, a.size)
            for n, a in zip(("report", "html"), stored, strict=True)
        ]
    )
    result = CheckResult(
        record, drift, source, report, html, stored[0].digest, stored[1].digest, perf
    )
    metadata.append_event(
        "monitor.check",
        result.ref,
        reason=summary(result),
        details={
            "dataset_drift": drift.dataset_drift,
            "drifted_columns": drift.drifted_columns,
            "prediction_drift": drift.prediction_drift,
            "share_drifted": drift.share_drifted,
            "n_current": drift.n_current,
            "report": result.report_digest,
            "html": result.html_digest,
            "source": source,
        },
    )
    if channels:
        for alert in alerts_for(result):
            result.alerts += dispatch(
                alert, channels, metadata, cooldown_seconds=alert_cooldown_seconds
            )
    return result


def summary(result: CheckResult) -> str:
    """One line: ``drift in prevailing_wage, continent (2/10 columns); predictions drifted``."""
    drift = result.drift
    if drift.dataset_drift is None:
        return f"not enough data ({drift.n_current} rows)"
    parts = [
        f"drift in {', '.join(drift.drifted_columns)} "
        f"({len(drift.drifted_columns)}/{len(drift.columns)} columns"
        f"{', dataset drift' if drift.dataset_drift else ''})"
        if drift.drifted_columns
        else f"no drift ({drift.n_current} rows)"
    ]
    if drift.prediction_drift:
        parts.append("predictions drifted")
    return "; ".join(parts)


def alerts_for(result: CheckResult) -> list[Alert]:
    """The alerts a check raises: drifted columns, dataset drift, prediction drift."""
    drift, model = result.drift, result.model.name
    found: list[Alert] = []
    details = {"version": result.model.version, "report": result.html_digest}
    if drift.dataset_drift:
        found.append(
            Alert(
                f"dataset:{model}",
                "dataset",
                f"Dataset drift on {result.ref}",
                summary(result),
                model,
                details,
            )
        )
    elif drift.drifted_columns:
        found.append(
            Alert(
                f"column:{model}:{','.join(sorted(drift.drifted_columns))}",
                "column",
                f"Drift on {result.ref}",
                summary(result),
                model,
                details,
            )
        )
    if drift.prediction_drift:
        found.append(
            Alert(
                f"prediction:{model}",
                "prediction",
                f"Prediction drift on {result.ref}",
                summary(result),
                model,
                details,
            )
        )
    return found
