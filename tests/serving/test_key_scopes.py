"""API key scopes: predict (the model server), read and admin (the UI).

Keys made before scopes existed are predict keys: the migration is run on populated SQLite and
PostgreSQL stores (and on a trained project whose server then scores with its old key); the
server refuses a key without ``predict``, naming the scope; the CLI creates and lists scopes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from conveyor.errors import MetadataError
from conveyor.project import Project
from conveyor.serving.app import create_app
from conveyor.serving.auth import ADMIN, PREDICT, READ, AuthResult, KeyRing, StaticKeys, create_key
from conveyor.store.metadata import (
    ArtifactRef,
    RunStatus,
    SqlMetadataStore,
    open_metadata_store,
)
from conveyor.store.metadata import tables as t
from conveyor.store.metadata.migrate import _SCRIPTS, HEAD
from tests.e2e.conftest import conveyor
from tests.serving.conftest import LiveServer, settings_for, visa_records

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BEFORE_SCOPES = "0006"


@pytest.fixture(params=["sqlite-file", pytest.param("postgresql", marks=pytest.mark.service)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh persistent metadata database: a SQLite file (foreign keys on) or PostgreSQL."""
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def store(url: str) -> Iterator[SqlMetadataStore]:
    opened = open_metadata_store(url)
    try:
        yield opened
    finally:
        opened.close()


