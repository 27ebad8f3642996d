"""Shared service fixtures: an in-process S3 (moto) server, the GCS emulator and Azurite as
subprocesses on free loopback ports, and a throw-away PostgreSQL schema.

Tests that use them are marked ``service``. When a service is missing they are skipped with the
reason, unless ``CONVEYOR_REQUIRE_SERVICES=1`` (as in CI), where a missing service fails them.
``require_module`` does the same for an optional package (use it, never ``pytest.importorskip``),
and test modules import both helpers as ``from tests.conftest import ...``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import pytest

# Tests train on a few thousand rows, where OpenMP threads in gradient boosting only add
# contention (badly so on a busy 2-core machine); one thread keeps test times stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
S3_KEY = S3_SECRET = "testing"
S3_REGION = "us-east-1"
EMULATOR_START_TIMEOUT = 30.0  # seconds; Azurite (node) takes about one on an idle machine


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


# --- emulators started as subprocesses ----------------------------------------------------------


def _free_port() -> int:
    """A loopback port nobody listens on now (the emulators take a port, not port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def _emulator(name: str, command: list[str], probe: str) -> Iterator[None]:
    """Run ``command`` until the context exits; enter once ``probe`` answers any HTTP status.

    Its output goes to a temporary file, shown when it dies or does not answer in time.
    """
    import httpx

    from tests._processes import die_with_parent

    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        except OSError as exc:
            require_service(name, f"cannot start {command[0]}: {exc}")
        try:
            deadline = time.monotonic() + EMULATOR_START_TIMEOUT
            while True:
                try:
                    httpx.get(probe, timeout=1.0)
                    break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-2000:]
                    state = f"exited {proc.returncode}" if proc.poll() is not None else "is silent"
                    require_service(name, f"{' '.join(command)} {state}:\n{output}")
                time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class CloudLocation:
    """A fresh bucket (GCS) or container (Azure) on an emulator: pass ``uri`` and
    ``storage_options`` to ``open_artifact_store``, or as a data source's path and
    ``options.storage_options``. ``read``/``write`` reach objects behind conveyor's back."""

    uri: str
    storage_options: dict[str, Any]
    endpoint: str

    @property
    def bucket(self) -> str:
        """The bucket or container name."""
        return self.uri.split("://", 1)[1].split("/", 1)[0]

    def read(self, key: str) -> bytes:
        """The bytes of object ``key`` (relative to the bucket), read with the service's API."""
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        """Replace object ``key`` (relative to the bucket), with the service's API."""
        raise NotImplementedError


# --- GCS (gcp-storage-emulator) -----------------------------------------------------------------


@dataclass(frozen=True)
class GcsLocation(CloudLocation):
    """A bucket on the GCS emulator, reached through its JSON API with httpx."""

    def read(self, key: str) -> bytes:
        import httpx

        url = f"{self.endpoint}/download/storage/v1/b/{self.bucket}/o/{quote(key, safe='')}"
        response = httpx.get(url, params={"alt": "media"})
        response.raise_for_status()
        return response.content

    def write(self, key: str, data: bytes) -> None:
        import httpx

        response = httpx.post(
            f"{self.endpoint}/upload/storage/v1/b/{self.bucket}/o",
            params={"uploadType": "media", "name": key},
            content=data,
        )
        response.raise_for_status()


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """URL of a GCS emulator (gcp-storage-emulator, in memory) on a free loopback port."""
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        require_service("GCS (gcp-storage-emulator)", "the gcp-storage-emulator package is missing")
    port = _free_port()
    command = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--in-memory", "--quiet"]
    endpoint = f"http://127.0.0.1:{port}"
    with _emulator("GCS (gcp-storage-emulator)", command, f"{endpoint}/storage/v1/b"):
        yield endpoint


@pytest.fixture
def gcs_bucket_uri(gcs_endpoint: str) -> Iterator[GcsLocation]:
    """A new, empty bucket; its URI points at the ``artifacts`` prefix inside it.

    ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` is deliberately left alone: conveyor must cope
    without it (see conveyor.store.artifacts._filesystems).
    """
    import httpx

    gcsfs = require_module("gcsfs", "the gcs extra")
    bucket = f"conveyor-test-{uuid.uuid4().hex[:12]}"
    response = httpx.post(
        f"{gcs_endpoint}/storage/v1/b", params={"project": "conveyor"}, json={"name": bucket}
    )
    response.raise_for_status()
    # token "anon": no credentials to look up, and no Google server to ask for any.
    yield GcsLocation(
        uri=f"gs://{bucket}/artifacts",
        storage_options={"endpoint_url": gcs_endpoint, "token": "anon"},
        endpoint=gcs_endpoint,
    )
    gcsfs.GCSFileSystem.clear_instance_cache()


# --- Azure Blob (Azurite) -----------------------------------------------------------------------

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented development key: public, and accepted by nothing but an emulator.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_connection_string(endpoint: str, *, key: str = AZURITE_KEY) -> str:
    """The connection string for Azurite's development account at ``endpoint``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


def find_azurite() -> str | None:
    """``$CONVEYOR_AZURITE``, else ``azurite-blob`` on PATH, else where .ci/run installs it."""
    configured = os.environ.get("CONVEYOR_AZURITE")
    if configured:
        return configured
    found = shutil.which("azurite-blob")
    if found:
        return found
    cached = Path.home() / ".cache" / "conveyor-ci" / "node_modules" / ".bin" / "azurite-blob"
    return str(cached) if cached.is_file() else None


@dataclass(frozen=True)
class AzureLocation(CloudLocation):
    """A container on Azurite, reached through azure-storage-blob."""

    def _blob(self, key: str) -> Any:
        from azure.storage.blob import BlobClient

        conn = self.storage_options["connection_string"]
        return BlobClient.from_connection_string(conn, self.bucket, key)

    def read(self, key: str) -> bytes:
        with self._blob(key) as blob:
            data: bytes = blob.download_blob().readall()
        return data

    def write(self, key: str, data: bytes) -> None:
        with self._blob(key) as blob:
            blob.upload_blob(data, overwrite=True)


@pytest.fixture(scope="session")
def azurite_endpoint() -> Iterator[str]:
    """URL of an Azurite Blob service (in memory) on a free loopback port."""
    azurite = find_azurite()
    if azurite is None:
        require_service(
            "Azure Blob (Azurite)",
            "azurite-blob is not on PATH nor in ~/.cache/conveyor-ci "
            "(.ci/run installs it: npm i azurite@3.35.0; or set CONVEYOR_AZURITE)",
        )
    port = _free_port()
    command = [azurite, "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    command += ["--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
    endpoint = f"http://127.0.0.1:{port}"
    with _emulator("Azure Blob (Azurite)", command, f"{endpoint}/{AZURITE_ACCOUNT}?comp=list"):
        yield endpoint


@pytest.fixture
def azure_container_uri(azurite_endpoint: str) -> Iterator[AzureLocation]:
    """A new, empty container; its URI (``az://``) points at the ``artifacts`` prefix in it."""
    adlfs = require_module("adlfs", "the azure extra")
    from azure.storage.blob import BlobServiceClient  # adlfs depends on it

    container = f"conveyor-test-{uuid.uuid4().hex[:12]}"
    conn = azurite_connection_string(azurite_endpoint)
    with BlobServiceClient.from_connection_string(conn) as service:
        service.create_container(container)
    yield AzureLocation(
        uri=f"az://{container}/artifacts",
        storage_options={"connection_string": conn},
        endpoint=azurite_endpoint,
    )
    adlfs.AzureBlobFileSystem.clear_instance_cache()


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
