"""The train line through the CLI: init, run, cache, data change, --no-cache, runs, failures."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.errors import ModelNotFoundError
from conveyor.project import Project
from tests.e2e.conftest import conveyor, make_visa_project, steps_by_name

TRAIN_STEPS = [
    "ingest",
    "validate",
    "split",
    "tune_logreg",
    "tune_hgb",
    "tune_lightgbm",
    "train_logreg",
    "train_hgb",
    "train_lightgbm",
    "evaluate",
    "gate",
    "profile",
    "report",
    "register",
]


def _run_json(project: Path, *args: str, check: bool = True) -> tuple[Any, str, int]:
    proc = conveyor("run", "-p", project, "--json", *args, check=check)
    return json.loads(proc.stdout), proc.stderr, proc.returncode


def _datasets(project: Path) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(project / ".conveyor" / "conveyor.db") as db:
        rows = db.execute("SELECT fingerprint, n_rows, run_id FROM datasets").fetchall()
    db.close()
    return rows


def _flip_one_cell(csv: Path) -> None:
    """Change the target of the first data row (one cell, same shape)."""
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    head, last = lines[1].rstrip("\n").rsplit(",", 1)
    flipped = {"Certified": "Denied", "Denied": "Certified"}[last]
    lines[1] = f"{head},{flipped}\n"
    csv.write_text("".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One project taken through: run, run again, change a cell and run, run --no-cache."""
    project = make_visa_project(tmp_path_factory.mktemp("train") / "visa")
    out: dict[str, Any] = {"project": project}
    out["first"], out["first_err"], _ = _run_json(project)
    out["datasets_after_first"] = _datasets(project)
    out["second"], out["second_err"], _ = _run_json(project)
    _flip_one_cell(project / "data" / "visa.csv")
    out["edited"], out["edited_err"], _ = _run_json(project)
    out["nocache"], out["nocache_err"], _ = _run_json(project, "--no-cache")
    return out


