"""conveyor.yaml is validated once, at load: a typo fails before any step runs (issue 13)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from conveyor.store.metadata import open_metadata_store
from tests.e2e.conftest import conveyor

if TYPE_CHECKING:
    from pathlib import Path


def _edit(project: Path, edit: dict[str, object]) -> None:
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for candidate in config["training"]["candidates"]:
        if candidate["name"] == "hgb":
            candidate["search"] = edit
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def test_a_bad_search_space_fails_the_run_before_any_step(visa_project: Path) -> None:
    _edit(visa_project, {"learning_rate": {"low": 0.3, "high": 0.02, "log": True}})
    proc = conveyor("run", "-p", visa_project, check=False)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert (
        "conveyor.yaml: training.candidates[1].search.learning_rate: low (0.3) is greater than "
        "high (0.02)"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ingest" not in proc.stdout  # no step started
    database = visa_project / ".conveyor" / "conveyor.db"
    if database.exists():  # nothing recorded either
        store = open_metadata_store(f"sqlite:///{database}")
        try:
            assert store.list_runs() == []
        finally:
            store.close()
    listed = conveyor("runs", "list", "-p", visa_project, check=False)  # any command that loads
    assert listed.returncode in (1, 2)
    assert "search.learning_rate: low (0.3)" in listed.stderr
