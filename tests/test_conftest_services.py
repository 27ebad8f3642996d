"""The shared service fixtures do what the rest of the suite relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def require_module(pytestconfig: pytest.Config) -> Any:
    conftest = pytestconfig.pluginmanager.get_plugin(str(Path(__file__).with_name("conftest.py")))
    assert conftest is not None
    return conftest.require_module


MISSING_MODULE = "conveyor_test_no_such_module"


def test_require_module_returns_the_module(require_module: Any) -> None:
    assert require_module("json", "the standard library") is json


def test_require_module_skips_a_missing_module_by_default(
    require_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"'{MISSING_MODULE}' unavailable: the x extra"):
        require_module(MISSING_MODULE, "the x extra")


def test_require_module_fails_a_missing_module_when_services_are_required(
    require_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_REQUIRE_SERVICES", "1")
    with pytest.raises(
        pytest.fail.Exception,
        match=rf"'{MISSING_MODULE}' required \(CONVEYOR_REQUIRE_SERVICES=1\) .*the x extra",
    ):
        require_module(MISSING_MODULE, "the x extra")


ON_IMPORT = f"""\
from tests.conftest import require_module

missing = require_module("{MISSING_MODULE}", "the x extra")


def test_never_runs():
    raise AssertionError("a test of a module whose import was required ran")
"""


@pytest.mark.parametrize("required", [False, True], ids=["locally", "in-ci"])
def test_a_missing_module_at_import_skips_its_tests_locally_and_fails_ci(
    tmp_path: Path, required: bool
) -> None:
    """What ``pytest.importorskip`` at a module's top never did: turn CI red."""
    (tmp_path / "test_needs_x.py").write_text(ON_IMPORT, encoding="utf-8")
    (tmp_path / "test_other.py").write_text("def test_passes():\n    pass\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_REQUIRE_SERVICES"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if required:
        env["CONVEYOR_REQUIRE_SERVICES"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    if required:  # red: the collection error stops the whole run
        assert proc.returncode != 0, out
        assert f"'{MISSING_MODULE}' required (CONVEYOR_REQUIRE_SERVICES=1)" in out
        assert "Interrupted: 1 error during collection" in out, out
        assert "passed" not in out, out
    else:  # the skip names the test module's line, as pytest.importorskip's did
        assert proc.returncode == 0, out
        assert f"test_needs_x.py:3: Python module '{MISSING_MODULE}' unavailable: the x" in out
        assert "1 passed, 1 skipped" in out, out
    assert "a test of a module whose import was required ran" not in out


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