def test_init_example_visa_writes_the_project(tmp_path: Path) -> None:
    proc = conveyor("init", tmp_path / "p", "--example", "visa")
    for name in ("conveyor.yaml", "schema.yaml", "data/visa.csv", ".gitignore"):
        assert (tmp_path / "p" / name).is_file(), name
        assert f"created {tmp_path / 'p' / name}" in proc.stdout
    config = yaml.safe_load((tmp_path / "p" / "conveyor.yaml").read_text(encoding="utf-8"))
    assert config["data"]["source"]["path"] == "data/visa.csv"
    assert config["registry"]["model"] == "visa-approval"
    header = (tmp_path / "p" / "data" / "visa.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    assert header.split(",")[-1] == "case_status"


def test_first_run_registers_version_1(history: dict[str, Any]) -> None:
    first, project = history["first"], history["project"]
    assert first["status"] == "succeeded"
    assert first["pipeline"] == "train"
    assert [s["name"] for s in first["steps"]] == TRAIN_STEPS
    assert {s["status"] for s in first["steps"]} == {"succeeded"}
    assert first["model"]["name"] == "visa-approval"
    assert first["model"]["version"] == 1
    assert 0.5 <= first["metrics"]["test.f1"] <= 1.0
    assert first["metrics"]["data.rows"] == 2000
    assert "model visa-approval:1 registered" in history["first_err"]
    with Project.load(project) as proj:
        mv = proj.metadata.get_model_version("visa-approval", 1)
    assert mv.digest == first["model"]["digest"]
    assert mv.run_id == first["run_id"]
    assert 0.5 <= mv.metrics["f1"] <= 1.0


def test_first_run_records_the_dataset_version(history: dict[str, Any]) -> None:
    first, project = history["first"], history["project"]
    [(fingerprint, n_rows, run_id)] = history["datasets_after_first"]
    assert n_rows == 2000
    assert run_id == first["run_id"]
    assert len(fingerprint) == 64
    with Project.load(project) as proj:
        assert proj.metadata.get_model_version("visa-approval", 1).dataset == fingerprint
        dataset = proj.load_artifact(steps_by_name(first)["ingest"]["outputs"]["dataset"])
    assert dataset.fingerprint == fingerprint
    assert dataset.rows == 2000


def test_second_run_with_nothing_changed_is_all_cached(history: dict[str, Any]) -> None:
    first, second = history["first"], history["second"]
    assert second["status"] == "succeeded"
    assert second["run_id"] != first["run_id"]
    assert [s["name"] for s in second["steps"]] == TRAIN_STEPS
    assert [s["status"] for s in second["steps"]] == ["cached"] * len(TRAIN_STEPS)
    assert all(s["cached_from"] is not None for s in second["steps"])
    # cached steps hand on exactly the artifacts of the first run
    for name in TRAIN_STEPS:
        assert steps_by_name(second)[name]["outputs"] == steps_by_name(first)[name]["outputs"]
    assert "nothing changed: all 14 steps cached" in history["second_err"]
    assert second["model"]["version"] == 1  # no new version for an unchanged run
    assert second["metrics"]["test.f1"] == first["metrics"]["test.f1"]


def test_changing_one_cell_reruns_ingest_and_registers_version_2(
    history: dict[str, Any],
) -> None:
    edited = history["edited"]
    steps = steps_by_name(edited)
    assert edited["status"] == "succeeded"
    assert steps["ingest"]["status"] == "succeeded"
    assert (
        steps["ingest"]["outputs"]["raw"]
        != steps_by_name(history["first"])["ingest"]["outputs"]["raw"]
    )
    assert edited["model"]["version"] == 2
    assert "nothing changed" not in history["edited_err"]
    assert len(_datasets(history["project"])) >= 2  # a second dataset version


def test_no_cache_reruns_every_step(history: dict[str, Any]) -> None:
    nocache = history["nocache"]
    assert nocache["status"] == "succeeded"
    assert [s["status"] for s in nocache["steps"]] == ["succeeded"] * len(TRAIN_STEPS)
    assert all(s["cached_from"] is None for s in nocache["steps"])
    assert nocache["model"]["version"] == 3
    with Project.load(history["project"]) as proj:
        assert proj.metadata.get_model_version("visa-approval").version == 3


def test_runs_list_is_newest_first(history: dict[str, Any]) -> None:
    runs = json.loads(conveyor("runs", "list", "-p", history["project"], "--json").stdout)
    expected = [history[k]["run_id"] for k in ("nocache", "edited", "second", "first")]
    assert [r["run_id"] for r in runs] == expected
    started = [r["started_at"] for r in runs]
    assert started == sorted(started, reverse=True)
    assert {r["status"] for r in runs} == {"succeeded"}
    assert runs[2]["steps"] == {"cached": 14}
    assert runs[3]["steps"] == {"succeeded": 14}
    table = conveyor("runs", "list", "-p", history["project"]).stdout
    for run_id in expected:
        assert run_id[:8] in table


def test_runs_show_by_prefix(history: dict[str, Any]) -> None:
    first = history["first"]
    shown = json.loads(
        conveyor("runs", "show", first["run_id"][:8], "-p", history["project"], "--json").stdout
    )
    assert shown["run_id"] == first["run_id"]
    assert [s["name"] for s in shown["steps"]] == TRAIN_STEPS
    assert shown["params"]["registry.model"] == "visa-approval"
    assert shown["params"]["data.target"] == "case_status"
    assert shown["metrics"]["test.f1"] == first["metrics"]["test.f1"]
    assert shown["tracebacks"] == {}
    text = conveyor("runs", "show", first["run_id"][:8], "-p", history["project"]).stdout
    assert first["run_id"] in text
    assert "train_hgb" in text
    assert "test.f1" in text


@pytest.mark.parametrize("prefix", ["%", "_", ""])
def test_runs_show_prefix_is_not_a_pattern(history: dict[str, Any], prefix: str) -> None:
    proc = conveyor("runs", "show", prefix, "-p", history["project"], check=False)
    assert proc.returncode == 1
    assert "run" in proc.stderr
    assert proc.stdout == ""


def test_step_times_do_not_overlap_with_one_worker(history: dict[str, Any]) -> None:
    # One worker runs steps one after another: each recorded [start, end] must end before the
    # next one starts, so `runs show` times are what each step really took.
    with sqlite3.connect(history["project"] / ".conveyor" / "conveyor.db") as db:
        rows = db.execute(
            "SELECT name, started_at, ended_at FROM steps WHERE run_id = ? ORDER BY started_at",
            (history["first"]["run_id"],),
        ).fetchall()
    db.close()
    assert len(rows) == len(TRAIN_STEPS)
    for (name, _, end), (next_name, next_start, _) in itertools.pairwise(rows):
        assert end <= next_start + 0.001, f"{name} ends {end - next_start:.3f} s into {next_name}"


# -- a failing step ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A visa project whose logreg candidate has a parameter LogisticRegression lacks."""
    project = make_visa_project(tmp_path_factory.mktemp("failing") / "visa")
    config_path = project / "conveyor.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    assert config["training"]["candidates"][0]["estimator"] == (
        "sklearn.linear_model.LogisticRegression"
    )
    config["training"]["candidates"][0]["params"] = {"bogus_param": 1}
    config["training"]["candidates"][0].pop("search")  # fail in training, not in tuning
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    summary, stderr, code = _run_json(project, check=False)
    return {"project": project, "summary": summary, "stderr": stderr, "code": code}


