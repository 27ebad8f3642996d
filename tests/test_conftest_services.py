"""The shared service fixtures do what the rest of the suite relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa


@pytest.fixture
def require_service(pytestconfig: pytest.Config) -> Any:
    # The conftest module has no stable import name (it depends on pytest's import mode),
    # so take the one pytest loaded, registered under its path.
    conftest = pytestconfig.pluginmanager.get_plugin(str(Path(__file__).with_name("conftest.py")))
    assert conftest is not None
    return conftest.require_service


def test_require_service_skips_by_default(
    require_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL unavailable: down"):
        require_service("PostgreSQL", "down")


def test_require_service_fails_when_services_are_required(
    require_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match=r"PostgreSQL required \(CONVEYOR_REQUIRE"):
        require_service("PostgreSQL", "down")


@pytest.mark.service
def test_postgres_url_pins_search_path_to_a_fresh_schema(postgres_url: str) -> None:
    schema = sa.engine.make_url(postgres_url).query["options"].removeprefix("-csearch_path=")
    assert schema.startswith("t_")
    table = f"probe_{schema}"  # unique, so other runs' schemas on the server cannot match
    engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT current_schema()")).scalar_one() == schema
            conn.execute(sa.text(f"CREATE TABLE {table} (id integer PRIMARY KEY)"))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (1)"))
            where = (
                conn.execute(
                    sa.text(
                        "SELECT table_schema FROM information_schema.tables WHERE table_name = :t"
                    ),
                    {"t": table},
                )
                .scalars()
                .all()
            )
            assert where == [schema]
            assert sa.inspect(conn).get_table_names() == [table]
    finally:
        engine.dispose()


@pytest.mark.service
def test_s3_bucket_uri_is_a_fresh_empty_bucket(s3_bucket_uri: Any) -> None:
    assert s3_bucket_uri.uri.startswith(f"s3://{s3_bucket_uri.bucket}/")
    listing = s3_bucket_uri.client().list_objects_v2(Bucket=s3_bucket_uri.bucket)
    assert listing["KeyCount"] == 0
