"""Cache keys see the project's code: edit a helper a step imports and that step and everything
downstream re-run, with ``--explain`` naming the module; a comment-only edit changes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.e2e.conftest import conveyor, conveyor_json, steps_by_name

if TYPE_CHECKING:
    from pathlib import Path

CONFIG = """\
project: code-cache
store: {metadata: "sqlite:///.conveyor/conveyor.db", artifacts: .conveyor/artifacts}
pipelines: {small: "steps_mod:make_pipeline"}
"""

SOURCE_MOD = """\
from conveyor.pipeline import step


@step
def numbers() -> list[int]:
    return [1, 2, 3]
"""

STEPS_MOD = """\
from conveyor.pipeline import pipeline, step

from helpers import scale
from source_mod import numbers


@step
def scaled(numbers: list[int]) -> list[int]:
    return scale(numbers, 2)


@step
def total(scaled: list[int]) -> int:
    return sum(scaled)


def make_pipeline(config):
    return pipeline(numbers, scaled, total)
"""

HELPERS = '''\
"""Helpers the steps call."""


def scale(values, factor):
    # multiply every value
    return [v * factor for v in values]
'''


def _project(root: Path) -> Path:
    root.mkdir()
    for name, text in {
        "conveyor.yaml": CONFIG,
        "source_mod.py": SOURCE_MOD,
        "steps_mod.py": STEPS_MOD,
        "helpers.py": HELPERS,
    }.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def _statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {name: str(s["status"]) for name, s in steps_by_name(summary).items()}


def test_editing_a_helper_reruns_its_step_and_downstream_and_explain_names_it(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path / "proj")
    helpers = project / "helpers.py"
    first = conveyor_json("run", "small", "-p", project, "--explain")
    assert set(_statuses(first).values()) == {"succeeded"}

    helpers.write_text(HELPERS.replace("v * factor", "v * factor + 1"), encoding="utf-8")
    edited = conveyor_json("run", "small", "-p", project, "--explain")
    assert _statuses(edited) == {"numbers": "cached", "scaled": "succeeded", "total": "succeeded"}
    assert edited["explain"]["scaled"] == "miss: module helpers.py changed"
    assert edited["explain"]["total"].startswith("miss: module helpers.py changed")
    assert "input 'scaled' changed" in edited["explain"]["total"]
    assert edited["explain"]["numbers"].startswith("hit (same code, params and inputs as run ")

    helpers.write_text(
        HELPERS.replace("v * factor", "v * factor + 1")
        .replace("# multiply every value", "# multiply each value, then add one\n")
        .replace('"""Helpers the steps call."""', '"""What the steps call."""'),
        encoding="utf-8",
    )
    cosmetic = conveyor_json("run", "small", "-p", project)
    assert set(_statuses(cosmetic).values()) == {"cached"}

    shown = conveyor("runs", "show", edited["run_id"], "-p", project, "--explain")
    assert "miss: module helpers.py changed" in shown.stdout
