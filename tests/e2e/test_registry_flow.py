"""The registry end to end: train twice on different data, promote, roll back, approve, archive,
and follow lineage both ways and the audit log."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

import pytest

from conveyor.examples.visa.generate import write_csv
from conveyor.project import Project
from conveyor.registry import governance
from conveyor.store.metadata import ArtifactRef
from tests.e2e.conftest import conveyor, make_visa_project

if TYPE_CHECKING:
    from pathlib import Path

ROWS = 1500
NAME = "visa-approval"


@pytest.fixture(scope="module")
def trained_twice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 on one dataset (production), v2 on another (staging: no champion there)."""
    project = make_visa_project(tmp_path_factory.mktemp("registry") / "visa", n_rows=ROWS)
    conveyor("run", "-p", project)
    write_csv(project / "data" / "visa.csv", n_rows=ROWS, seed=11)
    conveyor("run", "-p", project, "--set", "registry.promote.alias=staging")
    return project


def _aliases(project: Path) -> dict[str, int]:
    with Project.load(project) as proj:
        return {alias: v for (_, alias), v in proj.metadata.aliases(NAME).items()}


def test_promote_then_rollback_restores_the_previous_version(trained_twice: Path) -> None:
    assert _aliases(trained_twice) == {"production": 1, "staging": 2}
    done = conveyor(
        "models", "promote", NAME, "2", "--reason", "staging looked good", "-p", trained_twice
    )
    assert "production: v1 -> v2" in done.stdout
    assert _aliases(trained_twice)["production"] == 2

    back = conveyor(
        "models", "rollback", NAME, "--reason", "latency regression", "-p", trained_twice
    )
    assert "production: v2 -> v1" in back.stdout
    assert _aliases(trained_twice)["production"] == 1
    assert "rolled back in" in back.stdout
    with Project.load(trained_twice) as proj:
        last = proj.metadata.alias_history(NAME, "production")[-1]
        assert (last["action"], last["version"], last["previous_version"]) == ("rollback", 1, 2)
        assert last["reason"] == "latency regression"
    again = conveyor("models", "rollback", NAME, "--reason", "x", "-p", trained_twice, check=False)
    assert again.returncode == 1
    assert "no earlier version" in again.stderr


def test_rollback_cli_goes_back_one_promotion_or_to_the_version_given(tmp_path: Path) -> None:
    """Four promotions (registered directly: no training needed to move aliases); the CLI goes
    back one step, then ``--to`` jumps past the version a plain rollback would pick."""
    project = tmp_path / "registry"
    project.mkdir()
    (project / "conveyor.yaml").write_text(
        "project: registry\nregistry: {model: fraud, promote: {alias: live}}\n", encoding="utf-8"
    )
    with Project.load(project) as proj:
        for version in (1, 2, 3, 4):
            digest = f"{version:064x}"
            proj.metadata.record_artifacts([ArtifactRef(f"m{version}", digest, "pickle", 1)])
            proj.metadata.register_model_version("fraud", digest=digest, run_id=None)
            governance.promote(proj.metadata, "fraud", version, alias="live", reason="ship")

    back = conveyor("models", "rollback", "fraud", "-r", "slow", "-p", project)
    assert "fraud@live: v4 -> v3" in back.stdout
    jump = conveyor("models", "rollback", "fraud", "--to", "1", "-r", "bad week", "-p", project)
    assert "fraud@live: v3 -> v1" in jump.stdout  # a plain rollback would give v2
    with Project.load(project) as proj:
        assert proj.metadata.get_alias("fraud", "live") == 1
        last = proj.metadata.alias_history("fraud", "live")[-1]
        assert (last["action"], last["previous_version"], last["version"]) == ("rollback", 3, 1)
        assert last["reason"] == "bad week"


