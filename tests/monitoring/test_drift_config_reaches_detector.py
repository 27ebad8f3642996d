"""Every key of ``monitoring.drift`` (and of its per-column rules) in conveyor.yaml reaches the
drift detector, on both ways a check starts: ``conveyor monitor`` and the watch loop.

Each case sets one key to a non-default value that changes what the check reports (a verdict,
a method, a flag); the baselines show what the defaults give on the same data. The projects
are made by hand, without training: a registered version with a reference profile, and a
prediction log partition as the server writes it (a check on the log never loads the model).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import DriftColumnConfig, DriftConfig
from conveyor.contracts import REFERENCE_PROFILE_TAG
from conveyor.monitoring import report
from conveyor.monitoring.current import MODEL_VERSION, PREDICTED_AT, REQUEST_ID
from conveyor.monitoring.profile import build_profile
from conveyor.project import Project
from conveyor.store.metadata import ArtifactRef
from conveyor.watch import watch
from tests.e2e.conftest import RUNNER_ENV

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conveyor.watch import CycleResult

MODEL = "applicants"
REGIONS = ("north", "south", "east", "west")
SHARES = (0.4, 0.3, 0.2, 0.1)


def applicants(n: int, *, shift: float = 0.0, missing_every: int = 0) -> pd.DataFrame:
    """``n`` rows with exactly the distributions asked for (quantiles, not a random draw, so
    no verdict hangs on a seed): ``wage`` normal with mean 50,000 moved by ``shift`` standard
    deviations (10,000), every ``missing_every``-th missing; ``region`` in fixed shares."""
    wage = stats.norm.ppf((np.arange(n) + 0.5) / n, loc=50_000 + shift * 10_000, scale=10_000)
    if missing_every:
        wage[::missing_every] = np.nan
    region = np.repeat(REGIONS, [round(n * s) for s in SHARES])
    order = np.random.default_rng(n).permutation(n)
    return pd.DataFrame({"wage": wage[order], "region": region[order]})


REFERENCE = applicants(20_000)
CURRENT = {
    # above small_sample (1,000 rows): distances; wage moved 0.3 std (Wasserstein/std 0.30)
    "large": applicants(1500, shift=0.3),
    # at most small_sample: tests; wage moved 0.25 std (KS adjusted p 0.014), 10% missing
    "small": applicants(300, shift=0.25, missing_every=10),
    "calm": applicants(1500),  # the reference's distributions
}


@functools.cache
def _reference_profile() -> dict[str, Any]:
    return build_profile(REFERENCE).to_dict()


def monitored_project(
    root: Path, current: pd.DataFrame, *, drift: dict[str, Any] | None = None
) -> Path:
    """A project at ``root`` whose ``MODEL@production`` has logged ``current`` just now."""
    root.mkdir(parents=True, exist_ok=True)
    configure(root, drift or {})
    with Project.load(root) as proj:
        metadata, artifacts = proj.metadata, proj.artifacts
        profile = artifacts.put(_reference_profile())
        model = artifacts.put({"stands in for": "a model; a check on the log never loads it"})
        metadata.record_artifacts(
            ArtifactRef(name, a.digest, a.kind, a.size)
            for name, a in (("reference_profile", profile), ("model", model))
        )
        version = metadata.register_model_version(
            MODEL,
            digest=model.digest,
            run_id=None,
            tags={REFERENCE_PROFILE_TAG: profile.digest},
            status="approved",
            alias="production",
        ).version
        now = time.time()
        log = current.copy()
        log[MODEL_VERSION] = version
        log[REQUEST_ID] = [f"r{i}" for i in range(len(current))]
        log[PREDICTED_AT] = now
        stored = artifacts.put(log)
        metadata.record_prediction_log(
            MODEL,
            version,
            ArtifactRef("prediction_log", stored.digest, stored.kind, stored.size),
            n_rows=len(log),
            first_at=now,
            last_at=now,
        )
    return root


def configure(root: Path, drift: dict[str, Any]) -> None:
    """Write the project's conveyor.yaml with ``drift`` as its ``monitoring.drift``."""
    config = {
        "project": "monitored",
        "registry": {"model": MODEL},
        "monitoring": {"alerts": [], "drift": drift},
    }
    (root / "conveyor.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A project per batch, shared by the tests (they rewrite conveyor.yaml): a check only
    adds its report and an event, which no later check reads."""
    root = tmp_path_factory.mktemp("monitored")
    return {name: monitored_project(root / name, CURRENT[name]) for name in ("large", "small")}


@pytest.fixture
def project_with(projects: dict[str, Path]) -> Callable[[str, dict[str, Any]], Path]:
    def make(current: str, drift: dict[str, Any]) -> Path:
        configure(projects[current], drift)
        return projects[current]

    return make


# --- the two ways a check starts ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's bar charts take most of a check's time and none of its verdicts."""
    monkeypatch.setattr(report, "_plot", lambda column: "")


def _by_monitor(project: Path) -> dict[str, Any]:
    """``conveyor monitor --json``: the drift part of its report."""
    result = CliRunner(env=RUNNER_ENV).invoke(
        app, ["monitor", "--no-alerts", "--json", "-p", str(project)]
    )
    assert result.exit_code == 0, result.output
    drift: dict[str, Any] = json.loads(result.stdout)["drift"]
    return drift


def _by_watch(project: Path) -> dict[str, Any]:
    """One cycle of the watch loop (:func:`conveyor.watch.watch`), stopped after it."""
    stop = threading.Event()
    seen: list[CycleResult] = []

    def one(result: CycleResult) -> None:
        seen.append(result)
        stop.set()

    with Project.load(project) as proj:
        assert watch(proj, interval=3600, stop=stop, on_cycle=one) == 1
    check = seen[0].check
    assert check is not None, seen[0].check_error
    return check.drift.to_dict()


PATHS: dict[str, Callable[[Path], dict[str, Any]]] = {"monitor": _by_monitor, "watch": _by_watch}


def _columns(drift: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["column"]: c for c in drift["columns"]}


# --- what the defaults give -----------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_default_settings_on_large_batches_use_distances(
    project_with: Callable[[str, dict[str, Any]], Path], path: str
) -> None:
    drift = PATHS[path](project_with("large", {}))
    wage, region = _columns(drift)["wage"], _columns(drift)["region"]
    assert (wage["method"], wage["threshold"], wage["verdict"]) == ("wasserstein", 0.1, "drift")
    assert wage["statistic"] == pytest.approx(0.30, abs=0.01)
    assert (region["method"], region["threshold"], region["verdict"]) == (
        "jensenshannon",
        0.1,
        "ok",
    )
    assert (drift["share"], drift["share_drifted"], drift["dataset_drift"]) == (0.5, 0.5, True)


