"""plots and build_report(): deterministic PNG figures and a self-contained, escaped HTML page."""

from __future__ import annotations

import copy
import json
import re
import sys

import pytest

from conveyor._version import __version__
from conveyor.config import CandidateConfig, FeaturesConfig
from conveyor.evaluation import plots
from conveyor.evaluation.diagnostics import diagnose
from conveyor.evaluation.metrics import evaluate
from conveyor.evaluation.report import build_report
from conveyor.examples.visa.generate import generate
from conveyor.training.candidates import fit_candidate

PNG = b"\x89PNG\r\n\x1a\n"
IMG = '<img src="data:image/png;base64,'
TARGET = "case_status"


@pytest.fixture(scope="module")
def visa():
    return generate(n_rows=3000, seed=3)


@pytest.fixture(scope="module")
def classification_diag(visa):
    train, test = visa.iloc[:2400], visa.iloc[2400:]
    model = fit_candidate(
        train,
        target=TARGET,
        features=FeaturesConfig(drop=["case_id"]),
        candidate=CandidateConfig(
            name="hgb",
            estimator="sklearn.ensemble.HistGradientBoostingClassifier",
            params={"max_iter": 50},
        ),
        seed=0,
    )
    metrics = evaluate(model, test, target=TARGET, task="classification", positive="Denied")
    diagnostics = diagnose(
        model, test, target=TARGET, task="classification", positive="Denied", importance_repeats=2
    )
    return metrics, diagnostics


@pytest.fixture(scope="module")
def regression_diag(visa):
    frame = visa[["continent", "education_of_employee", "unit_of_wage", "prevailing_wage"]]
    model = fit_candidate(
        frame.iloc[:2400],
        target="prevailing_wage",
        features=FeaturesConfig(),
        candidate=CandidateConfig(
            name="hgbr",
            estimator="sklearn.ensemble.HistGradientBoostingRegressor",
            params={"max_iter": 30},
        ),
        seed=0,
    )
    return diagnose(
        model, frame.iloc[2400:], target="prevailing_wage", task="regression", importance_repeats=2
    )


@pytest.fixture
def payload(classification_diag):
    metrics, diagnostics = classification_diag
    other = {name: value - 0.05 for name, value in metrics.items()}
    return {
        "run_id": "run-7f3a9c",
        "model_name": "visa-approval",
        "data": {
            "fingerprint": "3f9a1c0e7b2d4f6a8c9e1b3d5f7a9c0e",
            "source": "data/visa.csv",
            "rows": 3000,
            "columns": 12,
        },
        "task": "classification",
        "primary": "roc_auc",
        "leaderboard": [
            {
                "candidate": "hgb",
                "metrics": metrics,
                "params": {"max_iter": 50},
                "tuning": {"trials": 20, "best_value": 0.77},
            },
            {"candidate": "logreg", "metrics": other, "params": {"C": 1.0}, "tuning": None},
        ],
        "best": "hgb",
        "metrics": metrics,
        "gates": [
            {"metric": "roc_auc", "rule": ">= 0.7", "value": metrics["roc_auc"], "passed": True},
            {"metric": "recall", "rule": ">= 0.9", "value": metrics["recall"], "passed": False},
        ],
        "decision": "not registered: a gate failed",
        "diagnostics": diagnostics,
    }


# --- plots -------------------------------------------------------------------------------------

CLASSIFICATION_PLOTS = [
    plots.confusion_matrix_png,
    plots.roc_png,
    plots.pr_png,
    plots.calibration_png,
    plots.importance_png,
]


@pytest.mark.parametrize("draw", CLASSIFICATION_PLOTS, ids=lambda f: f.__name__)
def test_classification_plots_are_deterministic_png(classification_diag, draw):
    _, diagnostics = classification_diag
    first = draw(diagnostics)
    assert first.startswith(PNG)
    assert draw(diagnostics) == first


@pytest.mark.parametrize("draw", [plots.residuals_png, plots.importance_png])
def test_regression_plots_are_deterministic_png(regression_diag, draw):
    first = draw(regression_diag)
    assert first.startswith(PNG)
    assert draw(regression_diag) == first


