"""``@step(cache=False)``: that step runs on every run while the cache serves the others, and
the train line's SQL ingest step (a database can change under us) re-reads its table."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from conveyor.config import DataConfig
from conveyor.lines._data import data_steps
from conveyor.pipeline import Pipeline, pipeline, step
from conveyor.store.metadata import StepStatus

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.runner import Runner
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import SqlMetadataStore

RUNS: Counter[str] = Counter()
CLOCK = {"now": 0}  # what the uncached step reads: the outside world it must not cache


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()
    CLOCK["now"] = 0


@step
def rows(n: int = 5) -> pd.DataFrame:
    RUNS["rows"] += 1
    return pd.DataFrame({"x": range(n)})


@step(cache=False)
def today() -> int:
    RUNS["today"] += 1
    return CLOCK["now"]


@step
def doubled(rows: pd.DataFrame) -> int:
    RUNS["doubled"] += 1
    return int(rows.x.sum()) * 2


@step
def stamped(doubled: int, today: int) -> dict[str, int]:
    RUNS["stamped"] += 1
    return {"total": doubled, "day": today}


def _line() -> Pipeline:
    return pipeline(rows, today, doubled, stamped, name="opt-out")


def test_an_uncached_step_reruns_while_the_others_come_from_the_cache(runner: Runner) -> None:
    first = runner.run(_line())
    assert first.ok and RUNS == {"rows": 1, "today": 1, "doubled": 1, "stamped": 1}

    second = runner.run(_line())
    assert second.ok
    assert RUNS == {"rows": 1, "today": 2, "doubled": 1, "stamped": 1}
    assert second.steps == {
        "rows": StepStatus.CACHED,
        "today": StepStatus.SUCCEEDED,  # ran again, though nothing it depends on changed
        "doubled": StepStatus.CACHED,
        "stamped": StepStatus.CACHED,  # same bytes out of `today`: same key downstream
    }
    assert second.outputs == first.outputs

    runner.run(_line())
    assert RUNS["today"] == 3 and RUNS["rows"] == 1


def test_what_an_uncached_step_reads_anew_reaches_its_dependants(
    runner: Runner, stores: tuple[SqlMetadataStore, AbstractArtifactStore]
) -> None:
    _, artifacts = stores
    runner.run(_line())
    CLOCK["now"] = 1  # the world moved; no parameter or input of `today` did
    second = runner.run(_line())

    assert RUNS == {"rows": 1, "today": 2, "doubled": 1, "stamped": 2}
    assert second.steps["stamped"] is StepStatus.SUCCEEDED
    assert artifacts.get(second.outputs["stamped"].digest, "json") == {"total": 20, "day": 1}


def test_no_cache_still_reruns_every_step(runner: Runner) -> None:
    runner.run(_line())
    result = runner.run(_line(), use_cache=False)
    assert RUNS == {"rows": 2, "today": 2, "doubled": 2, "stamped": 2}
    assert set(result.steps.values()) == {StepStatus.SUCCEEDED}


# --- the train line on a SQL source -------------------------------------------------------


def _write_table(database: Path, start: int, stop: int) -> None:
    """Append applicants ``start``..``stop - 1`` (two classes, alternating)."""
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS applicants (id INTEGER, wage REAL, status TEXT)")
        conn.executemany(
            "INSERT INTO applicants VALUES (?, ?, ?)",
            [(i, 1000.0 + i, "yes" if i % 2 else "no") for i in range(start, stop)],
        )
    conn.close()


def _dataset(
    runner: Runner, line: Pipeline, artifacts: AbstractArtifactStore
) -> tuple[StepStatus, dict[str, Any]]:
    """How the ingest step ended, and the dataset version it described."""
    result = runner.run(line)
    assert result.ok, result.failures
    dataset: dict[str, Any] = artifacts.get(result.outputs["dataset"].digest, "json")
    return result.steps["ingest"], dataset


def test_sql_ingest_rereads_a_table_that_gained_rows_since_the_last_run(
    tmp_path: Path,
    runner: Runner,
    stores: tuple[SqlMetadataStore, AbstractArtifactStore],
) -> None:
    metadata, artifacts = stores
    database = tmp_path / "warehouse.db"
    _write_table(database, 0, 40)
    data = DataConfig.model_validate(
        {
            "source": {"type": "sql", "url": f"sqlite:///{database}", "table": "applicants"},
            "target": "status",
        }
    )
    line = pipeline(*data_steps(data, tmp_path), name="data")

    first_ingest, first = _dataset(runner, line, artifacts)
    _write_table(database, 40, 60)  # new applicants land in the warehouse
    second_ingest, second = _dataset(runner, line, artifacts)

    assert (first["rows"], second["rows"]) == (40, 60)
    assert first["fingerprint"] != second["fingerprint"]
    assert first_ingest is second_ingest is StepStatus.SUCCEEDED
    recorded = {d.fingerprint: d.n_rows for d in metadata.list_datasets()}
    assert recorded == {first["fingerprint"]: 40, second["fingerprint"]: 60}
    third_ingest, third = _dataset(runner, line, artifacts)  # an unchanged table: re-read,
    assert third_ingest is StepStatus.SUCCEEDED  # and the same dataset version
    assert third["fingerprint"] == second["fingerprint"]
