"""open_metadata_store: resolving a URL into a migrated store, and refusing bad ones."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.exc import ArgumentError

from conveyor.errors import MetadataError, MetadataStorageError
from conveyor.store.metadata import SqlMetadataStore, open_metadata_store

if TYPE_CHECKING:
    from pathlib import Path


def test_sqlite_path_gets_its_parent_folders_created(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "meta.db"
    store = open_metadata_store(f"sqlite:///{db}")
    try:
        assert isinstance(store, SqlMetadataStore)
        run_id, _ = store.create_run("p", ["a"], executor="local")
        assert store.get_run(run_id).id == run_id
    finally:
        store.close()
    assert db.is_file()


def test_file_database_is_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    open_metadata_store(f"sqlite:///{db}").close()
    # WAL is a property of the database file: a plain connection sees it too.
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_in_memory_database_works_across_calls() -> None:
    store = open_metadata_store("sqlite://")
    try:
        run_id, _ = store.create_run("p", ["a"], executor="local")
        assert store.list_runs()[0].id == run_id
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "://nothing",
        "sqlite:/",
        "",
        "postgresql+psycopg://u:s3cret@host:notaport/db",  # make_url: bare ValueError
    ],
)
def test_invalid_url_raises_storage_error(url: str) -> None:
    with pytest.raises(MetadataStorageError, match="invalid metadata URL") as info:
        open_metadata_store(url)
    assert isinstance(info.value, MetadataError)
    # The unparsable URL may hold a password: it is neither echoed nor chained.
    assert "s3cret" not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("url", ["nosuchdb://host/db", "postgresql+nosuchdriver://u@host/db"])
def test_unknown_driver_raises_storage_error(url: str) -> None:
    with pytest.raises(MetadataStorageError) as info:
        open_metadata_store(url)
    assert isinstance(info.value.__cause__, ArgumentError)  # NoSuchModuleError is one
