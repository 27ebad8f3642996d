"""One monitoring check (:func:`conveyor.monitoring.monitor.check`) on the stores alone: an
in-memory SQLite metadata store and an in-memory artifact store, no project, no CLI, no run.

Each version is registered by hand through the governed registry: a tiny fitted scikit-learn
pipeline as its model, and the reference profile of its training rows under
:data:`~conveyor.contracts.REFERENCE_PROFILE_TAG`. The checks are given their current data, so
the model scores it. The data are quantiles of the distributions asked for (not a random
draw), so no verdict hangs on a seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.contracts import REFERENCE_PROFILE_TAG, ModelStatus
from conveyor.errors import ConfigError
from conveyor.monitoring.monitor import check
from conveyor.monitoring.performance import MetricChange, Performance
from conveyor.monitoring.profile import build_profile
from conveyor.registry import versions
from conveyor.registry.governance import register
from conveyor.store.artifacts.memory import InMemoryArtifactStore
from conveyor.store.metadata import ArtifactRef, open_metadata_store

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from conveyor.store.metadata import ModelVersionRecord, SqlMetadataStore

MODEL = "applicants"
FEATURES = ["x1", "x2"]
TRAINING_METRICS = {"accuracy": 0.9, "roc_auc": 0.95, "log_loss": 0.3}


def inputs(n: int, *, shift: float = 0.0) -> pd.DataFrame:
    """``n`` rows: ``x1`` standard normal moved by ``shift`` standard deviations, ``x2``
    normal with mean 10 and std 2; each column permuted on its own (independent columns)."""
    quantiles = stats.norm.ppf((np.arange(n) + 0.5) / n)
    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {
            "x1": rng.permutation(quantiles + shift),
            "x2": rng.permutation(10.0 + 2.0 * quantiles),
        }
    )


def outcome(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """The true class (0/1) of each row: a linear rule plus fixed noise."""
    noise = np.random.default_rng(len(frame) + 1).normal(0.0, 0.5, len(frame))
    score = frame["x1"].to_numpy() + 0.5 * (frame["x2"].to_numpy() - 10.0) + noise
    return (score > 0).astype("int64")


REFERENCE = inputs(2000)


@pytest.fixture
def metadata() -> Iterator[SqlMetadataStore]:
    store = open_metadata_store("sqlite://")
    yield store
    store.close()


@pytest.fixture
def artifacts() -> InMemoryArtifactStore:
    return InMemoryArtifactStore()


@pytest.fixture(scope="module")
def classifier() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(REFERENCE, outcome(REFERENCE))


def store(metadata: SqlMetadataStore, artifacts: InMemoryArtifactStore, name: str, obj: Any) -> str:
    """Put ``obj`` in the artifact store and record it, as a run does; its digest."""
    stored = artifacts.put(obj)
    metadata.record_artifacts([ArtifactRef(name, stored.digest, stored.kind, stored.size)])
    return stored.digest


def classifier_profile(model: Pipeline) -> dict[str, Any]:
    """The reference profile the train line saves for a binary classifier."""
    return build_profile(
        REFERENCE,
        predictions=model.predict(REFERENCE),
        probabilities=model.predict_proba(REFERENCE),
        classes=model.classes_,
        positive=1,
        task="classification",
    ).to_dict()


def registered(
    metadata: SqlMetadataStore,
    artifacts: InMemoryArtifactStore,
    model: Pipeline,
    *,
    profile: Mapping[str, Any] | None,
    metrics: Mapping[str, float] | None = None,
) -> ModelVersionRecord:
    """An approved version of ``model`` at ``MODEL@production``, with ``profile`` as its
    reference profile (none when None)."""
    digest = store(metadata, artifacts, "model", model)
    tags = {}
    if profile is not None:
        tags[REFERENCE_PROFILE_TAG] = store(metadata, artifacts, "reference_profile", profile)
    return register(
        metadata,
        MODEL,
        digest=digest,
        run_id=None,
        status=ModelStatus.APPROVED,
        reason="registered by the test",
        alias="production",
        metrics=metrics,
        tags=tags,
    )


def test_data_like_the_reference_shows_no_drift_and_stores_its_report(
    metadata: SqlMetadataStore, artifacts: InMemoryArtifactStore, classifier: Pipeline
) -> None:
    registered(metadata, artifacts, classifier, profile=classifier_profile(classifier))

    result = check(metadata, artifacts, f"{MODEL}@production", current=inputs(400), now=1000.0)

    drift = result.drift
    assert result.ref == f"{MODEL}:1"
    assert (drift.dataset_drift, drift.drifted_columns, drift.prediction_drift) == (
        False,
        [],
        False,
    )
    assert (drift.n_current, drift.n_reference, drift.share_drifted) == (400, 2000, 0.0)
    assert {c.column: (c.method, c.verdict) for c in drift.columns} == {
        "x1": ("ks", "ok"),
        "x2": ("ks", "ok"),
    }
    # the model scored the rows: both outputs of a binary classifier were compared
    assert {o.column: o.verdict for o in drift.outputs} == {
        "prediction": "ok",
        "probability": "ok",
    }
    assert (result.source, result.performance, result.alerts) == ("a file", None, [])

    report = artifacts.get(result.report_digest, metadata.artifact_kind(result.report_digest))
    assert report == result.report
    assert (report["model"], report["task"], report["source"]) == (
        f"{MODEL}:1",
        "classification",
        "a file",
    )
    assert (report["checked_at"], report["performance"]) == (1000.0, None)
    assert report["drift"] == drift.to_dict()
    html = artifacts.get(result.html_digest, metadata.artifact_kind(result.html_digest))
    assert html == result.html
    assert b"x1" in html and b"x2" in html and f"{MODEL}:1".encode() in html

    events = metadata.list_events(action="monitor.check")
    assert len(events) == 1
    event = events[0]
    assert (event.entity, event.reason) == (f"{MODEL}:1", "no drift (400 rows)")
    assert event.details == {
        "dataset_drift": False,
        "drifted_columns": [],
        "prediction_drift": False,
        "share_drifted": 0.0,
        "n_current": 400,
        "report": result.report_digest,
        "html": result.html_digest,
        "source": "a file",
    }


def test_a_shifted_numeric_column_drifts_and_is_named(
    metadata: SqlMetadataStore, artifacts: InMemoryArtifactStore, classifier: Pipeline
) -> None:
    registered(metadata, artifacts, classifier, profile=classifier_profile(classifier))

    result = check(
        metadata, artifacts, f"{MODEL}:1", current=inputs(400, shift=1.0), source="batch 7"
    )

    drift = result.drift
    columns = {c.column: c for c in drift.columns}
    assert drift.drifted_columns == ["x1"]
    assert (columns["x1"].method, columns["x1"].verdict) == ("ks", "drift")
    assert columns["x1"].adjusted_p_value is not None
    assert columns["x1"].adjusted_p_value < 1e-6
    assert columns["x2"].verdict == "ok"
    # half of the columns drifted: the default share (0.5) makes it dataset drift
    assert (drift.share_drifted, drift.dataset_drift) == (0.5, True)
    # x1 drives the model: its positive-class probability moved with it
    assert drift.prediction_drift is True
    assert result.report["drift"]["drifted_columns"] == ["x1"]
    (event,) = metadata.list_events(action="monitor.check")
    assert event.details["drifted_columns"] == ["x1"]
    assert event.details["source"] == "batch 7"
    assert event.reason is not None and event.reason.startswith("drift in x1 (1/2 columns")


def _expected_scores(y_true: Any, y_pred: Any, proba: Any) -> dict[str, float]:
    """The train line's classification metrics, computed here with scikit-learn directly."""
    both = np.column_stack([1 - proba, proba])
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, pos_label=1),
        "recall": skm.recall_score(y_true, y_pred, pos_label=1),
        "f1": skm.f1_score(y_true, y_pred, pos_label=1),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro"),
        "f1_weighted": skm.f1_score(y_true, y_pred, average="weighted"),
        "roc_auc": skm.roc_auc_score(y_true, proba),
        "pr_auc": skm.average_precision_score(y_true, proba),
        "log_loss": skm.log_loss(y_true, both, labels=[0, 1]),
    }


