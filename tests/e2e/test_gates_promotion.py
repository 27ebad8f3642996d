"""Gates, champion/challenger, promotion, reproducibility and run comparison, end to end."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from conveyor.errors import ModelNotFoundError
from conveyor.examples.visa.generate import write_csv
from conveyor.project import Project
from conveyor.store.metadata import RunStatus
from tests.e2e.conftest import conveyor, make_visa_project

if TYPE_CHECKING:
    from pathlib import Path

ROWS = 1500


def _flip_target(csv: Path, row: int = 1) -> None:
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    head, last = lines[row].rstrip("\n").rsplit(",", 1)
    lines[row] = f"{head},{ {'Certified': 'Denied', 'Denied': 'Certified'}[last] }\n"
    csv.write_text("".join(lines), encoding="utf-8")


def test_a_gate_above_reach_gates_the_run_and_promotes_nothing(tmp_path: Path) -> None:
    project = make_visa_project(tmp_path / "visa", n_rows=ROWS)
    proc = conveyor(
        "run", "-p", project, "--json", "--set", "evaluation.gates.f1=>= 0.99", check=False
    )
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)
    assert summary["status"] == "gated"
    assert "gated at step register" in proc.stderr
    assert "f1" in proc.stderr and "needs >= 0.99" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert summary["model"]["status"] == "rejected"
    assert summary["model"]["alias"] is None
    with Project.load(project) as proj:
        version = proj.metadata.get_model_version("visa-approval", 1)
        assert version.status == "rejected"
        assert "failed gates: f1" in (version.reason or "")
        with pytest.raises(ModelNotFoundError):
            proj.metadata.get_alias("visa-approval", "production")
        assert proj.metadata.list_runs()[0].status is RunStatus.GATED
    report = summary["report"]
    assert report and report.endswith(".html")


def test_the_same_data_config_and_seed_give_a_bit_identical_model(tmp_path: Path) -> None:
    digests = []
    for name in ("one", "two"):
        project = make_visa_project(tmp_path / name, n_rows=ROWS)
        with Project.load(project) as proj:
            result = proj.run()
            assert result.ok, result.failures
            digests.append(
                (
                    result.outputs["model"].digest,
                    [
                        (t["candidate"], t["number"], t["params"], t["value"])
                        for t in proj.metadata.list_trials(result.run_id)
                    ],
                )
            )
    assert digests[0][0] == digests[1][0]
    assert digests[0][1] == digests[1][1]
    assert len(digests[0][1]) == 9  # 3 candidates x 3 trials, every one recorded


def test_champion_challenger_and_run_comparison(tmp_path: Path) -> None:
    project = make_visa_project(tmp_path / "visa", n_rows=ROWS)
    with Project.load(project) as proj:
        first = proj.run()
        assert first.ok
        assert proj.metadata.get_alias("visa-approval", "production") == 1

    # new data, and a margin no model can meet: v2 is recorded as rejected, v1 stays
    _flip_target(project / "data" / "visa.csv")
    with Project.load(project, overrides=["evaluation.min_improvement=1.0"]) as proj:
        second = proj.run()
        assert second.ok, second.failures  # losing to the champion is not a failure
        v2 = proj.metadata.get_model_version("visa-approval", 2)
        assert v2.status == "rejected"
        assert "does not beat champion v1" in (v2.reason or "")
        assert proj.metadata.get_alias("visa-approval", "production") == 1
        metrics = proj.metadata.get_run(second.run_id).metrics
        assert metrics["decision.promoted"] == 0.0
        assert "decision.champion" in metrics

    # fresh data again, no margin: the challenger is judged against v1 on the same test set
    write_csv(project / "data" / "visa.csv", n_rows=ROWS, seed=7)
    with Project.load(project) as proj:
        third = proj.run()
        assert third.ok
        v3 = proj.metadata.get_model_version("visa-approval", 3)
        promoted = proj.metadata.get_alias("visa-approval", "production") == 3
        assert promoted is (v3.status == "approved")
        assert "champion v1" in (v3.reason or "")

    compared = conveyor(
        "runs", "compare", first.run_id[:8], second.run_id[:8], "-p", project, "--json"
    )
    data = json.loads(compared.stdout)
    assert data["params"] == {"evaluation.min_improvement": [0.0, 1.0]}
    assert len(data["metrics"]["test.f1"]) == 2
    shown = conveyor("runs", "show", first.run_id[:8], "-p", project)
    assert "tuning" in shown.stdout and "lightgbm" in shown.stdout


def test_require_approval_leaves_the_winner_a_candidate(tmp_path: Path) -> None:
    project = make_visa_project(tmp_path / "visa", n_rows=ROWS)
    with Project.load(project, overrides=["registry.promote.require_approval=true"]) as proj:
        assert proj.run().ok
        version = proj.metadata.get_model_version("visa-approval", 1)
        assert version.status == "candidate"
        assert "waiting for approval" in (version.reason or "")
        with pytest.raises(ModelNotFoundError):
            proj.metadata.get_alias("visa-approval", "production")
