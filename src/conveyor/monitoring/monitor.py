"""One monitoring check: the served model's reference profile vs current data -> drift (and,
with labels, performance) -> report artifacts linked to the model version -> alerts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor._text import short_list
from conveyor.contracts import REFERENCE_PROFILE_TAG
from conveyor.errors import ConfigError
from conveyor.monitoring.alerts import Alert, dispatch
from conveyor.monitoring.current import PREDICTION, PROBA_PREFIX, REQUEST_ID, read_log
from conveyor.monitoring.drift import DriftResult, DriftSettings, detect
from conveyor.monitoring.performance import Performance, performance
from conveyor.monitoring.profile import (
    CONFIDENCE,
    PROBABILITY,
    ReferenceProfile,
    label_text,
    positive_class,
)
from conveyor.monitoring.report import build_report
from conveyor.registry import versions

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.monitoring.alerts import Channel
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import MetadataStore, ModelVersionRecord


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
    performance: Performance | None = None
    alerts: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.model.name}:{self.model.version}"


def reference_profile(
    metadata: MetadataStore, artifacts: AbstractArtifactStore, record: ModelVersionRecord
) -> ReferenceProfile:
    """The profile saved with a model version at training time.

    Raises:
        ConfigError: the version has none (trained before profiles existed, or outside the
            train line): retrain it.
    """
    digest = record.tags.get(REFERENCE_PROFILE_TAG)
    if not digest:
        raise ConfigError(
            f"{record.name}:{record.version} has no reference profile (registered before "
            "conveyor saved one, or outside the train line): retrain it with `conveyor run`"
        )
    return ReferenceProfile.from_dict(artifacts.get(digest, metadata.artifact_kind(digest)))


def outputs_of(frame: pd.DataFrame, profile: ReferenceProfile) -> pd.DataFrame | None:
    """The model outputs of logged or scored rows, as the profile has them (see
    :mod:`conveyor.monitoring.profile`): ``prediction`` (class as text, or value), and the
    positive-class ``probability`` or the predicted-class ``confidence`` from the
    ``proba_<class>`` columns."""
    import pandas as pd

    if PREDICTION not in frame.columns:
        return None
    reference = profile.outputs.get(PREDICTION)
    predicted = frame[PREDICTION]
    out = pd.DataFrame(index=frame.index)
    if reference is not None and reference.kind == "numeric":
        out[PREDICTION] = pd.to_numeric(predicted, errors="coerce")
    else:
        out[PREDICTION] = label_text(predicted)
    proba = _proba_columns(frame)
    if proba and PROBABILITY in profile.outputs:
        classes = [c.removeprefix(PROBA_PREFIX) for c in proba]
        column = f"{PROBA_PREFIX}{positive_class(classes, profile.positive)}"
        out[PROBABILITY] = pd.to_numeric(frame[column], errors="coerce")
    if proba and CONFIDENCE in profile.outputs:
        out[CONFIDENCE] = frame[proba].apply(pd.to_numeric, errors="coerce").max(axis=1)
    return out


def output_meanings(profile: ReferenceProfile, frame: pd.DataFrame, task: str) -> dict[str, str]:
    """What each model output of a check holds, in words (for the report)."""
    reference = profile.outputs.get(PREDICTION)
    numeric = task == "regression" or (reference is not None and reference.kind == "numeric")
    classes = [c.removeprefix(PROBA_PREFIX) for c in _proba_columns(frame)]
    classes_share = "the predicted class: the share of each class"
    meanings = {
        PREDICTION: "the predicted value" if numeric else classes_share,
        CONFIDENCE: "the probability of the predicted class, the model's confidence",
    }
    if classes:
        which = positive_class(classes, profile.positive)
        kind = "the positive class" if len(classes) == 2 else "one class of several"
        meanings[PROBABILITY] = f"the probability of class {which}, {kind}"
    return meanings


def _proba_columns(frame: pd.DataFrame) -> list[str]:
    """The ``proba_<class>`` columns, in the model's class order."""
    return [str(c) for c in frame.columns if str(c).startswith(PROBA_PREFIX)]


