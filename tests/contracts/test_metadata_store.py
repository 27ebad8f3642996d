"""Contract every metadata store backend honours: SQLite file, SQLite in memory and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import alembic.command
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conveyor.contracts import CONTRACTS
from conveyor.errors import (
    ConveyorError,
    MetadataError,
    MetadataStorageError,
    ModelNotFoundError,
    NotFoundError,
    RegistryError,
)
from conveyor.store.metadata import (
    ArtifactRef,
    RunStatus,
    SqlMetadataStore,
    StepStatus,
    open_metadata_store,
)
from conveyor.store.metadata import tables as t
from conveyor.store.metadata.migrate import HEAD, upgrade
from tests.conftest import require_module

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def _digest(label: str) -> str:
    return label.encode().hex().ljust(64, "0")[:64]


def _ref(
    name: str, label: str | None = None, *, kind: str = "pickle", size: int = 10
) -> ArtifactRef:
    return ArtifactRef(name=name, digest=_digest(label or name), kind=kind, size=size)


@dataclass
class Backend:
    """An open store plus the URL it came from (reopening `sqlite://` gives a new database)."""

    name: str
    url: str
    store: SqlMetadataStore

    @property
    def persistent(self) -> bool:
        return self.name != "sqlite-memory"


@pytest.fixture(
    params=["sqlite-file", "sqlite-memory", pytest.param("postgresql", marks=pytest.mark.service)]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite-file":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    elif request.param == "sqlite-memory":
        url = "sqlite://"
    else:
        url = request.getfixturevalue("postgres_url")
    store = open_metadata_store(url)
    try:
        yield Backend(request.param, url, store)
    finally:
        store.close()


@pytest.fixture
def store(backend: Backend) -> SqlMetadataStore:
    return backend.store


def _engine(store: SqlMetadataStore) -> sa.Engine:
    return store._engine


def _count(store: SqlMetadataStore, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with _engine(store).connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar_one()


def _run_with_step(
    store: SqlMetadataStore, *, outputs: list[ArtifactRef], cache_key: str = "key"
) -> tuple[str, int]:
    run_id, steps = store.create_run("p", ["make"], executor="local")
    store.start_step(steps["make"], cache_key=cache_key)
    store.complete_step(steps["make"], inputs=[], outputs=outputs)
    store.finish_run(run_id, RunStatus.SUCCEEDED)
    return run_id, steps["make"]


# --- schema -----------------------------------------------------------------------------------


def test_migrations_create_every_table_at_head(store: SqlMetadataStore) -> None:
    with _engine(store).connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert set(t.metadata.tables) <= names
    assert "alembic_version" in names
    assert revision == HEAD


def test_migrating_again_is_a_no_op(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, _ = backend.store.create_run("p", ["a"], executor="local")

    def no_alembic(*args: object, **kwargs: object) -> None:
        raise AssertionError("alembic ran on a database already at head")

    monkeypatch.setattr(alembic.command, "upgrade", no_alembic)
    with _engine(backend.store).begin() as conn:
        upgrade(conn)
    assert backend.store.get_run(run_id).pipeline == "p"
    if backend.persistent:
        reopened = open_metadata_store(backend.url)
        try:
            assert reopened.get_run(run_id).id == run_id
        finally:
            reopened.close()


# --- runs and steps -------------------------------------------------------------------------


def test_create_run_records_a_running_run_with_pending_steps_in_order(
    store: SqlMetadataStore,
) -> None:
    names = ["ingest", "validate", "train", "evaluate"]
    before = time.time()
    run_id, step_ids = store.create_run(
        "visa", names, executor="local", params={"alpha": 0.5, "tags": ["a"]}, git_commit="abc"
    )
    assert set(step_ids) == set(names)
    run = store.get_run(run_id)
    assert run.id == run_id
    assert run.pipeline == "visa"
    assert run.status is RunStatus.RUNNING
    assert run.executor == "local"
    assert run.git_commit == "abc"
    assert run.started_at >= before
    assert run.ended_at is None
    assert run.duration is None
    assert run.params == {"alpha": 0.5, "tags": ["a"]}
    assert [s.name for s in run.steps] == names
    assert [s.position for s in run.steps] == [0, 1, 2, 3]
    assert [s.id for s in run.steps] == [step_ids[n] for n in names]
    assert all(s.status is StepStatus.PENDING for s in run.steps)
    assert all(s.started_at is None and s.ended_at is None for s in run.steps)


def test_step_lifecycle_records_statuses_timings_and_tracebacks(store: SqlMetadataStore) -> None:
    run_id, ids = store.create_run("p", ["ok", "bad", "after"], executor="local")
    store.start_step(ids["ok"], cache_key="k-ok")
    running = store.get_run(run_id).steps[0]
    assert running.status is StepStatus.RUNNING
    assert running.cache_key == "k-ok"
    assert running.started_at is not None
    assert running.ended_at is None

    store.complete_step(ids["ok"], inputs=[], outputs=[_ref("x")])
    store.start_step(ids["bad"], cache_key="k-bad")
    tb = 'Traceback (most recent call last):\n  File "steps.py", line 3\nValueError: boom\n'
    store.fail_step(ids["bad"], error="ValueError: boom", traceback=tb)
    store.skip_step(ids["after"], reason="upstream step 'bad' failed")
    store.finish_run(run_id, RunStatus.FAILED, error="step 'bad' failed")

    run = store.get_run(run_id)
    ok, bad, after = run.steps
    assert ok.status is StepStatus.SUCCEEDED
    assert ok.duration is not None and ok.duration >= 0
    assert bad.status is StepStatus.FAILED
    assert bad.error == "ValueError: boom"
    assert bad.traceback == tb
    assert bad.ended_at is not None and bad.duration is not None and bad.duration >= 0
    assert after.status is StepStatus.SKIPPED
    assert after.error == "upstream step 'bad' failed"
    assert run.status is RunStatus.FAILED
    assert run.error == "step 'bad' failed"
    assert run.duration is not None and run.duration >= 0


def test_complete_step_takes_an_explicit_start_time(store: SqlMetadataStore) -> None:
    run_id, ids = store.create_run("p", ["a"], executor="local")
    store.start_step(ids["a"], cache_key="k")
    started = time.time() - 60
    store.complete_step(ids["a"], inputs=[], outputs=[], started_at=started)
    step = store.get_run(run_id).steps[0]
    assert step.started_at == pytest.approx(started)
    assert step.duration is not None and step.duration >= 59


def test_finish_run_marks_leftover_pending_steps_skipped(store: SqlMetadataStore) -> None:
    run_id, ids = store.create_run("p", ["a", "b", "c"], executor="local")
    store.start_step(ids["a"], cache_key="k")
    store.complete_step(ids["a"], inputs=[], outputs=[])
    store.finish_run(run_id, RunStatus.GATED)
    run = store.get_run(run_id)
    assert run.status is RunStatus.GATED
    assert run.ended_at is not None
    assert [s.status for s in run.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
        StepStatus.SKIPPED,
    ]


# --- lineage and cache ----------------------------------------------------------------------


def test_complete_step_records_artifacts_and_lineage(store: SqlMetadataStore) -> None:
    run_id, ids = store.create_run("p", ["split", "train"], executor="local")
    train_df = _ref("train_df", kind="parquet", size=1234)
    test_df = _ref("test_df", kind="parquet", size=99)
    model = _ref("model", kind="joblib", size=4096)
    store.start_step(ids["split"], cache_key="k1")
    store.complete_step(ids["split"], inputs=[], outputs=[train_df, test_df])
    store.start_step(ids["train"], cache_key="k2")
    store.complete_step(ids["train"], inputs=[train_df], outputs=[model])

    split, train = store.get_run(run_id).steps
    assert split.inputs == ()
    assert split.outputs == (test_df, train_df)  # by dataset name
    assert train.inputs == (train_df,)
    assert train.outputs == (model,)
    assert store.artifact_kind(model.digest) == "joblib"
    assert store.artifact_kind(train_df.digest) == "parquet"


def test_recording_an_existing_artifact_again_does_not_fail(store: SqlMetadataStore) -> None:
    shared = _ref("features", "same bytes", kind="parquet")
    first_run, _ = _run_with_step(store, outputs=[shared])
    # Another step (in another run, under another name) produces the very same bytes.
    again = ArtifactRef("features_copy", shared.digest, "parquet", shared.size)
    second_run, _ = _run_with_step(store, outputs=[again], cache_key="other")
    assert store.get_run(first_run).steps[0].outputs == (shared,)
    assert store.get_run(second_run).steps[0].outputs == (again,)
    assert _count(store, t.artifacts, t.artifacts.c.digest == shared.digest) == 1


@pytest.mark.parametrize("kind", [*sorted(CONTRACTS), "x" * 100])
def test_every_contract_kind_and_a_long_plugin_kind_are_recorded_whole(
    store: SqlMetadataStore, kind: str
) -> None:
    """Was: the kind column held 20 characters, so PostgreSQL refused ``contract:registration``
    (SQLite does not enforce lengths, so only the PostgreSQL runs failed)."""
    ref = _ref("registration", f"bytes of {kind}", kind=kind)
    run_id, _ = _run_with_step(store, outputs=[ref])
    assert store.artifact_kind(ref.digest) == kind
    assert store.get_run(run_id).steps[0].outputs == (ref,)


def test_artifact_kind_of_an_unknown_digest_is_not_found(store: SqlMetadataStore) -> None:
    with pytest.raises(NotFoundError, match=_digest("nothing")):
        store.artifact_kind(_digest("nothing"))


def test_find_cache_hit_returns_the_latest_successful_outputs(store: SqlMetadataStore) -> None:
    assert store.find_cache_hit("train-key") is None
    _run_with_step(store, outputs=[_ref("model", "v1")], cache_key="train-key")
    latest_run, latest_step = _run_with_step(
        store, outputs=[_ref("model", "v2")], cache_key="train-key"
    )
    # A later attempt with the same key that failed is not a hit.
    _, ids = store.create_run("p", ["make"], executor="local")
    store.start_step(ids["make"], cache_key="train-key")
    store.fail_step(ids["make"], error="boom")

    hit = store.find_cache_hit("train-key")
    assert hit is not None
    assert hit.run_id == latest_run
    assert hit.step_id == latest_step
    assert hit.outputs == (_ref("model", "v2"),)


def test_failed_steps_are_never_cache_hits(store: SqlMetadataStore) -> None:
    _, ids = store.create_run("p", ["a", "b"], executor="local")
    store.start_step(ids["a"], cache_key="only-failed")
    store.fail_step(ids["a"], error="boom")
    store.start_step(ids["b"], cache_key="still-running")
    assert store.find_cache_hit("only-failed") is None
    assert store.find_cache_hit("still-running") is None


def test_cache_step_links_outputs_and_copies_metrics(store: SqlMetadataStore) -> None:
    data = _ref("data")
    model = _ref("model")
    _run_with_step(store, outputs=[data], cache_key="ingest")
    run1, ids1 = store.create_run("p", ["train"], executor="local")
    store.start_step(ids1["train"], cache_key="k")
    store.complete_step(ids1["train"], inputs=[data], outputs=[model], metrics={"auc": 0.91})
    store.finish_run(run1, RunStatus.SUCCEEDED)

    run2, ids2 = store.create_run("p", ["train"], executor="local")
    hit = store.find_cache_hit("k")
    assert hit is not None
    store.cache_step(ids2["train"], hit, cache_key="k", inputs=[data])
    store.finish_run(run2, RunStatus.SUCCEEDED)

    step = store.get_run(run2).steps[0]
    assert step.status is StepStatus.CACHED
    assert step.status.done_ok
    assert step.cached_from == ids1["train"]
    assert step.cache_key == "k"
    assert step.inputs == (data,)
    assert step.outputs == (model,)
    assert store.get_run(run2).metrics == {"auc": 0.91}
    assert store.get_run(run1).metrics == {"auc": 0.91}
    # A cached step is not itself a new source of hits: the original execution still is.
    again = store.find_cache_hit("k")
    assert again is not None and again.step_id == ids1["train"]


# --- metrics --------------------------------------------------------------------------------


def test_log_metrics_bulk_inserts_a_thousand_in_one_call(store: SqlMetadataStore) -> None:
    run_id, ids = store.create_run("p", ["train"], executor="local")
    metrics = {f"m{i:04d}": i / 7 for i in range(1000)}
    inserts: list[str] = []

    def count_inserts(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO METRICS"):
            inserts.append(statement)

    sa.event.listen(_engine(store), "before_cursor_execute", count_inserts)
    try:
        store.log_metrics(run_id, metrics, step_id=ids["train"], iteration=3)
    finally:
        sa.event.remove(_engine(store), "before_cursor_execute", count_inserts)
    assert len(inserts) == 1  # one executemany, not a round trip per metric
    assert store.get_run(run_id).metrics == pytest.approx(metrics)
    assert _count(store, t.metrics, t.metrics.c.run_id == run_id) == 1000
    assert _count(store, t.metrics, t.metrics.c.iteration == 3) == 1000


def test_get_run_reports_the_latest_value_of_each_metric(store: SqlMetadataStore) -> None:
    run_id, _ = store.create_run("p", [], executor="local")
    for step, loss in enumerate([0.9, 0.5, 0.2]):
        store.log_metrics(run_id, {"loss": loss, "lr": 0.1}, iteration=step)
    store.log_metrics(run_id, {"acc": 1})
    assert store.get_run(run_id).metrics == {"loss": 0.2, "lr": 0.1, "acc": 1.0}


# --- reading runs ---------------------------------------------------------------------------


def test_get_run_by_unique_prefix(store: SqlMetadataStore) -> None:
    run_id, _ = store.create_run("p", ["a"], executor="local")
    assert store.get_run(run_id[:8]).id == run_id
    assert store.get_run(run_id).id == run_id


def test_get_run_unknown_id_is_not_found(store: SqlMetadataStore) -> None:
    store.create_run("p", [], executor="local")
    with pytest.raises(NotFoundError, match="no run 'nope'") as info:
        store.get_run("nope")
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, MetadataError)


def test_get_run_ambiguous_prefix_is_not_found(store: SqlMetadataStore) -> None:
    ids = {store.create_run("p", [], executor="local")[0] for _ in range(40)}
    # 40 random hex ids: some two share a first character (pigeonhole over 16 digits).
    first = [i[0] for i in ids]
    prefix = next(c for c in first if first.count(c) > 1)
    with pytest.raises(LookupError, match="ambiguous"):
        store.get_run(prefix)


def test_list_runs_newest_first_with_limit(store: SqlMetadataStore) -> None:
    created = [store.create_run(f"p{i % 2}", ["a", "b"], executor="local")[0] for i in range(5)]
    runs = store.list_runs()
    assert [r.id for r in runs] == created[::-1]
    assert [s.name for s in runs[0].steps] == ["a", "b"]
    assert [r.id for r in store.list_runs(limit=2)] == created[:-3:-1]
    assert [r.id for r in store.list_runs(pipeline="p0")] == created[::-2]
    assert store.list_runs(pipeline="nope") == []


# --- crash recovery -------------------------------------------------------------------------

_ABANDON_RUN = textwrap.dedent(
    """
    import sys
    from conveyor.store.metadata import open_metadata_store

    store = open_metadata_store(sys.argv[1])
    run_id, ids = store.create_run("p", ["a", "b", "c"], executor="local")
    store.start_step(ids["a"], cache_key="k")
    store.complete_step(ids["a"], inputs=[], outputs=[])
    store.start_step(ids["b"], cache_key="k2")
    store.close()
    print(run_id)
    """
)


def _abandoned_run(backend: Backend) -> str:
    """A run left 'running' by a process that is gone: a ['succeeded', 'running', 'pending']."""
    if backend.persistent:
        done = subprocess.run(
            [sys.executable, "-c", _ABANDON_RUN, backend.url],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.strip()
    # An in-memory database cannot be shared with another process: borrow a reaped pid instead.
    child = subprocess.Popen(["true"])
    child.wait()
    store = backend.store
    run_id, ids = store.create_run("p", ["a", "b", "c"], executor="local")
    store.start_step(ids["a"], cache_key="k")
    store.complete_step(ids["a"], inputs=[], outputs=[])
    store.start_step(ids["b"], cache_key="k2")
    with _engine(store).begin() as conn:
        conn.execute(sa.update(t.runs).where(t.runs.c.id == run_id).values(pid=child.pid))
    return run_id


def test_recover_interrupted_marks_runs_of_dead_processes(backend: Backend) -> None:
    store = backend.store
    dead = _abandoned_run(backend)
    alive, alive_ids = store.create_run("p", ["a", "b"], executor="local")
    store.start_step(alive_ids["a"], cache_key="k")
    finished, _ = _run_with_step(store, outputs=[])

    assert store.recover_interrupted() == [dead]

    run = store.get_run(dead)
    assert run.status is RunStatus.INTERRUPTED
    assert run.ended_at is not None
    assert run.error == "process died"
    assert [s.status for s in run.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.INTERRUPTED,
        StepStatus.SKIPPED,
    ]
    assert run.steps[1].ended_at is not None
    live = store.get_run(alive)
    assert live.status is RunStatus.RUNNING
    assert [s.status for s in live.steps] == [StepStatus.RUNNING, StepStatus.PENDING]
    assert store.get_run(finished).status is RunStatus.SUCCEEDED
    assert store.recover_interrupted() == []  # nothing left to recover


# --- model versions and events --------------------------------------------------------------


def test_register_model_version_numbers_versions_per_name(
    store: SqlMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_ACTOR", "alice@example.com")
    run_id, _ = _run_with_step(store, outputs=[_ref("model", "m1"), _ref("other", "m2")])
    digest = _digest("m1")

    versions = [
        store.register_model_version("visa", digest=digest, run_id=run_id).version for _ in range(3)
    ]
    other = store.register_model_version("fraud", digest=_digest("m2"), run_id=None)
    assert versions == [1, 2, 3]
    assert other.version == 1
    assert store.register_model_version("visa", digest=digest, run_id=None).version == 4

    events = [e for e in store.list_events() if e.action == "register"]
    assert [e.entity for e in events] == ["visa:1", "visa:2", "visa:3", "fraud:1", "visa:4"]
    assert {e.actor for e in events} == {"alice@example.com"}
    assert events[0].details == {"run_id": run_id, "digest": digest, "status": "candidate"}
    assert events[3].details == {"run_id": None, "digest": _digest("m2"), "status": "candidate"}


def test_an_overview_reads_the_newest_versions_and_counts_the_rest(
    store: SqlMetadataStore,
) -> None:
    run_id, _ = _run_with_step(store, outputs=[_ref("model", "m1"), _ref("gates", "g1")])
    for _ in range(4):
        store.register_model_version("visa", digest=_digest("m1"), run_id=run_id)
    store.register_model_version("fraud", digest=_digest("m1"), run_id=None, status="rejected")
    newest = store.newest_model_versions(2)
    assert [(v.name, v.version) for v in newest] == [("fraud", 1), ("visa", 4), ("visa", 3)]
    assert store.model_version_counts() == {"visa": {"candidate": 4}, "fraud": {"rejected": 1}}
    gates = store.run_outputs([run_id, "f" * 32], "gates")
    assert list(gates) == [run_id] and gates[run_id].digest == _digest("g1")
    assert store.run_outputs([], "gates") == {}


def test_register_model_version_stores_every_field(store: SqlMetadataStore) -> None:
    run_id, _ = _run_with_step(store, outputs=[_ref("model")])
    record = store.register_model_version(
        "visa",
        digest=_digest("model"),
        run_id=run_id,
        metrics={"auc": 0.93},
        signature={"inputs": [{"name": "age", "type": "int"}]},
        tags={"team": "risk"},
        git_commit="deadbeef",
        config_hash="c0ffee",
        status="staging",
        reason="weekly retrain",
    )
    assert store.get_model_version("visa", 1) == record
    assert record.metrics == {"auc": 0.93}
    assert record.signature == {"inputs": [{"name": "age", "type": "int"}]}
    assert record.tags == {"team": "risk"}
    assert record.status == "staging"
    assert record.reason == "weekly retrain"
    assert record.run_id == run_id
    assert record.dataset is None
    assert [m.version for m in store.list_model_versions("visa")] == [1]


def test_get_model_version_latest_specific_and_missing(store: SqlMetadataStore) -> None:
    _run_with_step(store, outputs=[_ref("a"), _ref("b")])
    store.register_model_version("visa", digest=_digest("a"), run_id=None)
    store.register_model_version("visa", digest=_digest("b"), run_id=None)

    latest = store.get_model_version("visa")
    assert (latest.version, latest.digest) == (2, _digest("b"))
    first = store.get_model_version("visa", 1)
    assert (first.version, first.digest) == (1, _digest("a"))
    assert [m.version for m in store.list_model_versions()] == [2, 1]

    with pytest.raises(ModelNotFoundError, match="visa:3"):
        store.get_model_version("visa", 3)
    with pytest.raises(ModelNotFoundError, match="nope") as info:
        store.get_model_version("nope")
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, RegistryError)


def test_append_event_and_list_events_since(
    store: SqlMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_ACTOR", "ci-bot")
    assert store.list_events() == []
    store.append_event("promote", "visa:1", reason="passed gates", details={"alias": "prod"})
    time.sleep(0.01)
    store.append_event("rollback", "visa:1")

    events = store.list_events()
    assert [(e.action, e.entity) for e in events] == [("promote", "visa:1"), ("rollback", "visa:1")]
    first, second = events
    assert first.actor == "ci-bot"
    assert first.reason == "passed gates"
    assert first.details == {"alias": "prod"}
    assert second.reason is None
    assert second.details == {}
    assert first.id < second.id
    assert first.at < second.at
    assert store.list_events(since=second.at) == [second]
    assert store.list_events(since=first.at) == events
    assert store.list_events(since=second.at + 1) == []


# --- transactions and errors ----------------------------------------------------------------


def test_a_failing_complete_step_leaves_no_partial_rows(store: SqlMetadataStore) -> None:
    data = _ref("data")
    run_id, ids = store.create_run("p", ["prep", "train"], executor="local")
    store.start_step(ids["prep"], cache_key="k0")
    store.complete_step(ids["prep"], inputs=[], outputs=[data])
    store.start_step(ids["train"], cache_key="k")
    clash = [_ref("model", "first"), _ref("model", "second")]  # one name, two artifacts

    with pytest.raises(MetadataStorageError) as info:
        store.complete_step(ids["train"], inputs=[data], outputs=clash, metrics={"a": 1})

    assert isinstance(info.value, ConveyorError)
    assert isinstance(info.value.__cause__, IntegrityError)
    for ref in clash:
        with pytest.raises(NotFoundError):
            store.artifact_kind(ref.digest)
    assert _count(store, t.artifacts) == 1  # only "data", from the step before
    assert _count(store, t.step_artifacts, t.step_artifacts.c.step_id == ids["train"]) == 0
    assert _count(store, t.metrics) == 0
    step = store.get_run(run_id).steps[1]
    assert step.status is StepStatus.RUNNING
    assert step.ended_at is None
    # The store is still usable after the rollback.
    store.complete_step(ids["train"], inputs=[data], outputs=[clash[0]])
    assert store.get_run(run_id).steps[1].outputs == (clash[0],)


def test_unreachable_postgres_raises_storage_error_without_the_password() -> None:
    require_module("psycopg", "the postgres extra (conveyor[postgres])")
    secret = "hunter2-s3cr3t"
    url = f"postgresql+psycopg://conveyor:{secret}@127.0.0.1:1/conveyor?connect_timeout=3"
    with pytest.raises(MetadataStorageError) as info:
        open_metadata_store(url)
    message = str(info.value)
    assert secret not in message
    assert "127.0.0.1:1" in message
    assert "***" in message
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)


# --- serving: API keys and the prediction log index ------------------------------------------


def test_api_keys_create_list_revoke(store: SqlMetadataStore) -> None:
    store.create_api_key("ci", key_id="a" * 12, salt="00" * 16, hashed="f" * 64)
    store.create_api_key("ops", key_id="b" * 12, salt="11" * 16, hashed="e" * 64)
    with pytest.raises(MetadataStorageError, match="exists already"):
        store.create_api_key("ci", key_id="c" * 12, salt="22" * 16, hashed="d" * 64)
    assert [k.name for k in store.list_api_keys()] == ["ci", "ops"]
    revoked = store.revoke_api_key("b" * 12, reason="rotated")  # by id
    assert revoked.revoked and revoked.name == "ops"
    assert store.revoke_api_key("ops").revoked_at == revoked.revoked_at  # idempotent
    assert [k.revoked for k in store.list_api_keys()] == [False, True]
    with pytest.raises(NotFoundError):
        store.revoke_api_key("nobody")
    actions = [(e.action, e.entity, e.reason) for e in store.list_events()]
    assert actions == [
        ("key.create", "key:ci", None),
        ("key.create", "key:ops", None),
        ("key.revoke", "key:ops", "rotated"),
    ]


def test_revoke_never_guesses_between_a_name_and_an_id(store: SqlMetadataStore) -> None:
    """Hardening finding 6: a key NAMED like another key's id was revoked instead of it."""
    with pytest.raises(MetadataError, match="looks like a key id"):
        store.create_api_key("c" * 12, key_id="d" * 12, salt="00" * 16, hashed="f" * 64)
    store.create_api_key("victim", key_id="a" * 12, salt="00" * 16, hashed="f" * 64)
    with _engine(store).begin() as conn:  # a key named like an id, from before names were checked
        conn.execute(
            sa.insert(t.api_keys).values(
                key_id="b" * 12,
                name="a" * 12,
                salt="11" * 16,
                hash="e" * 64,
                created_at=1.0,
                created_by="old",
            )
        )
    with pytest.raises(MetadataError, match="--by name or --by id"):
        store.revoke_api_key("a" * 12)
    assert not any(k.revoked for k in store.list_api_keys())
    assert store.revoke_api_key("a" * 12, by="id").name == "victim"
    assert store.revoke_api_key("a" * 12, by="name").key_id == "b" * 12
    with pytest.raises(NotFoundError):
        store.revoke_api_key("victim", by="id")