def _migrate(store: SqlMetadataStore, direction: str, revision: str) -> None:
    """``alembic upgrade|downgrade REVISION`` on the store's database, as conveyor runs it."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    with store._engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def _revision_and_columns(store: SqlMetadataStore) -> tuple[str, list[str]]:
    with store._engine.connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        columns = [c["name"] for c in sa.inspect(conn).get_columns("api_keys")]
    return revision, columns


def _counts(store: SqlMetadataStore) -> dict[str, int]:
    tables = (t.runs, t.steps, t.artifacts, t.events, t.api_keys, t.prediction_logs)
    with store._engine.connect() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in tables
        }


def _populate(store: SqlMetadataStore) -> None:
    """Rows in the tables that reference others (steps -> runs, outputs and the prediction log
    -> artifacts): what makes a table-copying migration fail on a real store."""
    for n in range(3):
        run_id, steps = store.create_run("train", ["ingest", "fit"], executor="local")
        data = ArtifactRef(name="data", digest=f"{n:x}".rjust(64, "a"), kind="parquet", size=9)
        model = ArtifactRef(name="model", digest=f"{n:x}".rjust(64, "b"), kind="joblib", size=9)
        store.start_step(steps["ingest"], cache_key=f"ingest-{n}")
        store.complete_step(steps["ingest"], inputs=[], outputs=[data])
        store.start_step(steps["fit"], cache_key=f"fit-{n}")
        store.complete_step(steps["fit"], inputs=[data], outputs=[model])
        store.finish_run(run_id, RunStatus.SUCCEEDED)
        store.record_prediction_log(
            "m", 1, ArtifactRef("log", "c" * 63 + str(n), "parquet", 9), n_rows=5, first_at=1,
            last_at=2,
        )  # fmt: skip


# --- the store -------------------------------------------------------------------------------


def test_a_key_keeps_exactly_its_scopes_and_the_audit_event_names_them(
    store: SqlMetadataStore,
) -> None:
    both = create_key(store, "approver", [ADMIN, READ, ADMIN])
    plain = create_key(store, "scorer")
    raw = store.create_api_key("raw-admin", key_id="0" * 11 + "f", salt="00", hashed="x",
                               scopes=["admin"])  # fmt: skip
    assert both.record.scopes == (READ, ADMIN)  # deduplicated, in the order of KEY_SCOPES
    assert plain.record.scopes == (PREDICT,)
    assert raw.scopes == (ADMIN,)  # the store implies nothing; only create_key adds read
    listed = {k.name: k.scopes for k in store.list_api_keys()}
    assert listed == {"approver": (READ, ADMIN), "scorer": (PREDICT,), "raw-admin": (ADMIN,)}
    events = {e.entity: e.details for e in store.list_events() if e.action == "key.create"}
    assert events["key:approver"] == {"id": both.record.key_id, "scopes": [READ, ADMIN]}
    assert events["key:scorer"]["scopes"] == [PREDICT]
    assert store.revoke_api_key("approver").scopes == (READ, ADMIN)


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["read", "write"], "unknown scope 'write'; scopes are predict, read, admin"),
        (["Predict"], "unknown scope 'Predict'"),
        ([], "at least one scope"),
    ],
)
def test_an_unknown_or_empty_scope_is_refused_naming_it(
    store: SqlMetadataStore, scopes: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        create_key(store, "k", scopes)
    assert "API key 'k'" in str(caught.value)
    assert store.list_api_keys() == []
    assert [e for e in store.list_events() if e.action == "key.create"] == []


def test_a_key_name_that_looks_like_an_id_is_still_refused_first(store: SqlMetadataStore) -> None:
    with pytest.raises(MetadataError, match="looks like a key id"):
        create_key(store, "0123456789ab", ["read"])


def test_the_ring_refuses_a_key_without_the_needed_scope(store: SqlMetadataStore) -> None:
    scorer = create_key(store, "scorer").token
    reader = create_key(store, "reader", [READ]).token
    both = create_key(store, "both", [PREDICT, READ]).token
    gone = create_key(store, "gone", [READ]).token
    store.revoke_api_key("gone")
    ring = KeyRing(store.list_api_keys)
    assert ring.check(scorer) == (AuthResult.OK, "scorer")  # predict is what the server asks
    assert ring.check(scorer, scope=READ) == (AuthResult.SCOPE, "scorer")
    assert ring.check(reader) == (AuthResult.SCOPE, "reader")
    assert ring.check(reader, scope=READ) == (AuthResult.OK, "reader")
    assert ring.check(reader, scope=ADMIN) == (AuthResult.SCOPE, "reader")
    assert ring.check(both) == ring.check(both, scope=READ) == (AuthResult.OK, "both")
    # revoked wins over a missing scope; a wrong secret is told nothing about scopes
    assert ring.check(gone, scope=PREDICT) == (AuthResult.REVOKED, "gone")
    assert ring.check(reader[:-1] + ("A" if reader[-1] != "A" else "B"), scope=PREDICT) == (
        AuthResult.INVALID,
        "reader",
    )


def test_bundle_keys_are_predict_keys() -> None:
    token = "t" * 32
    keys = StaticKeys(token)
    assert keys.check(token) == (AuthResult.OK, "env-1")
    assert keys.check(token, scope=READ) == (AuthResult.SCOPE, "env-1")
    assert keys.check("u" * 32) == (AuthResult.INVALID, None)


# --- the migration ---------------------------------------------------------------------------


def test_the_migration_makes_old_keys_predict_keys_on_a_populated_store(url: str) -> None:
    store = open_metadata_store(url)
    try:
        _populate(store)
        old = create_key(store, "old-service")
        leaver = create_key(store, "leaver")
        store.revoke_api_key("leaver")
        _migrate(
            store, "downgrade", BEFORE_SCOPES
        )  # the store as the release before scopes left it
        assert _revision_and_columns(store) == (BEFORE_SCOPES, [
            "key_id", "name", "salt", "hash", "created_at", "created_by", "revoked_at",
        ])  # fmt: skip
        before = _counts(store)
    finally:
        store.close()
    reopened = open_metadata_store(url)  # opening migrates to the head
    try:
        revision, columns = _revision_and_columns(reopened)
        assert (revision, columns[-1]) == (HEAD, "scopes")
        assert _counts(reopened) == before == {
            "runs": 3, "steps": 6, "artifacts": 9, "events": 3, "api_keys": 2,
            "prediction_logs": 3,
        }  # fmt: skip
        keys = {k.name: k for k in reopened.list_api_keys()}
        assert {n: k.scopes for n, k in keys.items()} == {
            "old-service": (PREDICT,),
            "leaver": (PREDICT,),
        }
        assert keys["leaver"].revoked
        ring = KeyRing(reopened.list_api_keys)
        assert ring.check(old.token) == (AuthResult.OK, "old-service")
        assert ring.check(leaver.token) == (AuthResult.REVOKED, "leaver")
        assert ring.check(old.token, scope=READ) == (AuthResult.SCOPE, "old-service")
        # the migrated store takes new keys with scopes
        assert create_key(reopened, "ui", [ADMIN]).record.scopes == (READ, ADMIN)
    finally:
        reopened.close()


def test_a_trained_project_from_before_scopes_serves_with_its_old_key(
    visa_project: Path,
) -> None:
    with Project.load(visa_project) as proj:
        old = create_key(proj.metadata, "old-service").token
        _migrate(proj.metadata, "downgrade", BEFORE_SCOPES)
        assert _revision_and_columns(proj.metadata)[0] == BEFORE_SCOPES
    with LiveServer(create_app(settings_for(visa_project))) as server:  # opening migrates
        response = httpx.post(
            f"{server.url}/v1/predict",
            json={"records": visa_records(2)},
            headers={"Authorization": f"Bearer {old}"},
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 2
    with Project.load(visa_project) as proj:
        assert _revision_and_columns(proj.metadata)[0] == HEAD
        assert [k.scopes for k in proj.metadata.list_api_keys()] == [(PREDICT,)]


# --- the model server ------------------------------------------------------------------------


def test_the_server_refuses_keys_without_predict_naming_the_scope(visa_project: Path) -> None:
    with Project.load(visa_project) as proj:
        tokens = {
            name: create_key(proj.metadata, name, scopes).token
            for name, scopes in {
                "scorer": [PREDICT],
                "ui-reader": [READ],
                "ui-admin": [ADMIN],
                "both": [PREDICT, READ],
            }.items()
        }
    body = {"records": visa_records(1)}
    with LiveServer(create_app(settings_for(visa_project))) as server:
        for name in ("ui-reader", "ui-admin"):
            for method, path in (("POST", "/v1/predict"), ("GET", "/v1/model")):
                response = httpx.request(
                    method, server.url + path, json=body, headers={"X-API-Key": tokens[name]}
                )
                assert response.status_code == 403, (name, path, response.text)
                error = response.json()["error"]
                assert error["code"] == "missing_scope"
                assert "lacks the 'predict' scope" in error["message"]
                assert "--scope predict" in error["message"]
        for name in ("scorer", "both"):
            response = httpx.post(
                f"{server.url}/v1/predict", json=body, headers={"X-API-Key": tokens[name]}
            )
            assert response.status_code == 200, (name, response.text)
        metrics = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": tokens["scorer"]}).text
    assert 'conveyor_auth_failures_total{reason="scope"} 4.0' in metrics


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaffolded project (no training needed to hold keys)."""
    root = tmp_path_factory.mktemp("keys") / "p"
    conveyor("init", root, "--example", "visa")
    return root


