"""A project whose conveyor.yaml names a third-party source and alert channel, driven through
the CLI: the plugin package is found through its entry points on PYTHONPATH."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd
import pytest
import yaml

from conveyor.examples.visa.generate import generate
from tests.e2e.conftest import conveyor, make_visa_project
from tests.plugins.conftest import DEMO

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow
MODEL = "visa-approval"


def _use_plugins(project: Path, alerts: Path) -> None:
    """Move the training table to JSON lines (read by the ``jsonl`` source) and send alerts to
    the ``file`` channel."""
    frame = pd.read_csv(project / "data" / "visa.csv")
    frame.to_json(project / "data" / "visa.jsonl", orient="records", lines=True)
    (project / "data" / "visa.csv").unlink()
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["data"]["source"] = {"type": "jsonl", "path": "data/visa.jsonl"}
    config.setdefault("monitoring", {})["alerts"] = [
        {"type": "file", "on": "any", "options": {"path": str(alerts)}}
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def test_a_plugin_source_trains_and_a_plugin_channel_alerts(tmp_path: Path) -> None:
    project = make_visa_project(tmp_path / "visa")
    alerts = tmp_path / "alerts.jsonl"
    _use_plugins(project, alerts)
    env = {"PYTHONPATH": str(DEMO)}

    # without the plugin package, the config names what is missing and what is available
    refused = conveyor("run", "-p", project, check=False)
    assert refused.returncode != 0
    assert "data.source.type: unknown data source 'jsonl'" in refused.stderr
    assert "available: csv, parquet, sql, mongodb" in refused.stderr

    run = json.loads(conveyor("run", "-p", project, "--json", env=env).stdout)
    assert run["status"] == "succeeded", run
    versions = json.loads(conveyor("models", "list", "-p", project, "--json", env=env).stdout)
    assert [(v["name"], v["version"], v["aliases"]) for v in versions] == [
        (MODEL, 1, ["production"])
    ]
    lineage = conveyor("lineage", f"{MODEL}:1", "-p", project, env=env).stdout
    assert f"jsonl:{project / 'data' / 'visa.jsonl'}" in lineage

    again = json.loads(conveyor("run", "-p", project, "--json", env=env).stdout)
    ingest = next(s for s in again["steps"] if s["name"] == "ingest")
    assert ingest["status"] == "cached"  # the plugin's checksum makes the ingest cacheable

    drifted = generate(n_rows=2000, seed=32, drift=True, dirt=False)
    drifted.to_csv(tmp_path / "batch.csv", index=False)
    checked = conveyor("monitor", "--current", tmp_path / "batch.csv", "-p", project, env=env)
    assert "alerts sent: file, file" in checked.stdout  # drifted columns, drifted predictions
    sent = [json.loads(line) for line in alerts.read_text(encoding="utf-8").splitlines()]
    assert [a["kind"] for a in sent] == ["column", "prediction"]
    assert sent[0]["key"] == f"column:{MODEL}:continent,prevailing_wage"
    assert {a["model"] for a in sent} == {MODEL}