@pytest.mark.parametrize("alias", ["", "prod@eu", "prod uction", "prod\n2026 forged", "-x"])
def test_alias_names_that_would_break_references_are_refused(
    store: SqlMetadataStore, alias: str
) -> None:
    """Hardening finding 15: an alias with ``@``, spaces or a newline could never be resolved
    and forged lines in ``models show``; an empty ``--alias`` silently meant production."""
    _run_with_step(store, outputs=[_ref("model", "m")])
    version = store.register_model_version("m", digest=_digest("m"), run_id=None).version
    with pytest.raises(RegistryError, match="alias"):
        store.set_alias("m", alias, version)
    assert store.aliases("m") == {}


@pytest.mark.parametrize("name", ["fraud@eu", "fraud:2", "", "a b", "x" * 101])
def test_model_names_that_would_break_references_are_refused(
    store: SqlMetadataStore, name: str
) -> None:
    with pytest.raises(RegistryError, match="model name"):
        store.register_model_version(name, digest=_digest("m"), run_id=None)
    assert store.list_model_versions() == []


def test_prediction_logs_are_indexed_by_model_version_and_time(store: SqlMetadataStore) -> None:
    for i, (version, first, last) in enumerate([(1, 10.0, 20.0), (1, 21.0, 30.0), (2, 31.0, 40.0)]):
        ref = _ref("prediction_log", f"log{i}", kind="parquet")
        record = store.record_prediction_log(
            "m", version, ref, n_rows=5 + i, first_at=first, last_at=last
        )
        assert (record.digest, record.n_rows) == (ref.digest, 5 + i)
    assert store.artifact_kind(_digest("log0")) == "parquet"
    assert [p.n_rows for p in store.list_prediction_logs("m")] == [5, 6, 7]
    assert [p.n_rows for p in store.list_prediction_logs("m", version=1)] == [5, 6]
    assert [p.n_rows for p in store.list_prediction_logs("m", since=25.0)] == [6, 7]
    assert [p.n_rows for p in store.list_prediction_logs("m", until=20.5)] == [5]
    assert store.list_prediction_logs("other") == []


def test_list_events_by_action_and_newest(store: SqlMetadataStore) -> None:
    for i in range(5):
        store.append_event("monitor.check", f"m:{i}", details={"i": i})
        store.append_event("watch.cycle", "m")
    store.append_event("monitor.check", "other:1")
    checks = store.list_events(entity="m", action="monitor.check")
    assert [e.details["i"] for e in checks] == [0, 1, 2, 3, 4]
    newest = store.list_events(entity="m", action="monitor.check", last=2)
    assert [e.details["i"] for e in newest] == [3, 4]  # oldest first, still
    assert len(store.list_events(action="watch.cycle", last=10)) == 5