def test_labels_give_typed_performance_next_to_the_training_metrics(
    metadata: SqlMetadataStore, artifacts: InMemoryArtifactStore, classifier: Pipeline
) -> None:
    registered(
        metadata,
        artifacts,
        classifier,
        profile=classifier_profile(classifier),
        metrics=TRAINING_METRICS,
    )
    current = inputs(400)
    current.insert(0, "case_id", [f"c{i}" for i in range(len(current))])
    truth = outcome(current)
    # 300 rows labelled, 50 whose label is not known yet (missing), 50 without a label row
    labels = pd.DataFrame(
        {
            "case_id": current["case_id"][:350],
            "approved": np.where(np.arange(350) < 300, truth[:350], np.nan),
        }
    )

    result = check(
        metadata,
        artifacts,
        f"{MODEL}@production",
        current=current,
        labels=labels,
        label_key="case_id",
        target="approved",
    )

    perf = result.performance
    assert isinstance(perf, Performance)
    assert (perf.rows, perf.unlabelled, perf.key, perf.task) == (
        300,
        50,
        "case_id",
        "classification",
    )
    assert all(isinstance(m, MetricChange) for m in perf.metrics)
    features = current[FEATURES][:300]
    expected = _expected_scores(
        truth[:300], classifier.predict(features), classifier.predict_proba(features)[:, 1]
    )
    found = perf.by_name()
    assert set(found) == set(expected)
    for name, value in expected.items():
        metric = found[name]
        assert metric.current == pytest.approx(value, rel=1e-9), name
        training = TRAINING_METRICS.get(name)
        assert metric.training == training, name
        if training is None:
            assert metric.change is None, name
        else:
            assert metric.change == pytest.approx(value - training, rel=1e-9), name
    assert result.report["performance"] == perf.to_json()
    stored = artifacts.get(result.report_digest, metadata.artifact_kind(result.report_digest))
    assert stored["performance"] == perf.to_json()


