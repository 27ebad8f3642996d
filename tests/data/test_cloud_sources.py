"""csv and parquet sources on GCS (the GCS emulator) and Azure Blob (Azurite): reading, checksums,
``${VAR}`` credentials, and errors that name the URI and never the key."""

from __future__ import annotations

import hashlib
import traceback
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from conveyor.config import SourceConfig
from conveyor.data.sources import describe, file_checksum, iter_chunks, load
from conveyor.errors import DataValidationError
from conveyor.examples.visa.generate import generate
from tests.conftest import AZURITE_ACCOUNT, CloudLocation, azurite_connection_string

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def visa() -> pd.DataFrame:
    return generate(n_rows=300)


@pytest.fixture(params=["gcs", "azure"])
def bucket(request: pytest.FixtureRequest) -> CloudLocation:
    """A fresh GCS bucket or Azure container on its emulator."""
    name = {"gcs": "gcs_bucket_uri", "azure": "azure_container_uri"}[request.param]
    location: CloudLocation = request.getfixturevalue(name)
    return location


def _root(loc: CloudLocation) -> str:
    """``gs://bucket`` or ``az://container``: where the tests put their files."""
    return loc.uri.rsplit("/", 1)[0]


def _source(kind: str, path: str, storage_options: Mapping[str, object]) -> SourceConfig:
    return SourceConfig(type=kind, path=path, options={"storage_options": dict(storage_options)})


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))


def _error(source: SourceConfig, base_dir: Path) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        load(source, base_dir)
    err = info.value
    assert err.__cause__ is None  # driver exceptions may quote credentials: never chained
    return err


def _printed(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


def test_csv_and_parquet(tmp_path: Path, visa: pd.DataFrame, bucket: CloudLocation) -> None:
    csv_bytes = visa.to_csv(index=False).encode()
    parquet_bytes = visa.to_parquet(index=False)
    bucket.write("data/visa.csv", csv_bytes)
    bucket.write("data/visa.parquet", parquet_bytes)
    for kind, data in (("csv", csv_bytes), ("parquet", parquet_bytes)):
        path = f"{_root(bucket)}/data/visa.{kind}"
        source = _source(kind, path, bucket.storage_options)
        _same(load(source, tmp_path), visa)
        assert file_checksum(source, tmp_path) == hashlib.sha256(data).hexdigest()
        assert describe(source, tmp_path) == f"{kind}:{path}"
        total, chunks = iter_chunks(source, tmp_path, rows=100)
        assert total == (len(visa) if kind == "parquet" else None)
        _same(pd.concat(list(chunks)), visa)


def test_parquet_dataset_folder(tmp_path: Path, visa: pd.DataFrame, bucket: CloudLocation) -> None:
    half = len(visa) // 2
    bucket.write("data/visa/part-0.parquet", visa.iloc[:half].to_parquet(index=False))
    bucket.write("data/visa/part-1.parquet", visa.iloc[half:].to_parquet(index=False))
    source = _source("parquet", f"{_root(bucket)}/data/visa", bucket.storage_options)
    _same(load(source, tmp_path), visa)
    before = file_checksum(source, tmp_path)
    bucket.write("data/visa/part-1.parquet", visa.iloc[half + 1 :].to_parquet(index=False))
    assert file_checksum(source, tmp_path) != before  # seen at once: no stale listing


def test_credentials_from_dotenv(
    tmp_path: Path, visa: pd.DataFrame, azure_container_uri: CloudLocation
) -> None:
    loc = azure_container_uri
    loc.write("visa.csv", visa.to_csv(index=False).encode())
    conn = loc.storage_options["connection_string"]
    options = {"connection_string": "${CONVEYOR_TEST_AZURE_CONN}"}
    source = _source("csv", f"{_root(loc)}/visa.csv", options)
    unset = _error(source, tmp_path)
    assert "CONVEYOR_TEST_AZURE_CONN is not set" in str(unset)
    (tmp_path / ".env").write_text(f"CONVEYOR_TEST_AZURE_CONN={conn}\n")
    _same(load(source, tmp_path), visa)


def test_abfs_uri_with_account_reads_the_same_file(
    tmp_path: Path, visa: pd.DataFrame, azure_container_uri: CloudLocation
) -> None:
    loc = azure_container_uri
    loc.write("visa.csv", visa.to_csv(index=False).encode())
    path = f"abfs://{loc.bucket}@{AZURITE_ACCOUNT}.dfs.core.windows.net/visa.csv"
    _same(load(_source("csv", path, loc.storage_options), tmp_path), visa)


def test_missing_object_names_the_uri(tmp_path: Path, bucket: CloudLocation) -> None:
    path = f"{_root(bucket)}/nope.csv"
    err = _error(_source("csv", path, bucket.storage_options), tmp_path)
    assert str(err) == f"{path}: data file not found (data.source.path)"


def test_missing_bucket_names_the_uri(tmp_path: Path, bucket: CloudLocation) -> None:
    scheme, name = _root(bucket).split("://")
    path = f"{scheme}://{name}-gone/visa.csv"
    err = _error(_source("csv", path, bucket.storage_options), tmp_path)
    assert str(err).startswith(f"{path}: ")


def test_wrong_azure_key_names_the_uri_not_the_key(
    tmp_path: Path, visa: pd.DataFrame, azure_container_uri: CloudLocation
) -> None:
    loc = azure_container_uri
    loc.write("visa.csv", visa.to_csv(index=False).encode())
    wrong = "d3Jvbmcga2V5" * 7 + "Zz=="
    conn = azurite_connection_string(loc.endpoint, key=wrong)
    path = f"{_root(loc)}/visa.csv"
    err = _error(_source("csv", path, {"connection_string": conn}), tmp_path)
    assert str(err).startswith(f"{path}: cannot access: ")
    assert "storage_options" in str(err)
    assert wrong not in _printed(err)
    assert conn not in _printed(err)


def test_broken_gcs_token_names_the_uri_not_the_secret(
    tmp_path: Path, gcs_bucket_uri: CloudLocation
) -> None:
    # A dict token is parsed locally; a string token would be checked against Google's servers.
    options = {**gcs_bucket_uri.storage_options, "token": {"client_secret": "hush-hush-123"}}
    path = f"{_root(gcs_bucket_uri)}/visa.csv"
    err = _error(_source("csv", path, options), tmp_path)
    assert str(err).startswith(f"{path}: cannot open: ")
    assert "hush-hush-123" not in _printed(err)