def test_failing_step_fails_the_run_and_skips_downstream(failed: dict[str, Any]) -> None:
    summary = failed["summary"]
    assert failed["code"] == 1
    assert summary["status"] == "failed"
    steps = steps_by_name(summary)
    assert steps["ingest"]["status"] == "succeeded"
    assert steps["split"]["status"] == "succeeded"
    assert steps["train_logreg"]["status"] == "failed"
    assert "bogus_param" in steps["train_logreg"]["error"]
    assert "training.candidates[logreg].params" in steps["train_logreg"]["error"]
    assert steps["train_hgb"]["status"] == "succeeded"  # independent of the failure
    assert steps["evaluate"]["status"] == "skipped"
    assert steps["register"]["status"] == "skipped"
    assert "train_logreg" in steps["evaluate"]["error"]
    assert summary["model"] is None
    assert "train_logreg" in summary["error"]
    runs = json.loads(conveyor("runs", "list", "-p", failed["project"], "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [(summary["run_id"], "failed")]


def test_failing_step_registers_no_model(failed: dict[str, Any]) -> None:
    with Project.load(failed["project"]) as proj:
        with pytest.raises(ModelNotFoundError):
            proj.metadata.get_model_version("visa-approval")
        assert proj.metadata.list_model_versions() == []


def test_failing_step_error_is_printed(failed: dict[str, Any]) -> None:
    stderr = failed["stderr"]
    assert "step train_logreg failed" in stderr
    assert "bogus_param" in stderr
    assert "LogisticRegression" in stderr
    assert f"conveyor runs show {failed['summary']['run_id'][:8]} --traceback" in stderr
    assert "Traceback" not in stderr  # one readable line; the traceback is one command away


def test_failing_step_error_names_the_candidate_on_screen(failed: dict[str, Any]) -> None:
    assert "training.candidates[logreg].params" in failed["stderr"]


def test_runs_show_traceback(failed: dict[str, Any]) -> None:
    run_id = failed["summary"]["run_id"]
    plain = conveyor("runs", "show", run_id[:8], "-p", failed["project"]).stdout
    assert "bogus_param" in plain
    assert "Traceback (most recent call last)" not in plain
    full = conveyor("runs", "show", run_id[:8], "-p", failed["project"], "--traceback").stdout
    assert "Traceback (most recent call last)" in full
    assert "ConfigError" in full
    assert "bogus_param" in full
    shown = json.loads(conveyor("runs", "show", run_id, "-p", failed["project"], "--json").stdout)
    assert set(shown["tracebacks"]) == {"train_logreg"}
    assert "Traceback (most recent call last)" in shown["tracebacks"]["train_logreg"]
