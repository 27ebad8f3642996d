"""The report of every task (binary, 10-class, regression), with and without a baseline."""

from __future__ import annotations

import html as html_lib
import itertools
import math
import re

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from sklearn.dummy import DummyClassifier, DummyRegressor

from conveyor.config import CandidateConfig, FeaturesConfig
from conveyor.evaluation import plots
from conveyor.evaluation.diagnostics import diagnose
from conveyor.evaluation.metrics import evaluate
from conveyor.evaluation.report import _num, build_report
from conveyor.training.candidates import fit_candidate

TARGET = "target"
IMG = '<img src="data:image/png;base64,'
TASKS = {  # table: (task, estimator, dummy strategy, primary, positive)
    "breast_cancer": (
        "classification",
        "sklearn.linear_model.LogisticRegression",
        "most_frequent",
        "f1",
        "malignant",
    ),
    "digits": ("classification", "sklearn.linear_model.LogisticRegression", "prior", "f1", None),
    "diabetes": ("regression", "sklearn.linear_model.Ridge", "mean", "rmse", None),
}
BASELINE_LABELS = {
    "most_frequent": "baseline (most frequent class)",
    "prior": "baseline (class prior)",
    "mean": "baseline (mean)",
}


def _payload(table, frames):
    """A report payload with a baseline: one model trained and diagnosed on ``table``."""
    task, estimator, strategy, primary, positive = TASKS[table]
    train, test = frames
    params = {"max_iter": 2000} if task == "classification" else {}
    model = fit_candidate(
        train,
        target=TARGET,
        features=FeaturesConfig(),
        candidate=CandidateConfig(name="linear", estimator=estimator, params=params),
        seed=0,
    )
    dummy_cls = DummyRegressor if task == "regression" else DummyClassifier
    dummy = dummy_cls(strategy=strategy).fit(train.drop(columns=[TARGET]), train[TARGET])
    metrics = evaluate(model, test, target=TARGET, task=task, positive=positive)
    payload = {
        "run_id": f"run-{table}",
        "model_name": table,
        "task": task,
        "primary": primary,
        "leaderboard": [{"candidate": "linear", "metrics": metrics, "params": {}, "tuning": None}],
        "best": "linear",
        "metrics": metrics,
        "gates": [],
        "decision": "registered",
        "diagnostics": diagnose(
            model, test, target=TARGET, task=task, positive=positive, importance_repeats=1
        ),
        "baseline": {
            "strategy": strategy,
            "metrics": evaluate(dummy, test, target=TARGET, task=task, positive=positive),
        },
    }
    return payload


@pytest.fixture(scope="module")
def binary_payload(breast_cancer):
    return _payload("breast_cancer", breast_cancer)


@pytest.fixture(scope="module")
def digits_payload(digits):
    return _payload("digits", digits)


@pytest.fixture(scope="module")
def regression_payload(diabetes):
    return _payload("diabetes", diabetes)


@pytest.fixture(params=["binary", "digits", "regression"])
def payload(request):
    """Each task's payload in turn (a fresh copy of its top level)."""
    return dict(request.getfixturevalue(f"{request.param}_payload"))


def _text(page: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _baseline_row(page: str) -> list[str]:
    row = re.search(r'<tr class="baseline">(.*?)</tr>', page, re.DOTALL)
    assert row, "no baseline row in the leaderboard"
    return [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.DOTALL)]


def _leaderboard_names(page: str) -> list[str]:
    board = re.search(r'<section id="leaderboard">.*?<thead>(.*?)</thead>', page, re.DOTALL)
    assert board
    return [_text(cell) for cell in re.findall(r"<th[^>]*>(.*?)</th>", board.group(1))][1:-2]


def test_baseline_is_the_last_leaderboard_row(payload):
    page = build_report(payload)[1].decode("utf-8")
    label = BASELINE_LABELS[payload["baseline"]["strategy"]]
    names = _leaderboard_names(page)
    assert names[0] == payload["primary"]
    assert set(names) == set(payload["metrics"])
    cells = _baseline_row(page)
    assert cells[0] == label
    baseline = payload["baseline"]["metrics"]
    assert cells[1 : 1 + len(names)] == [_num(baseline[name]) for name in names]
    board = page[page.index('<section id="leaderboard">') :]
    assert board.index('<tr class="best">') < board.index('<tr class="baseline">')


def test_headline_puts_the_primary_metric_beside_the_baseline(payload):
    text = _text(build_report(payload)[1].decode("utf-8"))
    primary = payload["primary"]
    model, base = payload["metrics"][primary], payload["baseline"]["metrics"][primary]
    assert f"{primary} {_num(model)} vs baseline {_num(base)} · beats it" in text


def test_regression_headline_shows_mae_rmse_and_r2_beside_the_baseline(regression_payload):
    payload = regression_payload
    text = _text(build_report(payload)[1].decode("utf-8"))
    for name in ("mae", "rmse", "r2"):
        model, base = payload["metrics"][name], payload["baseline"]["metrics"][name]
        assert f"{name} {_num(model)} vs baseline {_num(base)} · beats it" in text
    assert text.count("vs baseline") == 3  # rmse is the primary: shown once
    assert "Value baseline (mean)" in text  # the test-metrics table has a baseline column