def test_keys_create_takes_scopes_and_keys_list_shows_them(keys_project: Path) -> None:
    p = ("-p", keys_project)
    made = {
        name: json.loads(conveyor("keys", "create", "--name", name, *flags, "--json", *p).stdout)
        for name, flags in {
            "svc": [],
            "approver": ["--scope", "admin"],
            "viewer": ["-s", "read"],
            "all": ["--scope", "predict", "--scope", "read", "--scope", "admin"],
        }.items()
    }
    assert {n: m["scopes"] for n, m in made.items()} == {
        "svc": ["predict"],
        "approver": ["read", "admin"],
        "viewer": ["read"],
        "all": ["predict", "read", "admin"],
    }
    assert all(m["key"].startswith(f"cvk_{m['id']}_") for m in made.values())
    listed = json.loads(conveyor("keys", "list", "--json", *p).stdout)
    assert {k["name"]: k["scopes"] for k in listed} == {n: m["scopes"] for n, m in made.items()}
    table = conveyor("keys", "list", *p, env={"COLUMNS": "200"}).stdout
    assert "scopes" in table
    assert "read, admin" in table
    assert "predict, read, admin" in table
    human = conveyor("keys", "create", "--name", "person", "--scope", "read", *p).stdout
    assert "scopes read" in human
    assert "sign-in page of 'conveyor ui'" in human
    assert "Bearer" not in human  # a read key is no model server key


def test_keys_create_refuses_an_unknown_scope(keys_project: Path) -> None:
    done = conveyor(
        "keys", "create", "--name", "x", "--scope", "write", "-p", keys_project, check=False
    )
    assert done.returncode == 2
    assert "write" in done.stderr
    assert "predict" in done.stderr  # the choices are named
    listed = json.loads(conveyor("keys", "list", "--json", "-p", keys_project).stdout)
    assert "x" not in {k["name"] for k in listed}
