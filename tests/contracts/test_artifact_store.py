"""Contract every artifact store backend honours: in-memory, local folder, S3 (moto), GCS (the
GCS emulator) and Azure Blob (Azurite)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression

from conveyor.errors import (
    ArtifactCorruptedError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactStorageError,
    SerializationError,
)
from conveyor.store.artifacts import AbstractArtifactStore, open_artifact_store, sha256
from conveyor.store.artifacts._filesystems import GCSFS_HNS_VARIABLE
from conveyor.store.artifacts.fsspec import FsspecArtifactStore
from tests.conftest import CloudLocation

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MISSING = "0" * 64


@dataclass
class Backend:
    """A store plus a way to damage its stored bytes without going through the store."""

    name: str
    store: AbstractArtifactStore
    corrupt: Callable[[str], None]


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


def _memory_backend() -> Backend:
    store = open_artifact_store("memory://")

    def corrupt(digest: str) -> None:
        blobs: dict[str, bytes] = store._blobs  # type: ignore[attr-defined]
        blobs[digest] = _flip_first_byte(blobs[digest])

    return Backend("memory", store, corrupt)


def _local_backend(root: Path) -> Backend:
    store = open_artifact_store(str(root))

    def corrupt(digest: str) -> None:
        path = Path(store.location(digest))
        path.write_bytes(_flip_first_byte(path.read_bytes()))

    return Backend("local", store, corrupt)


def _s3_backend(loc: Any) -> Backend:
    store = open_artifact_store(loc.uri, storage_options=loc.storage_options)

    def corrupt(digest: str) -> None:
        bucket, key = store.location(digest).removeprefix("s3://").split("/", 1)
        client = loc.client()
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.put_object(Bucket=bucket, Key=key, Body=_flip_first_byte(data))

    return Backend("s3", store, corrupt)


def _cloud_backend(name: str, loc: CloudLocation) -> Backend:
    """A GCS or Azure store; corrupting goes through the service's own API."""
    store = open_artifact_store(loc.uri, storage_options=loc.storage_options)

    def corrupt(digest: str) -> None:
        key = store.location(digest).split("://", 1)[1].split("/", 1)[1]
        loc.write(key, _flip_first_byte(loc.read(key)))

    return Backend(name, store, corrupt)


CLOUD_FIXTURES = {"gcs": "gcs_bucket_uri", "azure": "azure_container_uri"}
SERVICE_BACKENDS = [
    pytest.param(name, marks=pytest.mark.service) for name in ("s3", "gcs", "azure")
]


@pytest.fixture(params=["memory", "local", *SERVICE_BACKENDS])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return _memory_backend()
    if request.param == "local":
        return _local_backend(tmp_path / "artifacts")
    if request.param == "s3":
        return _s3_backend(request.getfixturevalue("s3_bucket_uri"))
    return _cloud_backend(request.param, request.getfixturevalue(CLOUD_FIXTURES[request.param]))


@pytest.fixture
def store(backend: Backend) -> AbstractArtifactStore:
    return backend.store


# --- bytes ----------------------------------------------------------------------------------


def test_put_bytes_round_trips_and_addresses_by_sha256(store: AbstractArtifactStore) -> None:
    data = b"conveyor \x00\xff artifact"
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest() == sha256(data)
    assert store.get_bytes(digest) == data


def test_empty_bytes_round_trip(store: AbstractArtifactStore) -> None:
    digest = store.put_bytes(b"")
    assert store.get_bytes(digest) == b""


def test_put_is_idempotent(store: AbstractArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.put_bytes(b"same bytes")

    def no_second_write(digest: str, data: bytes) -> None:
        raise AssertionError(f"artifact {digest} written twice")

    monkeypatch.setattr(store, "_write", no_second_write)
    assert store.put_bytes(b"same bytes") == first
    assert store.get_bytes(first) == b"same bytes"


def test_exists_and_delete(store: AbstractArtifactStore) -> None:
    digest = store.put_bytes(b"short-lived")
    assert store.exists(digest)
    store.delete(digest)
    assert not store.exists(digest)
    store.delete(digest)  # deleting a missing artifact is not an error
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes(digest)


def test_missing_digest_raises_not_found(store: AbstractArtifactStore) -> None:
    assert not store.exists(MISSING)
    with pytest.raises(ArtifactNotFoundError, match=MISSING) as info:
        store.get_bytes(MISSING)
    assert isinstance(info.value, LookupError)
    with pytest.raises(LookupError):
        store.get(MISSING, "json")


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" + "0" * 61, " " + "0" * 63],
)
@pytest.mark.parametrize("verb", ["get_bytes", "exists", "delete", "location"])
def test_invalid_digest_is_rejected(store: AbstractArtifactStore, verb: str, bad: str) -> None:
    with pytest.raises(ArtifactError, match="SHA-256"):
        getattr(store, verb)(bad)