@pytest.mark.parametrize("missing", ["absent", "none"])
def test_payload_without_a_baseline_renders(payload, missing):
    if missing == "absent":
        del payload["baseline"]
    else:
        payload["baseline"] = None
    report, html = build_report(payload)
    page = html.decode("utf-8")
    assert 'class="baseline"' not in page and "vs baseline" not in page
    primary = payload["primary"]
    assert f"{primary} {_num(payload['metrics'][primary])}" in _text(page)  # headline stays
    assert '<tr class="best">' in page
    assert ("baseline" in report) is (missing == "none")


def test_a_baseline_that_wins_is_said_to(payload):
    swapped = {
        **payload,
        "metrics": payload["baseline"]["metrics"],
        "baseline": {"strategy": "median", "metrics": payload["metrics"]},
    }
    text = _text(build_report(swapped)[1].decode("utf-8"))
    assert "does not beat it" in text and "· beats it" not in text
    assert "baseline (median)" in text


def test_baseline_metric_missing_or_unknown_strategy(payload):
    primary = payload["primary"]
    partial = {name: v for name, v in payload["baseline"]["metrics"].items() if name != primary}
    payload = {**payload, "baseline": {"strategy": "zero_rule", "metrics": partial}}
    page = build_report(payload)[1].decode("utf-8")
    cells = _baseline_row(page)
    assert cells[0] == "baseline (zero_rule)"
    assert cells[1] == "\u2014"  # the primary column, first
    shown = f"{primary} {_num(payload['metrics'][primary])} vs baseline \u2014"
    assert re.search(rf"{shown}(?! ·)", _text(page))  # no verdict without a baseline value


@pytest.mark.parametrize("table", ["binary", "digits"])
def test_every_class_is_in_the_per_class_table(request, table):
    payload = request.getfixturevalue(f"{table}_payload")
    page = build_report(payload)[1].decode("utf-8")
    section = page[page.index('<section id="per-class">') :]
    section = section[: section.index("</section>")]
    labels = [_text(cell) for cell in re.findall(r"<tr>\s*<td>(.*?)</td>", section, re.DOTALL)]
    expected = {"binary": ["benign", "malignant positive"], "digits": list("0123456789")}
    assert labels == expected[table]
    # binary: confusion matrix, ROC, PR, calibration, importance; multiclass: no curves
    assert page.count(IMG) == (5 if table == "binary" else 2)


def test_regression_report_has_residuals_and_no_classes(regression_payload):
    page = build_report(regression_payload)[1].decode("utf-8")
    assert '<section id="residuals">' in page and '<section id="per-class">' not in page
    assert page.count(IMG) == 2


# --- the confusion matrix of many classes -------------------------------------------------------


def _overlaps(boxes) -> list[tuple[int, int]]:
    """Pairs of upright texts whose boxes share more than half a pixel each way."""
    return [
        (i, j)
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
        if a.overlaps(b) and a.intersection(a, b).width > 0.5 and a.intersection(a, b).height > 0.5
    ]


def _crowded(ticks, renderer) -> list[tuple[int, int]]:
    """Neighbouring tick labels that touch. Slanted labels are parallel strips as tall as their
    font: they touch when the tick spacing times sin(angle) is less than that height (their
    axis-aligned boxes overlap anyway, so they cannot be compared as boxes)."""
    angle = math.radians(ticks[0].get_rotation())
    if angle == 0:
        return _overlaps([t.get_window_extent(renderer) for t in ticks])
    _, height, _ = renderer.get_text_width_height_descent(
        "Ag", ticks[0].get_fontproperties(), False
    )
    xs = [t.get_window_extent(renderer).x1 for t in ticks]  # right-aligned: the anchor
    return [
        (i, i + 1)
        for i, (a, b) in enumerate(itertools.pairwise(xs))
        if (b - a) * math.sin(angle) < height
    ]


@pytest.mark.parametrize("prefix", ["", "a long class name "])
def test_ten_class_confusion_matrix_labels_do_not_overlap(digits_payload, prefix):
    diagnostics = dict(digits_payload["diagnostics"])
    labels = [f"{prefix}{label}" for label in diagnostics["confusion_matrix"]["labels"]]
    diagnostics["confusion_matrix"] = {**diagnostics["confusion_matrix"], "labels": labels}
    fig = plots._confusion_matrix_figure(diagnostics)
    canvas = FigureCanvasAgg(fig)  # the canvas savefig would use, to measure the drawn text
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert [t.get_text() for t in ticks] == [plots._short(label) for label in labels]
        assert _crowded(ticks, renderer) == []
    cells = list(ax.texts)
    assert len(cells) == 100
    assert all(t.get_fontsize() < 9 for t in cells)  # smaller than the 2-class figure's
    assert _overlaps([t.get_window_extent(renderer) for t in cells]) == []
    assert plots.confusion_matrix_png(diagnostics).startswith(b"\x89PNG")


def test_binary_confusion_matrix_keeps_counts_and_shares(binary_payload):
    fig = plots._confusion_matrix_figure(binary_payload["diagnostics"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 4 and all(re.fullmatch(r"\d+\n\d+%", t) for t in texts)


def test_very_many_classes_draw_colour_only():
    n = 30
    labels = [f"class {i}" for i in range(n)]
    matrix = [[5 if i == j else 0 for j in range(n)] for i in range(n)]
    fig = plots._confusion_matrix_figure({"confusion_matrix": {"labels": labels, "matrix": matrix}})
    assert len(fig.axes[0].texts) == 0
    assert len(fig.axes[0].get_xticklabels()) == n