def test_a_version_without_a_reference_profile_is_refused_by_name(
    metadata: SqlMetadataStore, artifacts: InMemoryArtifactStore, classifier: Pipeline
) -> None:
    registered(metadata, artifacts, classifier, profile=classifier_profile(classifier))
    registered(metadata, artifacts, classifier, profile=None)  # version 2, now at production

    with pytest.raises(ConfigError, match=f"^{MODEL}:2 has no reference profile"):
        check(metadata, artifacts, f"{MODEL}@production", current=inputs(400))
    assert metadata.list_events(action="monitor.check") == []
    # the version with a profile still checks
    assert check(metadata, artifacts, f"{MODEL}:1", current=inputs(400)).ref == f"{MODEL}:1"


def test_a_malformed_signature_still_checks_with_the_task_of_the_profile(
    metadata: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    target = 3.0 * REFERENCE["x1"] - REFERENCE["x2"]
    regressor = make_pipeline(StandardScaler(), LinearRegression()).fit(REFERENCE, target)
    profile = build_profile(
        REFERENCE, predictions=regressor.predict(REFERENCE), task="regression"
    ).to_dict()
    # a signature this conveyor cannot read (newer schema), claiming the wrong task: stored
    # through the store, as an older or newer conveyor would have left it
    signature = {
        "schema_version": 99,
        "columns": {"x1": {"trained_dtype": "float64"}, "x2": {"trained_dtype": "float64"}},
        "task": "classification",
    }
    record = metadata.register_model_version(
        MODEL,
        digest=store(metadata, artifacts, "model", regressor),
        run_id=None,
        signature=signature,
        tags={REFERENCE_PROFILE_TAG: store(metadata, artifacts, "reference_profile", profile)},
        status=ModelStatus.APPROVED,
        reason="registered by the test",
    )
    with pytest.raises(ConfigError, match="input signature cannot be served"):
        versions.signature_of(record)
    current = inputs(300)
    current["id"] = range(300)
    labels = pd.DataFrame({"id": range(300), "target": 3.0 * current["x1"] - current["x2"]})

    result = check(
        metadata, artifacts, f"{MODEL}:1", current=current, labels=labels, label_key="id"
    )

    assert result.report["task"] == "regression"
    assert result.drift.drifted_columns == []
    assert [(o.column, o.kind, o.verdict) for o in result.drift.outputs] == [
        ("prediction", "numeric", "ok")
    ]
    perf = result.performance
    assert perf is not None and (perf.task, perf.rows, perf.unlabelled) == ("regression", 300, 0)
    # the target is the model's exact rule: a perfect fit
    found = perf.by_name()
    assert set(found) == {"mse", "rmse", "mae", "r2"}
    assert found["mae"].current == pytest.approx(0.0, abs=1e-9)
    assert found["r2"].current == pytest.approx(1.0, abs=1e-12)
