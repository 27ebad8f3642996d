"""The run page of a run in progress: its DAG changes as the steps finish, without a reload."""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import require_module
from tests.e2e.conftest import spawn_conveyor
from tests.ui.conftest import running_ui

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.ui.conftest import Server, Tab

pytestmark = pytest.mark.slow

STEPS_MOD = '''\
"""Three steps; the middle one waits until the test lets it go."""

import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load():
    return {"rows": 100}


def wait(raw, *, started, release):
    Path(started).write_text("started", encoding="utf-8")
    deadline = time.monotonic() + 120
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"rows": raw["rows"] * 2}


def summarise(doubled):
    return {"total": doubled["rows"]}


def make_pipeline(config):
    from conveyor.pipeline import Pipeline, Step

    return Pipeline(
        [
            Step(load, "load", inputs={}, outputs=("raw",)),
            Step(wait, "wait", inputs={"raw": "raw"}, outputs=("doubled",),
                 params={"started": str(HERE / "wait.started"),
                         "release": str(HERE / "wait.release")}),
            Step(summarise, "summarise", inputs={"doubled": "doubled"}, outputs=("summary",)),
        ]
    )
'''

CONFIG = """\
project: live
store: {metadata: "sqlite:///.conveyor/conveyor.db", artifacts: .conveyor/artifacts}
pipelines: {slow: "steps_mod:make_pipeline"}
"""

STEP = "[data-step='{name}']"
"""How the run page marks a step's box in the DAG (its status in ``data-status``)."""


@pytest.fixture
def live_project(tmp_path: Path) -> Path:
    project = tmp_path / "live"
    project.mkdir()
    (project / "conveyor.yaml").write_text(CONFIG, encoding="utf-8")
    (project / "steps_mod.py").write_text(STEPS_MOD, encoding="utf-8")
    return project


@pytest.fixture
def waiting_run(live_project: Path) -> Iterator[str]:
    """`conveyor run slow` held in its step `wait` (released by creating ``wait.release``):
    the run's id. The run is let go, then ended, at the end of the test."""
    proc = spawn_conveyor(
        "run", "slow", "-p", live_project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not (live_project / "wait.started").exists():
            if proc.poll() is not None:
                pytest.fail(f"conveyor run ended early:\n{proc.communicate()[0].decode()}")
            assert time.monotonic() < deadline, "step `wait` did not start within 60 s"
            time.sleep(0.05)
        yield _only_run(live_project)
    finally:
        (live_project / "wait.release").touch()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.communicate()


def _only_run(project: Path) -> str:
    from conveyor.project import Project

    with Project.load(project) as proj:
        [run] = proj.metadata.list_runs(limit=2)
    return run.id


def test_the_dag_of_a_running_run_follows_it_without_a_reload(
    live_project: Path,
    waiting_run: str,
    server_logs: Path,
    open_tab: Callable[[Server], Tab],
) -> None:
    expect = require_module("playwright.sync_api", "Playwright for Python").expect
    with running_ui(live_project, server_logs, no_auth=True) as ui:
        tab = open_tab(ui)
        navigations: list[str] = []
        tab.goto(f"/runs/{waiting_run}")
        tab.page.on(
            "framenavigated",
            lambda frame: navigations.append(frame.url) if frame.parent_frame is None else None,
        )
        page = tab.page
        load, wait, summarise = (
            page.locator(STEP.format(name=n)) for n in ("load", "wait", "summarise")
        )
        expect(load).to_have_attribute("data-status", "succeeded")
        expect(wait).to_have_attribute("data-status", "running")
        assert summarise.get_attribute("data-status") in ("pending", "waiting")
        tab.screenshot("live-run-running")

        (live_project / "wait.release").touch()
        expect(wait).to_have_attribute("data-status", "succeeded", timeout=30_000)
        expect(summarise).to_have_attribute("data-status", "succeeded", timeout=30_000)
        assert "succeeded" in page.locator("main").inner_text()
        tab.screenshot("live-run-done")
        assert navigations == [], "the page reloaded instead of updating itself"
