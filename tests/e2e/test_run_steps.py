"""`conveyor run --run-id KEY --step NAME` as an orchestrator drives it: one process per step,
in DAG order, a step started too early, a step killed mid-way and run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import conveyor, conveyor_json, spawn_conveyor

pytestmark = pytest.mark.slow


def test_the_train_line_step_by_step_equals_a_whole_run(visa_project: Path) -> None:
    planned = conveyor_json("run", "--plan", "--run-id", "job-42", "-p", visa_project)
    steps = [s["name"] for s in planned["steps"]]
    assert {s["status"] for s in planned["steps"]} == {"pending"}

    early = conveyor(
        "run", "--run-id", "job-42", "--step", "split", "-p", visa_project, check=False
    )
    assert early.returncode == 1
    assert "cannot run yet: it needs 'clean' from step 'validate' (pending)" in early.stderr

    summaries = visa_project / "out"
    for name in steps:
        extra = ["--gate-passed", summaries / "passed"] if name == "gate" else []
        conveyor(
            "run", "--run-id", "job-42", "--step", name, "-p", visa_project,
            "--summary", summaries / f"{name}.json", *extra,
        )  # fmt: skip
    done = {n: json.loads((summaries / f"{n}.json").read_text()) for n in steps}
    assert {d["run_id"] for d in done.values()} == {planned["run_id"]}
    assert {d["status"] for d in done.values()} == {"succeeded"}
    assert done[steps[-1]]["run_status"] == "succeeded"
    assert done["gate"]["gate"]["passed"] is True
    assert (summaries / "passed").read_text() == "true"

    again = conveyor_json("run", "--run-id", "job-42", "--step", "ingest", "-p", visa_project)
    assert again["already_done"] is True

    # the same line run whole reuses every step: same cache keys, same bytes, same model
    whole = conveyor_json("run", "-p", visa_project)
    assert {s["status"] for s in whole["steps"]} == {"cached"}
    assert whole["model"]["digest"] == done["evaluate"]["outputs"]["model"]


HANGING = '''\
"""Three steps; the middle one hangs while the file `hang` exists next to this module."""

import time
from pathlib import Path

from conveyor.pipeline import Pipeline, Step

HERE = Path(__file__).resolve().parent


def first():
    return {"n": 21}


def second(raw):
    (HERE / "second.started").write_text("started", encoding="utf-8")
    while (HERE / "hang").exists():
        time.sleep(0.05)
    return {"n": raw["n"] * 2}


def third(doubled):
    return doubled["n"]


def make_pipeline(config):
    return Pipeline(
        [
            Step(first, "first", inputs={}, outputs=("raw",)),
            Step(second, "second", inputs={"raw": "raw"}, outputs=("doubled",)),
            Step(third, "third", inputs={"doubled": "doubled"}, outputs=("answer",)),
        ]
    )
'''


def test_a_step_killed_mid_way_is_taken_over_when_run_again(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "conveyor.yaml").write_text(
        "project: hang\npipelines: {line: 'steps_mod:make_pipeline'}\n", encoding="utf-8"
    )
    (project / "steps_mod.py").write_text(HANGING, encoding="utf-8")
    conveyor("run", "line", "--run-id", "exec-7", "--step", "first", "-p", project)
    (project / "hang").write_text("", encoding="utf-8")
    proc = spawn_conveyor(
        "run", "line", "--run-id", "exec-7", "--step", "second", "-p", project,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (project / "second.started").exists():
            assert proc.poll() is None, "the step ended before it was killed"
            assert time.monotonic() < deadline, "step `second` did not start within 60 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # what a platform does to a step's container
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    record = conveyor_json("runs", "list", "-p", project)
    assert [r["status"] for r in record] == ["running"]  # nobody holds it: not "interrupted"

    (project / "hang").unlink()
    retried = conveyor_json("run", "line", "--run-id", "exec-7", "--step", "second", "-p", project)
    assert retried["status"] == "succeeded" and retried["already_done"] is False
    last = conveyor_json("run", "line", "--run-id", "exec-7", "--step", "third", "-p", project)
    assert last["run_status"] == "succeeded"
    shown = conveyor_json("runs", "show", last["run_id"], "-p", project)
    assert [s["status"] for s in shown["steps"]] == ["succeeded"] * 3
