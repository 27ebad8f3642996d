"""``--explain``: each step's cache verdict, from the key parts recorded with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor.pipeline import Pipeline, pipeline, step
from conveyor.runner.explain import differences, explain_run
from conveyor.store.metadata import StepStatus

if TYPE_CHECKING:
    from conveyor.runner import Runner
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import SqlMetadataStore

FLAKY = {"fail": False}


@step
def rows(n: int = 3) -> list[int]:
    return list(range(n))


@step
def total(rows: list[int]) -> int:
    if FLAKY["fail"]:
        raise RuntimeError("not today")
    return sum(rows)


@step(cache=False)
def stamp(total: int) -> int:
    return total


@pytest.fixture(autouse=True)
def _reset() -> None:
    FLAKY["fail"] = False


def _line(n: int = 3) -> Pipeline:
    return pipeline(rows.with_params(n=n), total, stamp, name="explained")


def _verdicts(metadata: SqlMetadataStore, run_id: str) -> dict[str, str]:
    return {e.step: e.reason for e in explain_run(metadata, run_id)}


def test_first_run_misses_with_no_earlier_run_and_second_hits_naming_the_run(
    runner: Runner, stores: tuple[SqlMetadataStore, AbstractArtifactStore]
) -> None:
    metadata, _ = stores
    first = runner.run(_line())
    second = runner.run(_line())

    assert _verdicts(metadata, first.run_id) == {
        "rows": "miss: no earlier run of this step",
        "total": "miss: no earlier run of this step",
        "stamp": "miss: cache disabled for this step",
    }
    hit = f"hit (same code, params and inputs as run {first.run_id[:8]})"
    assert _verdicts(metadata, second.run_id) == {
        "rows": hit,
        "total": hit,
        "stamp": "miss: cache disabled for this step",
    }
    assert [e.hit for e in explain_run(metadata, second.run_id)] == [True, True, False]


def test_a_changed_param_is_named_and_its_dependants_name_the_changed_input(
    runner: Runner, stores: tuple[SqlMetadataStore, AbstractArtifactStore]
) -> None:
    metadata, _ = stores
    runner.run(_line(3))
    changed = runner.run(_line(4))

    verdicts = _verdicts(metadata, changed.run_id)
    assert verdicts["rows"] == "miss: param 'n' changed"
    assert verdicts["total"].startswith("miss: input 'rows' changed (dataset 'rows': ")


def test_no_cache_is_the_reason_when_the_run_disables_the_cache(
    runner: Runner, stores: tuple[SqlMetadataStore, AbstractArtifactStore]
) -> None:
    metadata, _ = stores
    runner.run(_line())
    forced = runner.run(_line(), use_cache=False)

    assert set(_verdicts(metadata, forced.run_id).values()) == {"miss: --no-cache"}


def test_same_key_after_a_failure_says_the_earlier_execution_failed(
    runner: Runner, stores: tuple[SqlMetadataStore, AbstractArtifactStore]
) -> None:
    metadata, _ = stores
    FLAKY["fail"] = True
    failed = runner.run(_line())
    assert _verdicts(metadata, failed.run_id)["stamp"] == "not run (an upstream step failed)"
    FLAKY["fail"] = False
    fixed = runner.run(_line())

    assert fixed.steps["total"] is StepStatus.SUCCEEDED
    assert _verdicts(metadata, fixed.run_id)["total"] == (
        f"miss: same key as run {failed.run_id[:8]}, which ended failed"
    )


def test_only_runs_of_the_same_pipeline_are_compared(
    runner: Runner, stores: tuple[SqlMetadataStore, AbstractArtifactStore]
) -> None:
    metadata, _ = stores
    runner.run(pipeline(rows.with_params(n=9), name="other"))
    mine = runner.run(_line())

    assert _verdicts(metadata, mine.run_id)["rows"] == "miss: no earlier run of this step"


def test_differences_name_code_version_outputs_and_conveyor() -> None:
    old = {
        "code": {"module helpers.py": "a", "conveyor": "x", "module gone.py": "g"},
        "version": "1",
        "params": {"seed": "1"},
        "inputs": {"train": "d1" * 32},
        "outputs": ["model"],
        "conveyor": "0.1",
    }
    new = {
        "code": {"module helpers.py": "b", "conveyor": "y", "module new.py": "n"},
        "version": "2",
        "params": {"seed": "2", "extra": "e"},
        "inputs": {"train": "d2" * 32},
        "datasets": {"train": "train_set"},
        "outputs": ["model", "report"],
        "conveyor": "0.2",
    }
    found = differences(old, new)

    assert "conveyor code changed" in found
    assert "module helpers.py changed" in found
    assert "module gone.py no longer used" in found
    assert "module new.py added" in found
    assert "version changed ('1' -> '2')" in found
    assert "param 'seed' changed" in found
    assert "param 'extra' added" in found
    assert any(f.startswith("input 'train' changed (dataset 'train_set'") for f in found)
    assert any(f.startswith("outputs changed") for f in found)
    assert "conveyor version changed (0.1 -> 0.2)" in found
    assert differences(old, old) == []