def test_lineage_both_ways(trained_twice: Path) -> None:
    one = json.loads(conveyor("lineage", f"{NAME}:1", "-p", trained_twice, "--json").stdout)
    two = json.loads(conveyor("lineage", f"{NAME}:2", "-p", trained_twice, "--json").stdout)
    assert one["dataset"]["fingerprint"] != two["dataset"]["fingerprint"]
    assert one["dataset"]["n_rows"] == ROWS
    assert one["run"]["id"] == one["model"]["run_id"]
    assert one["run"]["params"]["data.split.seed"] == 42
    assert {c["candidate"] for c in one["candidates"]} == {"logreg", "hgb", "lightgbm"}
    assert sum(c["chosen"] for c in one["candidates"]) == 1
    assert one["trials"]["hgb"]["trials"] == 3
    assert [g["metric"] for g in one["gates"]] == ["f1", "roc_auc"]
    assert one["decision"]["reason"] == "no current champion"
    assert any(h["action"] == "promote" for h in one["alias_history"])

    fingerprint = one["dataset"]["fingerprint"][:12]
    back = json.loads(
        conveyor("lineage", "--dataset", fingerprint, "-p", trained_twice, "--json").stdout
    )
    assert [m["model"] for m in back["models"]] == [f"{NAME}:1"]
    text = conveyor("lineage", f"{NAME}:1", "-p", trained_twice).stdout
    assert "dataset" in text and "candidate hgb" in text and "served as" in text


def test_audit_log_records_who_did_what_and_why(trained_twice: Path) -> None:
    events = json.loads(conveyor("audit", "-p", trained_twice, "--json").stdout)
    actions = [(e["action"], e["entity"]) for e in events]
    assert ("register", f"{NAME}:1") in actions
    assert ("promote", f"{NAME}:1") in actions
    assert ("register", f"{NAME}:2") in actions
    assert all(e["actor"] for e in events)
    rows = list(csv.DictReader(io.StringIO(conveyor("audit", "-p", trained_twice, "--csv").stdout)))
    assert len(rows) == len(events)
    assert set(rows[0]) == {"id", "at", "actor", "action", "entity", "reason", "details"}


def test_a_rejected_version_can_never_be_aliased(tmp_path: Path) -> None:
    project = make_visa_project(tmp_path / "visa", n_rows=ROWS)
    conveyor("run", "-p", project, "--set", "evaluation.gates.f1=>= 0.99", check=False)
    proc = conveyor(
        "models", "promote", NAME, "1", "--reason", "please", "-p", project, check=False
    )
    assert proc.returncode == 1
    assert "rejected" in proc.stderr and "can never be given an alias" in proc.stderr
    assert _aliases(project) == {}


def test_approval_flow_and_archive(tmp_path: Path) -> None:
    project = make_visa_project(tmp_path / "visa", n_rows=ROWS)
    config = project / "conveyor.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "require_approval: false", "require_approval: true"
        ),
        encoding="utf-8",
    )
    conveyor("run", "-p", project)
    with Project.load(project) as proj:
        assert proj.metadata.get_model_version(NAME, 1).status == "candidate"
    refused = conveyor(
        "models", "promote", NAME, "1", "--reason", "now", "-p", project, check=False
    )
    assert refused.returncode == 1 and "needs approval first" in refused.stderr

    approved = conveyor(
        "models",
        "approve",
        NAME,
        "1",
        "--reason",
        "reviewed the report",
        "-p",
        project,
        env={"CONVEYOR_ACTOR": "alice"},
    )
    assert "approved" in approved.stdout
    assert _aliases(project) == {"production": 1}
    busy = conveyor("models", "archive", NAME, "1", "--reason", "old", "-p", project, check=False)
    assert busy.returncode == 1 and "move the alias first" in busy.stderr

    events = json.loads(conveyor("audit", "-p", project, "--json", "--model", NAME).stdout)
    approve = next(e for e in events if e["action"] == "approve")
    assert (approve["actor"], approve["reason"]) == ("alice", "reviewed the report")


def test_reproduce_rebuilds_a_bit_identical_model(trained_twice: Path) -> None:
    proc = conveyor("reproduce", f"{NAME}:2", "-p", trained_twice, "--json", timeout=300)
    outcome = json.loads(proc.stdout)
    assert outcome["digest_match"] is True, outcome
    assert outcome["metrics_match"] is True
    assert outcome["notes"] == []
    assert "model artifact identical" in proc.stderr
    with Project.load(trained_twice) as proj:  # the scratch run touched nothing here
        assert len(proj.metadata.list_model_versions(NAME)) == 2