def test_tampered_bytes_raise_corrupted(backend: Backend) -> None:
    data = b"the model that passed its gates"
    digest = backend.store.put_bytes(data)
    backend.corrupt(digest)
    with pytest.raises(ArtifactCorruptedError) as info:
        backend.store.get_bytes(digest)
    err = info.value
    assert digest in str(err)
    assert err.digest == digest
    assert err.actual == sha256(_flip_first_byte(data))
    with pytest.raises(ArtifactCorruptedError):
        backend.store.get(digest, "joblib")  # never unpickle bytes that fail the check


def test_a_memo_is_remembered_replaced_and_missing_until_put(store: AbstractArtifactStore) -> None:
    key = sha256(b"what the memo was computed from")
    assert store.get_memo(key) is None
    store.put_memo(key, b'{"part": 1}')
    assert store.get_memo(key) == b'{"part": 1}'
    store.put_memo(key, b'{"part": 2}')
    assert store.get_memo(key) == b'{"part": 2}'
    assert not store.exists(key)  # memos are not artifacts
    with pytest.raises(ArtifactError):
        store.put_memo("not-a-key", b"")


def test_location_names_the_digest(store: AbstractArtifactStore) -> None:
    digest = store.put_bytes(b"where am I")
    assert digest in store.location(digest)


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = open_artifact_store(str(root))
    for i in range(5):
        store.put_bytes(f"artifact {i}".encode())
    store.put_bytes(b"artifact 0")
    # the store writes incoming/<digest>.<uuid>.part, then renames it into sha256/
    assert (root / "incoming").is_dir(), "the local store no longer writes through incoming/"
    assert list((root / "incoming").iterdir()) == []
    assert list(root.rglob("*.part")) == []
    stored = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert stored == sorted(sha256(f"artifact {i}".encode()) for i in range(5))


def test_a_failed_local_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "artifacts"
    store = open_artifact_store(str(root))
    assert isinstance(store, FsspecArtifactStore)
    fs = store._fs

    def full_disk(path1: str, path2: str, **kwargs: Any) -> None:
        assert Path(path1).is_file() and Path(path1).suffix == ".part"  # the bytes were written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fs, "mv", full_disk)
    with pytest.raises(ArtifactStorageError, match="No space left"):
        store.put_bytes(b"never stored")
    monkeypatch.undo()
    assert list((root / "incoming").iterdir()) == []
    assert not store.exists(sha256(b"never stored"))


def test_local_store_reopens_from_its_uri(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"))
    digest = store.put_bytes(b"persisted")
    assert open_artifact_store(store.uri).get_bytes(digest) == b"persisted"


@pytest.fixture(params=["memory", "local"])
def fast_store(request: pytest.FixtureRequest, tmp_path: Path) -> AbstractArtifactStore:
    if request.param == "memory":
        return open_artifact_store("memory://")
    return open_artifact_store(str(tmp_path / "artifacts"))


# One store serves every example: content addressing makes examples independent of each other.
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=4096))
def test_any_bytes_round_trip(fast_store: AbstractArtifactStore, data: bytes) -> None:
    digest = fast_store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert fast_store.get_bytes(digest) == data


# --- objects --------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [12.5, 3.0, np.nan, 7.25],
            "country": pd.Categorical(["FR", "DE", "FR", "IT"]),
            "approved": [True, False, True, True],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
        },
        index=pd.Index([10, 11, 12, 13], name="row"),
    )


def _fitted_model() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return LogisticRegression(random_state=0).fit(x, y), x


def _figure() -> Figure:
    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    fig.add_subplot().plot([0, 1, 2], [2, 0, 1])
    return fig


def test_dataframe_round_trips_as_parquet(store: AbstractArtifactStore) -> None:
    df = _frame()
    stored = store.put(df)
    assert stored.kind == "parquet"
    assert stored.size == len(store.get_bytes(stored.digest))
    pd.testing.assert_frame_equal(store.get(stored.digest, "parquet"), df)


