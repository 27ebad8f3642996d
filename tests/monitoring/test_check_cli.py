"""`conveyor monitor` on a file with labels (performance), its report, and `conveyor watch`
stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.examples.visa.generate import generate
from conveyor.monitoring.monitor import check
from conveyor.project import Project
from tests.e2e.conftest import RUNNER_ENV, conveyor, spawn_conveyor
from tests.monitoring.test_drift_config_reaches_detector import CURRENT, monitored_project

pytestmark = pytest.mark.slow
MODEL = "visa-approval"


@pytest.fixture
def project(trained_visa: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_visa, tmp_path / "p"))


def test_labels_give_the_training_metrics_on_current_rows(project: Path) -> None:
    from sklearn.metrics import f1_score

    frame = generate(n_rows=3000, seed=31, dirt=False)
    with Project.load(project) as proj:
        result = check(
            proj.metadata,
            proj.artifacts,
            f"{MODEL}@production",
            current=frame.drop(columns=["case_status"]),
            source="batch.csv",
            labels=frame[["case_id", "case_status"]],
            label_key="case_id",
            target="case_status",
        )
        model = proj.load_model(f"{MODEL}@production")
        record = proj.metadata.get_model_version(MODEL, 1)
    expected = f1_score(
        frame["case_status"],
        model.predict(frame.drop(columns=["case_status"])),
        pos_label="Certified",
    )
    assert result.performance is not None and result.performance.rows == 3000
    perf = result.performance.by_name()
    assert perf["f1"].current == pytest.approx(expected)
    assert perf["f1"].training == pytest.approx(record.metrics["f1"])
    assert perf["f1"].change == pytest.approx(expected - record.metrics["f1"])
    assert {"roc_auc", "accuracy", "log_loss"} <= set(perf)
    assert result.drift.drifted_columns == []
    # the report: JSON and a self-contained page, stored and linked by an audit event
    assert result.report["performance"] == result.performance.to_json()
    html = result.html.decode()
    assert "Drift report" in html and html.count("data:image/png;base64,") == 12
    assert "http://" not in html and "https://" not in html
    with Project.load(project) as proj:
        event = [e for e in proj.metadata.list_events(entity=f"{MODEL}:1")][-1]
        assert event.action == "monitor.check"
        assert event.details["html"] == result.html_digest
        assert proj.artifacts.get_bytes(result.html_digest) == result.html


def test_monitor_cli_prints_the_table_and_writes_the_report(project: Path, tmp_path: Path) -> None:
    drifted = generate(n_rows=2000, seed=32, drift=True, dirt=False)
    drifted.to_csv(tmp_path / "batch.csv", index=False)
    done = conveyor(
        "monitor",
        "--current",
        tmp_path / "batch.csv",
        "--no-alerts",
        "--fail-on-drift",
        "-p",
        project,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # 2 of 10 columns: no dataset drift
    assert "drift in continent, prevailing_wage" in done.stdout
    report = Path(done.stdout.split("report: ")[1].split()[0])
    assert report.is_file() and report.parent == project / ".conveyor" / "reports"
    data = json.loads(
        conveyor(
            "monitor", "--current", tmp_path / "batch.csv", "--no-alerts", "--json", "-p", project
        ).stdout
    )
    assert set(data["drift"]["drifted_columns"]) == {"continent", "prevailing_wage"}
    assert data["drift"]["prediction_drift"] is True


def test_fail_on_drift_exits_1_on_dataset_drift_and_0_without(tmp_path: Path) -> None:
    """For CI: ``--fail-on-drift`` turns dataset drift (wage drifted: 1 of 2 columns reaches
    share 0.5) into exit code 1; a batch like the reference exits 0. The projects are made by
    hand: the check reads a logged batch (without the flag, drift exits 0: see
    test_drift_config_reaches_detector)."""
    drifted = monitored_project(tmp_path / "drifted", CURRENT["large"])
    calm = monitored_project(tmp_path / "calm", CURRENT["calm"])

    failed = conveyor("monitor", "--fail-on-drift", "--no-alerts", "-p", drifted, check=False)
    assert failed.returncode == 1, failed.stderr
    assert "drift in wage (1/2 columns, dataset drift)" in failed.stdout
    assert "report: " in failed.stdout  # the report is written before the exit

    # in-process: the same command, without a second interpreter start-up
    passed = CliRunner(env=RUNNER_ENV).invoke(
        app, ["monitor", "--fail-on-drift", "--no-alerts", "-p", str(calm)]
    )
    assert passed.exit_code == 0, passed.output
    assert "no drift" in passed.stdout


def test_watch_stops_cleanly_on_sigterm(project: Path) -> None:
    proc = spawn_conveyor(
        "watch",
        "--interval",
        "1",
        "-p",
        project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        with Project.load(project) as proj:
            while not [e for e in proj.metadata.list_events() if e.action == "watch.cycle"]:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no watch cycle"
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopping after this cycle" in out
    assert "not enough data" in out  # nothing served yet: no verdict


def test_watch_once_without_a_profile_explains(tmp_path: Path) -> None:
    done = conveyor("watch", "--once", "-p", tmp_path, check=False)
    assert done.returncode == 1 and "conveyor.yaml" in done.stderr