def test_plots_for_picks_the_figures_of_the_task(classification_diag, regression_diag):
    titles = [title for title, _ in plots.plots_for(classification_diag[1])]
    assert titles == [
        "Confusion matrix",
        "ROC curve",
        "Precision-recall curve",
        "Calibration",
        "Permutation importance",
    ]
    titles = [title for title, _ in plots.plots_for(regression_diag)]
    assert titles == ["Predictions and residuals", "Permutation importance"]


def test_a_missing_section_is_a_value_error(regression_diag):
    with pytest.raises(ValueError, match="'roc'"):
        plots.roc_png(regression_diag)


def test_plots_leave_pyplot_alone(classification_diag):
    import matplotlib as mpl

    backend = mpl.get_backend()
    plots.importance_png(classification_diag[1])
    assert mpl.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


# --- build_report ------------------------------------------------------------------------------


def test_html_shows_the_run(payload):
    _, html_bytes = build_report(payload)
    html = html_bytes.decode("utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "visa-approval" in html and "run-7f3a9c" in html
    assert "3f9a1c0e7b2d" in html and "data/visa.csv" in html and "3,000" in html
    for row in payload["leaderboard"]:
        assert row["candidate"] in html
    assert '<span class="badge pass">PASS</span>' in html
    assert '<span class="badge fail">FAIL</span>' in html
    assert '<tr class="best">' in html and "&#9733; best" in html
    assert 'class="n primary">roc_auc</th>' in html
    assert "not registered: a gate failed" in html
    assert f"conveyor {__version__}" in html
    for section in ("gates", "leaderboard", "metrics", "plots", "per-class", "importance"):
        assert f'<section id="{section}">' in html
    assert html.count(IMG) >= 4


def test_html_is_self_contained(payload):
    html = build_report(payload)[1].decode("utf-8")
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "default-src 'none'" in html  # the browser itself refuses any other load
    # every src/href is an inline image
    assert all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', html)
    )
    assert "href=" not in html


def test_user_strings_are_escaped(payload):
    payload["model_name"] = "<script>alert(1)</script>"
    payload["leaderboard"][1]["candidate"] = '"><img src=x onerror=alert(2)>'
    payload["gates"][0]["rule"] = "<b>&</b>"
    html = build_report(payload)[1].decode("utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in html


def test_json_report_is_the_payload_plus_generated_by(payload):
    before = copy.deepcopy(payload)
    report, _ = build_report(payload)
    assert payload == before  # not mutated
    assert report["generated_by"] == f"conveyor {__version__}"
    assert {k: v for k, v in report.items() if k != "generated_by"} == json.loads(
        json.dumps(payload)
    )
    json.dumps(report, allow_nan=False)


def test_report_is_deterministic(payload):
    report1, html1 = build_report(payload)
    report2, html2 = build_report(copy.deepcopy(payload))
    assert json.dumps(report1, sort_keys=True) == json.dumps(report2, sort_keys=True)
    assert html1 == html2


def test_regression_report(payload, regression_diag):
    payload.update(
        task="regression",
        primary="rmse",
        leaderboard=[{"candidate": "hgbr", "metrics": {"rmse": 41234.5, "r2": 0.31}}],
        best="hgbr",
        metrics={"rmse": 41234.5, "r2": 0.31},
        diagnostics=regression_diag,
    )
    html = build_report(payload)[1].decode("utf-8")
    assert '<section id="residuals">' in html and '<section id="per-class">' not in html
    assert "41,234.5" in html
    assert html.count(IMG) == 2


def test_minimal_payload_renders():
    report, html = build_report({"run_id": "r1", "model_name": "m", "task": "classification"})
    assert report == {
        "run_id": "r1",
        "model_name": "m",
        "task": "classification",
        "generated_by": f"conveyor {__version__}",
    }
    text = html.decode("utf-8")
    assert "No quality gates are configured." in text and IMG not in text


def test_missing_required_keys_are_named():
    with pytest.raises(ValueError, match="run_id, task"):
        build_report({"model_name": "m"})


def test_non_json_payload_is_a_type_error(payload):
    payload["gates"][0]["value"] = object()
    with pytest.raises(TypeError, match=r"payload\.gates\[0\]\.value"):
        build_report(payload)
