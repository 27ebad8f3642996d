"""Step key parts: recorded with a step, read back per run, and found for the step's previous
execution in the same pipeline; on SQLite and PostgreSQL, and through the 0004 -> 0005 migration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from conveyor.store.metadata import (
    ArtifactRef,
    CacheHit,
    RunStatus,
    StepStatus,
    open_metadata_store,
)
from conveyor.store.metadata.migrate import HEAD

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conveyor.store.metadata import SqlMetadataStore

OUT = ArtifactRef("out", "e" * 64, "json", 2)


@pytest.fixture(params=["sqlite-memory", pytest.param("postgresql", marks=pytest.mark.service)])
def store(request: pytest.FixtureRequest) -> Iterator[SqlMetadataStore]:
    url = (
        "sqlite://" if request.param == "sqlite-memory" else request.getfixturevalue("postgres_url")
    )
    opened = open_metadata_store(url)
    try:
        yield opened
    finally:
        opened.close()


def _run(store: SqlMetadataStore, pipeline: str, parts: dict[str, object]) -> tuple[str, int]:
    run_id, steps = store.create_run(pipeline, ["make", "skipped"], executor="local")
    store.start_step(steps["make"], cache_key="k" * 64, key_parts=parts)
    store.complete_step(steps["make"], inputs=[], outputs=[OUT])
    store.finish_run(run_id, RunStatus.SUCCEEDED)
    return run_id, steps["make"]


def test_key_parts_are_recorded_and_read_back_per_run(store: SqlMetadataStore) -> None:
    run_id, step_id = _run(store, "p", {"code": {"module a.py": "1"}, "cache": "on"})

    [found] = store.step_key_parts(run_id)  # the skipped step never got a key
    assert (found.step_id, found.run_id, found.name) == (step_id, run_id, "make")
    assert found.status is StepStatus.SUCCEEDED
    assert found.parts == {"code": {"module a.py": "1"}, "cache": "on"}
    assert found.cached_from_run is None
    assert [s.name for s in store.get_run(run_id).steps] == ["make", "skipped"]


def test_previous_key_parts_is_the_latest_earlier_step_of_the_same_pipeline(
    store: SqlMetadataStore,
) -> None:
    first, _ = _run(store, "p", {"n": 1})
    second, _ = _run(store, "p", {"n": 2})
    _run(store, "other", {"n": 3})
    run_id, steps = store.create_run("p", ["make"], executor="local")
    store.cache_step(
        steps["make"],
        CacheHit(step_id=store.step_key_parts(second)[0].step_id, run_id=second, outputs=(OUT,)),
        cache_key="k" * 64,
        inputs=[],
        key_parts={"n": 2},
    )

    previous = store.previous_key_parts("p", "make", before_step_id=steps["make"])
    assert previous is not None and previous.run_id == second and previous.parts == {"n": 2}
    [cached] = store.step_key_parts(run_id)
    assert cached.status is StepStatus.CACHED and cached.cached_from_run == second
    first_step = store.step_key_parts(first)[0].step_id
    assert store.previous_key_parts("p", "make", before_step_id=first_step) is None


def test_a_database_at_0004_gains_the_column_and_keeps_its_steps(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from conveyor.store.metadata import migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(migrate._SCRIPTS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, pipeline, status, started_at, executor, host, pid) "
                "VALUES ('r1', 'p', 'succeeded', 1.0, 'local', 'h', 1)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO steps (run_id, name, position, status) "
                "VALUES ('r1', 'make', 0, 'succeeded')"
            )
        )
    engine.dispose()

    store = open_metadata_store(url)
    try:
        with store._engine.connect() as conn:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert revision == HEAD
        assert [s.name for s in store.get_run("r1").steps] == ["make"]
        assert store.step_key_parts("r1") == []
    finally:
        store.close()


def test_a_populated_database_at_0005_upgrades_with_its_artifacts_and_edges(
    tmp_path: Path,
) -> None:
    """Was: 0006 copied and dropped ``artifacts`` on SQLite, which foreign keys refuse once a
    step references an artifact: every existing project store failed to open."""
    from conveyor.store.artifacts import InMemoryArtifactStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_metadata_store(url)
    artifacts = InMemoryArtifactStore()
    try:
        run_id, steps = store.create_run("p", ["make"], executor="local")
        stored = artifacts.put({"n": 1})
        ref = ArtifactRef("numbers", stored.digest, stored.kind, stored.size)
        store.record_artifacts([ref])
        store.complete_step(steps["make"], inputs=[], outputs=[ref])
    finally:
        store.close()
    _downgrade(url, "0005")  # as a store written before 0006 is (data kept)

    store = open_metadata_store(url)
    try:
        with store._engine.connect() as conn:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert revision == HEAD
        assert store.get_run(run_id).steps[0].outputs == (ref,)
        assert store.artifact_kind(ref.digest) == stored.kind
    finally:
        store.close()


def _downgrade(url: str, revision: str) -> None:
    """Take the store at ``url`` back to ``revision`` with the migrations' own downgrades."""
    from alembic import command
    from alembic.config import Config

    from conveyor.store.metadata import migrate

    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(migrate._SCRIPTS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()