def test_dict_round_trips_as_json(store: AbstractArtifactStore) -> None:
    obj = {"metrics": {"auc": 0.91, "f1": 0.8}, "features": ["a", "b"], "ok": True, "n": None}
    stored = store.put(obj)
    assert stored.kind == "json"
    assert store.get(stored.digest, "json") == obj


def test_fitted_estimator_round_trips_as_joblib(store: AbstractArtifactStore) -> None:
    model, x = _fitted_model()
    stored = store.put(model)
    assert stored.kind == "joblib"
    loaded = store.get(stored.digest, "joblib")
    assert isinstance(loaded, LogisticRegression)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))


def test_figure_is_stored_as_png(store: AbstractArtifactStore) -> None:
    stored = store.put(_figure())
    assert stored.kind == "png"
    png = store.get(stored.digest, "png")
    assert isinstance(png, bytes)
    assert png.startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    "make",
    [_frame, lambda: {"b": 1, "a": [1, 2]}, lambda: _fitted_model()[0], _figure],
    ids=["dataframe", "dict", "logistic-regression", "figure"],
)
def test_serialization_is_deterministic(store: AbstractArtifactStore, make: Any) -> None:
    obj = make()
    assert store.put(obj).digest == store.put(obj).digest  # same object twice
    assert store.put(make()).digest == store.put(obj).digest  # an equal object, built again


def test_json_digest_ignores_key_order(store: AbstractArtifactStore) -> None:
    assert store.put({"a": 1, "b": 2}).digest == store.put({"b": 2, "a": 1}).digest


@pytest.mark.parametrize(
    "obj",
    [lambda x: x, {"fn": lambda x: x}, threading.Lock()],
    ids=["lambda", "dict-with-lambda", "lock"],
)
def test_unpicklable_object_raises_serialization_error(
    store: AbstractArtifactStore, obj: Any
) -> None:
    with pytest.raises(SerializationError, match="cannot serialize") as info:
        store.put(obj)
    assert isinstance(info.value, TypeError)


def test_unknown_kind_raises_serialization_error(store: AbstractArtifactStore) -> None:
    digest = store.put_bytes(b"{}")
    with pytest.raises(SerializationError, match="unknown artifact kind 'pickle'"):
        store.get(digest, "pickle")


def test_undecodable_bytes_raise_serialization_error(store: AbstractArtifactStore) -> None:
    digest = store.put_bytes(b"not parquet")
    with pytest.raises(SerializationError, match="parquet"):
        store.get(digest, "parquet")


# --- opening ------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["nosuchprotocol://bucket/prefix"])
def test_unknown_protocol_raises_storage_error(uri: str) -> None:
    with pytest.raises(ArtifactStorageError, match="nosuchprotocol") as info:
        open_artifact_store(uri)
    assert isinstance(info.value, OSError)


def test_memory_uri_opens_a_fresh_store() -> None:
    first = open_artifact_store("memory://")
    digest = first.put_bytes(b"only here")
    assert first.uri == "memory://"
    assert not open_artifact_store("memory://").exists(digest)


# --- object stores: what only a real storage API shows ---------------------------------------


@pytest.fixture(params=SERVICE_BACKENDS)
def bucket(request: pytest.FixtureRequest) -> Any:
    """A fresh S3 bucket, GCS bucket or Azure container (an S3Location or a CloudLocation)."""
    name = {"s3": "s3_bucket_uri", **CLOUD_FIXTURES}[request.param]
    return request.getfixturevalue(name)


def _missing_bucket(uri: str) -> str:
    scheme, rest = uri.split("://", 1)
    name, _, prefix = rest.partition("/")
    return f"{scheme}://{name}-gone/{prefix}"


def test_a_missing_bucket_fails_naming_the_uri(bucket: Any) -> None:
    uri = _missing_bucket(bucket.uri)
    store = open_artifact_store(uri, storage_options=bucket.storage_options)
    digest = sha256(b"nowhere to go")
    with pytest.raises(ArtifactStorageError, match="create the bucket or container") as info:
        store.put_bytes(b"nowhere to go")
    assert f"{uri}/sha256/{digest[:2]}/{digest}" in str(info.value)
    assert not store.exists(digest)


def test_locations_keep_the_uri_scheme(bucket: Any) -> None:
    store = open_artifact_store(bucket.uri, storage_options=bucket.storage_options)
    digest = store.put_bytes(b"where am I")
    assert store.location(digest) == f"{bucket.uri}/sha256/{digest[:2]}/{digest}"