@pytest.mark.parametrize("path", PATHS)
def test_default_settings_on_small_batches_use_tests(
    project_with: Callable[[str, dict[str, Any]], Path], path: str
) -> None:
    drift = PATHS[path](project_with("small", {}))
    wage, region = _columns(drift)["wage"], _columns(drift)["region"]
    assert (wage["method"], wage["threshold"], wage["verdict"]) == ("ks", 0.05, "drift")
    assert 0.001 < wage["adjusted_p_value"] < 0.05
    assert (wage["missing_current"], wage["missing_changed"]) == (0.1, True)
    assert (region["method"], region["threshold"], region["verdict"]) == ("chi2", 0.05, "ok")
    assert drift["dataset_drift"] is True


# --- one key at a time ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``drift`` set in conveyor.yaml on the ``current`` batch, and what the check must show."""

    key: str  # the monitoring.drift key the case proves, ``columns.<key>`` for a column rule
    current: str
    drift: dict[str, Any]
    expect: dict[str, Any] = field(default_factory=dict)  # top-level report values
    wage: dict[str, Any] = field(default_factory=dict)  # the wage column's values
    region: dict[str, Any] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # columns left out of the report


CASES = [
    Case(
        "threshold",
        "large",
        {"threshold": 0.5},
        expect={"dataset_drift": False},
        wage={"threshold": 0.5, "verdict": "ok"},  # 0.30 < 0.5
        region={"threshold": 0.5},
    ),
    Case(
        "p_value",
        "small",
        {"p_value": 0.001},
        expect={"dataset_drift": False},
        wage={"threshold": 0.001, "verdict": "ok"},  # adjusted p 0.014 >= 0.001
        region={"threshold": 0.001},
    ),
    Case(
        "share",
        "large",
        {"share": 0.75},
        expect={"share": 0.75, "share_drifted": 0.5, "dataset_drift": False},
        wage={"verdict": "drift"},
    ),
    Case(
        "min_rows",
        "small",
        {"min_rows": 500},
        expect={"dataset_drift": None, "drifted_columns": []},
        wage={"verdict": "not enough data", "n_current": 270},
        region={"verdict": "not enough data", "n_current": 300},
    ),
    Case(
        "small_sample",
        "large",
        {"small_sample": 2000},
        wage={"method": "ks", "threshold": 0.05, "verdict": "drift"},
        region={"method": "chi2", "threshold": 0.05, "verdict": "ok"},
    ),
    Case(
        "missing_delta",
        "small",
        {"missing_delta": 0.2},
        wage={"missing_current": 0.1, "missing_changed": False},  # 0.1 - 0 <= 0.2
    ),
    Case(
        "columns.threshold",
        "large",
        {"columns": {"wage": {"threshold": 0.5}}},
        expect={"dataset_drift": False},
        wage={"threshold": 0.5, "verdict": "ok"},
        region={"threshold": 0.1},  # the default for the other columns
    ),
    Case(
        "columns.p_value",
        "small",
        {"columns": {"wage": {"p_value": 0.001}}},
        expect={"dataset_drift": False},
        wage={"threshold": 0.001, "verdict": "ok"},
        region={"threshold": 0.05},
    ),
    Case(
        "columns.method",
        "large",
        {"columns": {"wage": {"method": "ks"}}},
        wage={"method": "ks", "threshold": 0.05, "verdict": "drift"},
        region={"method": "jensenshannon"},
    ),
    Case(
        "columns.ignore",
        "large",
        {"columns": {"wage": {"ignore": True}}},
        expect={"dataset_drift": False, "drifted_columns": []},
        absent=("wage",),
    ),
]


def test_the_cases_cover_every_drift_config_key() -> None:
    """A new key in the drift section needs a case here."""
    keys = set(DriftConfig.model_fields) - {"columns"}
    keys |= {f"columns.{k}" for k in DriftColumnConfig.model_fields}
    assert {case.key for case in CASES} == keys


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.key)
def test_each_drift_config_key_reaches_the_detector(
    project_with: Callable[[str, dict[str, Any]], Path], path: str, case: Case
) -> None:
    drift = PATHS[path](project_with(case.current, case.drift))
    columns = _columns(drift)
    assert {k: drift[k] for k in case.expect} == case.expect
    for name, expected in (("wage", case.wage), ("region", case.region)):
        if name in case.absent:
            assert name not in columns
        else:
            assert {k: columns[name][k] for k in expected} == expected, name
