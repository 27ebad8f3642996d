"""Projects to export: the visa example (three tuned candidates, a gate), a one-candidate line
without tuning, and a project's own pipeline without data parameters or a gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from conveyor.exporters import Line, describe
from conveyor.project import Project

if TYPE_CHECKING:
    from pathlib import Path

IMAGE = "registry.example/visa-server:1.0"
SHARED = {
    "CONVEYOR_METADATA_URL": "postgresql+psycopg://conveyor@db.internal:5432/conveyor",
    "CONVEYOR_ARTIFACTS_URI": "s3://conveyor-artifacts/visa",
}
"""Shared stores as a cloud deployment names them (nothing here connects to them)."""

TOY = """
from conveyor.pipeline import pipeline, step


@step(outputs=("numbers",))
def make() -> list[int]:
    return [1, 2, 3]


@step(outputs=("total",))
def add(numbers: list[int]) -> int:
    return sum(numbers)


@step(outputs=("double",))
def double(numbers: list[int]) -> int:
    return 2 * sum(numbers)


LINE = pipeline(make, add, double, name="toy")
"""


def make_visa(root: Path, *, n_rows: int = 1500) -> Path:
    """``conveyor init --example visa`` with ``n_rows`` rows and the small models of the tests."""
    from conveyor.cli.init import scaffold
    from conveyor.examples.visa.generate import write_csv
    from tests._visa import shrink_visa_config

    scaffold(root, example="visa")
    write_csv(root / "data" / "visa.csv", n_rows=n_rows)
    shrink_visa_config(root)
    return root


def edit_config(root: Path, **sections: object) -> None:
    """Replace top-level sections of ``root``'s conveyor.yaml (None deletes one)."""
    path = root / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in sections.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="session")
def visa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The visa example (not run): ingest, validate, split, three tune+train pairs, evaluate,
    gate, profile, report, register. Read-only: copy it before changing it."""
    return make_visa(tmp_path_factory.mktemp("visa-export"))


@pytest.fixture(scope="session")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One candidate, no tuning, and a project pipeline ``toy`` (no data, no gate)."""
    root = make_visa(tmp_path_factory.mktemp("single-export"), n_rows=300)
    config = yaml.safe_load((root / "conveyor.yaml").read_text(encoding="utf-8"))
    training = config["training"]
    training["candidates"] = [
        {"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression"}
    ]
    training.pop("tuning")
    (root / "toy.py").write_text(TOY, encoding="utf-8")
    edit_config(root, training=training, pipelines={"toy": "toy:LINE"})
    return root


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Shared stores in the environment, as a deployment exports with them."""
    for name, value in SHARED.items():
        monkeypatch.setenv(name, value)
    return SHARED


@pytest.fixture(params=["visa", "single", "toy"])
def line(request: pytest.FixtureRequest, shared: dict[str, str]) -> Line:
    """Each shape of line, described with shared stores."""
    root = request.getfixturevalue("visa" if request.param == "visa" else "single")
    pipeline = "toy" if request.param == "toy" else "train"
    with Project.load(root) as project:
        return describe(project, pipeline, image=IMAGE)


def conveyor_dag(root: Path, pipeline: str = "train") -> dict[str, set[str]]:
    """Step -> upstream steps, straight from conveyor's Pipeline (what every export must keep)."""
    with Project.load(root) as project:
        found = project.pipeline(pipeline)
    return {s.name: found.upstream(s.name) for s in found.steps}