def score(model: Any, features: pd.DataFrame, *, task: str = "classification") -> pd.DataFrame:
    """Predictions (and, for a classifier, ``proba_<class>`` per class) for rows that were not
    served: the columns the server's log has (:func:`_proba_columns` reads them back)."""
    import numpy as np
    import pandas as pd

    out = pd.DataFrame({PREDICTION: np.asarray(model.predict(features))})
    if task != "regression" and hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        proba = model.predict_proba(features)
        for i, cls in enumerate(model.classes_):
            out[f"{PROBA_PREFIX}{cls}"] = proba[:, i]
    return out


def check(
    metadata: MetadataStore,
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
    or, by default, the server's prediction log of the last ``window_seconds``. Prediction
    drift compares the outputs the reference profile has, by task: the predicted class and
    the positive-class probability (binary) or the predicted-class confidence (multiclass;
    profiles that kept one class's probability compare that class's), or the predicted value
    (regression). With ``labels`` (joined on ``label_key``, default ``request_id``), the
    training metrics are recomputed on the labelled rows (:func:`performance`).

    Raises:
        ConfigError: the model has no reference profile.
        DataValidationError: labels cannot be joined.
    """
    now = time.time() if now is None else now
    record = versions.resolve(metadata, model_ref)
    profile = reference_profile(metadata, artifacts, record)
    try:
        signature = versions.signature_of(record)
    except ConfigError:
        signature = None  # the drift check does not need it: the profile knows the task
    task = signature.task if signature is not None else profile.task or "classification"
    if current is None:
        current = read_log(metadata, artifacts, record.name, since=now - window_seconds)
        source = source or f"the prediction log, last {window_seconds / 3600:g} h"
    elif len(current):
        model = versions.load(metadata, artifacts, f"{record.name}:{record.version}")
        current = with_scores(model, current, profile, task=task)
    source = source or "a file"
    drift = detect(profile, current, settings, outputs=outputs_of(current, profile))
    perf = None
    if labels is not None:
        key = label_key or REQUEST_ID
        perf = performance(
            record,
            current,
            labels,
            key=key,
            target=target or "target",
            positive=profile.positive,
            task=task,
        )
    return conclude(
        metadata,
        artifacts,
        record,
        drift,
        source=source,
        task=task,
        meanings=output_meanings(profile, current, task),
        now=now,
        perf=perf,
        channels=channels,
        alert_cooldown_seconds=alert_cooldown_seconds,
    )


def with_scores(
    model: Any, current: pd.DataFrame, profile: ReferenceProfile, *, task: str
) -> pd.DataFrame:
    """``current`` with the model's scores of its profiled columns (:func:`score`) in place
    of any such columns it had."""
    import pandas as pd

    features = current[[c for c in profile.columns if c in current.columns]]
    scored = score(model, features, task=task)
    kept = current.drop(columns=[c for c in scored.columns if c in current.columns])
    return pd.concat([kept.reset_index(drop=True), scored], axis=1)


def conclude(
    metadata: MetadataStore,
    artifacts: AbstractArtifactStore,
    record: ModelVersionRecord,
    drift: DriftResult,
    *,
    source: str,
    task: str,
    meanings: dict[str, str],
    now: float,
    perf: Performance | None = None,
    channels: list[Channel] | None = None,
    alert_cooldown_seconds: float = 3600.0,
) -> CheckResult:
    """The end of a check, whoever computed its drift (:func:`check`, or
    ``partitioned.check_partitions``): the report stored and linked to the model version, the
    ``monitor.check`` event, the alerts."""
    report, html = build_report(
        drift,
        model=f"{record.name}:{record.version}",
        source=source,
        performance=None if perf is None else perf.to_json(),
        checked_at=now,
        task=task,
        meanings=meanings,
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
        f"drift in {short_list(drift.drifted_columns, quote=False)} "
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
