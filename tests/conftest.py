"""Shared service fixtures: an in-process S3 (moto) server and a throw-away PostgreSQL schema.

Tests that use them are marked ``service``. When a service is missing they are skipped with the
reason, unless ``CONVEYOR_REQUIRE_SERVICES=1`` (as in CI), where a missing service fails them.
``require_module`` does the same for an optional package (use it, never ``pytest.importorskip``),
and test modules import both helpers as ``from tests.conftest import ...``.
"""

from __future__ import annotations

import importlib
import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

# Tests train on a few thousand rows, where OpenMP threads in gradient boosting only add
# contention (badly so on a busy 2-core machine); one thread keeps test times stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import ModuleType

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
S3_KEY = S3_SECRET = "testing"
S3_REGION = "us-east-1"


def require_service(name: str, reason: str) -> NoReturn:
    """Skip the test because ``name`` is unavailable, or fail it if services are required.

    Outside a test (at a module's top) it skips, or fails, the whole module.
    """
    __tracebackhide__ = True  # reports name the caller's line, as pytest.importorskip's do
    if os.environ.get("CONVEYOR_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} required (CONVEYOR_REQUIRE_SERVICES=1) but unavailable: {reason}")
    pytest.skip(f"{name} unavailable: {reason}", allow_module_level=True)


def require_module(name: str, reason: str) -> ModuleType:
    """Import ``name``, like ``pytest.importorskip``, but a missing module fails under
    ``CONVEYOR_REQUIRE_SERVICES=1`` (as in CI) instead of skipping: CI must not stay green by
    skipping what it never ran.

    Args:
        name: The module to import, e.g. ``"distributed"``.
        reason: What provides it, for the message, e.g. ``"the dask extra"``.

    Returns:
        The imported module.
    """
    __tracebackhide__ = True
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require_service(f"Python module {name!r}", f"{reason} is not installed ({exc})")


# --- S3 (moto server) -------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Location:
    """A fresh bucket on the moto server: pass both to ``open_artifact_store``."""

    uri: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    def client(self) -> Any:
        """A boto3 S3 client on the same endpoint, to look behind the store's back."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.storage_options["endpoint_url"],
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server running in this process on a free loopback port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        require_service("S3 (moto server)", f"moto[server] is not installed ({exc})")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except OSError as exc:
        require_service("S3 (moto server)", f"cannot start it: {exc}")
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket_uri(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Location]:
    """A new, empty bucket; its URI points at the ``artifacts`` prefix inside it."""
    try:
        import s3fs
    except ImportError as exc:
        require_service("S3 (moto server)", f"s3fs is not installed ({exc})")
    # Dummy credentials, so nothing can reach a real AWS account even if an endpoint leaks.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    bucket = f"conveyor-test-{uuid.uuid4().hex[:12]}"
    location = S3Location(
        uri=f"s3://{bucket}/artifacts",
        storage_options={"endpoint_url": s3_endpoint, "key": S3_KEY, "secret": S3_SECRET},
    )
    location.client().create_bucket(Bucket=bucket)
    # s3fs caches filesystem instances (and their listings) across tests: start each one clean.
    s3fs.S3FileSystem.clear_instance_cache()
    yield location
    s3fs.S3FileSystem.clear_instance_cache()


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL whose connections live in a fresh schema, dropped after the test."""
    try:
        import sqlalchemy as sa
    except ImportError as exc:  # pragma: no cover - sqlalchemy is a core dependency
        require_service("PostgreSQL", f"sqlalchemy is not installed ({exc})")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        require_service("PostgreSQL", f"psycopg is not installed ({exc})")

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(
        POSTGRES_URL, connect_args={"connect_timeout": 3}, poolclass=sa.NullPool
    )
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        require_service("PostgreSQL", f"{POSTGRES_URL}: {exc.orig}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            # A test that leaks a connection would make DROP wait forever; fail loudly instead.
            conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# --- a trained project ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_visa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A visa project (1,500 rows, small models) with version 1 promoted to production,
    trained once per session: copy it before changing it (tests/serving and tests/e2e do)."""
    from conveyor.cli.init import scaffold
    from conveyor.examples.visa.generate import write_csv
    from conveyor.project import Project
    from tests._visa import shrink_visa_config

    root = tmp_path_factory.mktemp("visa-served")
    scaffold(root, example="visa")
    write_csv(root / "data" / "visa.csv", n_rows=1500)
    shrink_visa_config(root)
    with Project.load(root) as proj:
        result = proj.run("train")
        assert result.status == "succeeded", result
        assert proj.metadata.get_alias("visa-approval", "production") == 1
    return root