def test_a_second_store_sees_writes_and_deletes_of_the_first(bucket: Any) -> None:
    """Two processes (or a Dask worker and the scheduler) share one bucket: no stale listing."""
    first = open_artifact_store(bucket.uri, storage_options=bucket.storage_options)
    other = open_artifact_store(
        bucket.uri, storage_options={**bucket.storage_options, "skip_instance_cache": True}
    )
    digest = sha256(b"shared")
    assert not other.exists(digest)
    first.put_bytes(b"shared")
    assert other.get_bytes(digest) == b"shared"
    other.delete(digest)
    assert not first.exists(digest)
    with pytest.raises(ArtifactNotFoundError):
        first.get_bytes(digest)


@pytest.mark.service
def test_wrong_azure_key_fails_without_showing_it(azure_container_uri: Any) -> None:
    from tests.conftest import azurite_connection_string

    wrong = "d3Jvbmcga2V5" * 7 + "Zz=="
    conn = azurite_connection_string(azure_container_uri.endpoint, key=wrong)
    store = open_artifact_store(
        azure_container_uri.uri, storage_options={"connection_string": conn}
    )
    with pytest.raises(ArtifactStorageError, match="check the credentials") as info:
        store.put_bytes(b"not yours")
    assert azure_container_uri.uri in str(info.value)
    assert wrong not in str(info.value)


@pytest.mark.service
def test_abfs_and_az_uris_open_the_same_container(azure_container_uri: Any) -> None:
    loc = azure_container_uri
    digest = open_artifact_store(loc.uri, storage_options=loc.storage_options).put_bytes(b"one")
    abfs = f"abfs://{loc.bucket}@devstoreaccount1.dfs.core.windows.net/artifacts"
    store = open_artifact_store(abfs, storage_options=loc.storage_options)
    assert store.get_bytes(digest) == b"one"
    assert store.location(digest).startswith(f"abfs://{loc.bucket}/artifacts/sha256/")


@pytest.mark.service
def test_storage_options_expand_variables(
    azure_container_uri: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loc = azure_container_uri
    options = {"connection_string": "${CONVEYOR_TEST_AZURE_CONN}"}
    with pytest.raises(ArtifactStorageError, match="CONVEYOR_TEST_AZURE_CONN is not set"):
        open_artifact_store(loc.uri, storage_options=options, base_dir=tmp_path)
    (tmp_path / ".env").write_text(
        f"CONVEYOR_TEST_AZURE_CONN={loc.storage_options['connection_string']}\n"
    )
    digest = open_artifact_store(loc.uri, storage_options=options, base_dir=tmp_path).put_bytes(
        b"from .env"
    )
    monkeypatch.setenv("CONVEYOR_TEST_AZURE_CONN", loc.storage_options["connection_string"])
    assert open_artifact_store(loc.uri, storage_options=options).get_bytes(digest) == b"from .env"


@pytest.mark.service
def test_broken_gcs_credentials_fail_at_open(gcs_bucket_uri: Any) -> None:
    # A dict token is parsed locally; a string token would be checked against Google's servers.
    options = {**gcs_bucket_uri.storage_options, "token": {"client_secret": "hush-hush"}}
    with pytest.raises(ArtifactStorageError, match="cannot open artifact store") as info:
        open_artifact_store(gcs_bucket_uri.uri, storage_options=options)
    assert gcs_bucket_uri.uri in str(info.value)
    assert "hush-hush" not in str(info.value)


@pytest.mark.service
def test_gcs_store_does_not_wait_for_the_storage_control_api(gcs_bucket_uri: Any) -> None:
    """gcsfs imported before conveyor, without GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT: its default
    filesystem would wait 60 s per bucket on an emulator; conveyor must use the stable one."""
    loc = gcs_bucket_uri
    script = (
        "import time, gcsfs\n"
        "from conveyor.store.artifacts import open_artifact_store\n"
        "start = time.monotonic()\n"
        f"store = open_artifact_store({loc.uri!r}, storage_options={loc.storage_options!r})\n"
        "digest = store.put_bytes(b'quick')\n"
        "assert store.get_bytes(digest) == b'quick'\n"
        "print(round(time.monotonic() - start, 2))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != GCSFS_HNS_VARIABLE}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) < 10, f"took {proc.stdout.strip()} s"
