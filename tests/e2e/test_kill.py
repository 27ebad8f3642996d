"""SIGKILL in the middle of a step: the store stays consistent and the next run resumes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._consistency import CONTENT, INCOMING, assert_consistent
from tests.e2e.conftest import conveyor, spawn_conveyor, steps_by_name

pytestmark = pytest.mark.slow

STEPS_MOD = '''\
"""A three-step pipeline whose middle step can be made to hang."""

import time
from pathlib import Path

import pandas as pd

from conveyor.pipeline import Pipeline, Step

MARKER = str(Path(__file__).resolve().parent / "second.started")


def first():
    return pd.DataFrame({"x": range(5000), "label": ["a", "b"] * 2500})


def second(df, *, marker):
    Path(marker).write_text("started", encoding="utf-8")
    time.sleep(60)
    return df.assign(y=df["x"] * 2)


def third(doubled):
    return {"rows": len(doubled), "total": int(doubled["y"].sum())}


def make_pipeline(config):
    return Pipeline(
        [
            Step(first, "first", inputs={}, outputs=("raw",)),
            Step(second, "second", inputs={"df": "raw"}, outputs=("doubled",),
                 params={"marker": MARKER}),
            Step(third, "third", inputs={"doubled": "doubled"}, outputs=("summary",)),
        ]
    )
'''

CONFIG = """\
project: killed
store: {metadata: "sqlite:///.conveyor/conveyor.db", artifacts: .conveyor/artifacts}
pipelines: {slow: "steps_mod:make_pipeline"}
"""


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Start `conveyor run slow`, SIGKILL it while `second` sleeps, then look at the store."""
    project = tmp_path_factory.mktemp("kill") / "proj"
    project.mkdir()
    (project / "conveyor.yaml").write_text(CONFIG, encoding="utf-8")
    (project / "steps_mod.py").write_text(STEPS_MOD, encoding="utf-8")
    marker = project / "second.started"
    proc = spawn_conveyor(
        "run", "slow", "-p", project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"conveyor run ended early ({proc.returncode}):\n{out}\n{err}")
            if time.monotonic() > deadline:
                pytest.fail("step `second` did not start within 30 s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    result: dict[str, Any] = {"project": project, "returncode": proc.returncode, "stderr": err}
    # what a user sees first: `runs show` (before anything else touched the store), then `runs list`
    runs_before = _db_rows(project, "SELECT id, status FROM runs")
    assert len(runs_before) == 1, runs_before
    result["run_id"] = runs_before[0][0]
    result["status_in_db_after_kill"] = runs_before[0][1]
    result["shown"] = json.loads(
        conveyor("runs", "show", result["run_id"][:8], "-p", project, "--json").stdout
    )
    result["listed"] = json.loads(conveyor("runs", "list", "-p", project, "--json").stdout)
    result["shown_after_list"] = json.loads(
        conveyor("runs", "show", result["run_id"], "-p", project, "--json").stdout
    )
    return result


def _db_rows(project: Path, query: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(project / ".conveyor" / "conveyor.db")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_the_process_was_killed_mid_step(killed: dict[str, Any]) -> None:
    assert killed["returncode"] == -signal.SIGKILL
    assert killed["status_in_db_after_kill"] == "running"  # nobody had a chance to clean up


def test_runs_list_marks_the_killed_run_interrupted(killed: dict[str, Any]) -> None:
    [run] = killed["listed"]
    assert run["run_id"] == killed["run_id"]
    assert run["pipeline"] == "slow"
    assert run["status"] == "interrupted"
    steps = steps_by_name(killed["shown_after_list"])
    assert killed["shown_after_list"]["status"] == "interrupted"
    assert killed["shown_after_list"]["error"] == "process died"
    assert steps["first"]["status"] == "succeeded"
    assert steps["second"]["status"] == "interrupted"
    assert steps["third"]["status"] == "skipped"
    assert steps["first"]["outputs"].keys() == {"raw"}
    assert steps["second"]["outputs"] == {}


def test_runs_show_alone_already_reports_the_run_interrupted(killed: dict[str, Any]) -> None:
    assert killed["shown"]["status"] == "interrupted"


def test_every_recorded_artifact_is_stored_whole(killed: dict[str, Any]) -> None:
    project = killed["project"]
    root = project / ".conveyor" / "artifacts"
    rows = _db_rows(project, "SELECT digest, size FROM artifacts")
    assert rows, "the finished step `first` recorded its output"
    for digest, size in rows:
        path = root / "sha256" / digest[:2] / digest
        assert path.is_file(), f"artifact row {digest} has no bytes at {path}"
        data = path.read_bytes()
        assert len(data) == size
        assert hashlib.sha256(data).hexdigest() == digest
    # anything under its final name is whole (a crash never leaves a torn artifact there)
    for path in (root / "sha256").rglob("*"):
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
            assert path.parent.name == path.name[:2]


def test_no_temp_file_is_counted_as_an_artifact(killed: dict[str, Any]) -> None:
    project = killed["project"]
    root = project / ".conveyor" / "artifacts"
    recorded = {d for (d,) in _db_rows(project, "SELECT digest FROM artifacts")}
    # the store writes bytes to incoming/<digest>.<uuid>.part, then renames them into sha256/
    incoming = root / INCOMING
    assert incoming.is_dir(), f"the artifact store no longer writes through {incoming}"
    assert {p.name for p in root.iterdir()} == {INCOMING, CONTENT}
    # the kill came while `second` slept: `first` had renamed its bytes into place (its temporary
    # name gone with the rename) and nothing was being written
    assert sorted(p.name for p in incoming.iterdir()) == []
    referenced = {d for (d,) in _db_rows(project, "SELECT digest FROM step_artifacts")}
    assert recorded and referenced <= recorded


def test_a_torn_temporary_file_is_never_an_artifact(killed: dict[str, Any], tmp_path: Path) -> None:
    """What a kill mid-write leaves (part of the bytes under incoming/<digest>.<uuid>.part), on a
    copy of the killed project: the store reads past it, the checker counts it as stray."""
    from conveyor.project import Project

    project = tmp_path / "proj"
    shutil.copytree(killed["project"], project)
    root = project / ".conveyor" / "artifacts"
    [(recorded,)] = _db_rows(project, "SELECT digest FROM artifacts")  # `first`'s output
    whole = (root / CONTENT / recorded[:2] / recorded).read_bytes()
    unfinished = whole + b" and more"  # bytes whose write never finished
    unfinished_digest = hashlib.sha256(unfinished).hexdigest()
    torn = {recorded: whole[: len(whole) // 2], unfinished_digest: unfinished[:100]}
    names = []
    for digest, data in torn.items():
        path = root / INCOMING / f"{digest}.{uuid.uuid4().hex}.part"
        path.write_bytes(data)
        names.append(path.name)

    with Project.load(project) as proj:
        assert proj.artifacts.get_bytes(recorded) == whole
        assert not proj.artifacts.exists(unfinished_digest)
    state = assert_consistent(project)
    assert sorted(state.stray) == sorted(names)
    assert state.artifact_rows == 1


def test_the_consistency_checker_finds_nothing_wrong(killed: dict[str, Any]) -> None:
    state = assert_consistent(killed["project"])
    assert state.incoming_seen
    assert state.runs == {killed["run_id"]: "interrupted"}
    assert state.artifact_rows >= 1


def test_rerun_after_fixing_the_step_resumes_from_the_cache(killed: dict[str, Any]) -> None:
    project = killed["project"]
    mod = project / "steps_mod.py"
    source = mod.read_text(encoding="utf-8")
    assert "    time.sleep(60)\n" in source
    mod.write_text(source.replace("    time.sleep(60)\n", ""), encoding="utf-8")
    proc = conveyor("run", "slow", "-p", project, "--json")
    summary = json.loads(proc.stdout)
    steps = steps_by_name(summary)
    assert summary["status"] == "succeeded"
    assert steps["first"]["status"] == "cached"
    assert (
        steps["first"]["outputs"] == steps_by_name(killed["shown_after_list"])["first"]["outputs"]
    )
    assert steps["second"]["status"] == "succeeded"
    assert steps["third"]["status"] == "succeeded"
    runs = json.loads(conveyor("runs", "list", "-p", project, "--json").stdout)
    assert [r["status"] for r in runs] == ["succeeded", "interrupted"]
