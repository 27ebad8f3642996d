"""The line every exporter shares: conveyor's DAG, the gate, the parameters, the command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor.exporters import ExportError, Line, Slots, describe, shared_stores
from conveyor.exporters._line import REJECTED_STEP, required_env
from conveyor.project import Project
from tests.exporters.conftest import IMAGE, conveyor_dag

if TYPE_CHECKING:
    from pathlib import Path


def _literal(**given: str) -> Slots[str]:
    return Slots[str](run_key="KEY", assign=lambda prefix, value: prefix + value, **given)


def test_the_visa_line_keeps_conveyors_dag_and_gates_register(
    visa: Path, shared: dict[str, str]
) -> None:
    with Project.load(visa) as project:
        line = describe(project, image=IMAGE)
    dag = line.dag()
    assert dag.pop(REJECTED_STEP) == dag["register"]
    assert dag == conveyor_dag(visa)
    assert [s.name for s in line.steps if s.gate] == ["gate"]
    assert [s.name for s in line.steps if s.gated] == ["register"]
    assert dag["evaluate"] >= {"train_logreg", "train_hgb", "train_lightgbm", "tune_hgb"}
    assert (line.name, line.data_uri, line.seed, line.env) == (
        "visa-train",
        "data/visa.csv",
        42,
        shared,
    )


def test_a_line_without_gate_or_data_has_no_branch_and_no_parameters(
    single: Path, shared: dict[str, str]
) -> None:
    with Project.load(single) as project:
        toy = describe(project, "toy", image=IMAGE)
        train = describe(project, image=IMAGE)
    assert toy.dag() == {"make": set(), "add": {"make"}, "double": {"make"}}
    assert not toy.gated and toy.data_uri is None and toy.seed is None
    assert "tune_logreg" not in train.dag() and train.gated


def test_the_command_is_the_run_step_contract(visa: Path, shared: dict[str, str]) -> None:
    with Project.load(visa) as project:
        line = describe(project, image=IMAGE)
    slots = _literal(data_uri="s3://b/v.csv", seed="7", summary="/o/s.json", gate_passed="/o/g")
    common = ["--set", "data.source.path=s3://b/v.csv", "--set", "data.split.seed=7"]
    head = ["conveyor", "run", "train", "--project", "/app", "--run-id", "KEY", "--step"]
    assert line.command("gate", slots) == [
        *head,
        "gate",
        *common,
        "--summary",
        "/o/s.json",
        "--gate-passed",
        "/o/g",
    ]
    # only the gate step writes --gate-passed; register_rejected runs `--step register`
    assert line.command("train_hgb", slots) == [
        *head,
        "train_hgb",
        *common,
        "--summary",
        "/o/s.json",
    ]
    assert line.command(REJECTED_STEP, slots) == line.command("register", slots)
    assert line.command("ingest", _literal()) == [*head, "ingest"]


@pytest.mark.parametrize(
    ("metadata", "artifacts", "is_shared"),
    [
        ("postgresql+psycopg://u@h/db", "s3://b/p", True),
        ("postgresql+psycopg://u@h/db", "gs://b/p", True),
        ("postgresql+psycopg://u@h/db", "az://c/p", True),
        ("sqlite:////tmp/c.db", "s3://b/p", False),
        ("postgresql+psycopg://u@h/db", "/tmp/artifacts", False),
        ("postgresql+psycopg://u@h/db", "file:///tmp/artifacts", False),
    ],
)
def test_only_stores_every_container_reaches_are_shared(
    metadata: str, artifacts: str, is_shared: bool
) -> None:
    env = shared_stores(metadata, artifacts)
    assert bool(env) is is_shared
    if is_shared:
        assert env == {"CONVEYOR_METADATA_URL": metadata, "CONVEYOR_ARTIFACTS_URI": artifacts}


def test_a_target_fixing_the_stores_refuses_local_ones(visa: Path) -> None:
    with Project.load(visa) as project:  # the example's own store: SQLite and a folder
        line = describe(project, image=IMAGE)
    assert line.env == {}
    with pytest.raises(ExportError, match="CONVEYOR_METADATA_URL.*CONVEYOR_ARTIFACTS_URI"):
        required_env(line, "vertex")


def test_every_shape_of_line_names_its_steps_once(line: Line) -> None:
    names = [s.name for s in line.steps]
    assert len(names) == len(set(names))
    position = {n: i for i, n in enumerate(names)}
    for s in line.steps:  # topological: upstream steps come first
        assert all(position[u] < position[s.name] for u in s.upstream)
