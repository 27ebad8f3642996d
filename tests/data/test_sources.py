"""Data sources: csv/parquet from a folder or S3, sql on PostgreSQL, mongodb; errors and secrets."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import traceback

import pandas as pd
import pytest

from conveyor.config import SourceConfig
from conveyor.data.sources import (
    CsvSource,
    MongoSource,
    ParquetSource,
    SqlSource,
    describe,
    file_checksum,
    load,
    resolve_path,
    source_for,
)
from conveyor.errors import ConfigError, DataValidationError
from conveyor.examples.visa.generate import generate
from tests.conftest import require_module

PASSWORD = "s3cr3t-Pa55w0rd"


@pytest.fixture(scope="module")
def visa() -> pd.DataFrame:
    return generate(n_rows=500)


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        got.sort_values("case_id").reset_index(drop=True),
        expected.sort_values("case_id").reset_index(drop=True),
    )


def _leak_free(err: DataValidationError, *secrets: str) -> None:
    """The message, the whole printed traceback and the chain hold none of the secrets."""
    assert err.__cause__ is None
    assert err.__context__ is None
    printed = "".join(traceback.format_exception(err))
    for secret in secrets:
        assert secret not in str(err)
        assert secret not in printed


# --- local files ----------------------------------------------------------------------------


def test_resolve_path_keeps_uris_and_anchors_relative_paths(tmp_path):
    assert resolve_path("s3://bucket/visa.csv", tmp_path) == "s3://bucket/visa.csv"
    assert resolve_path("data/visa.csv", tmp_path) == str(tmp_path / "data" / "visa.csv")
    assert resolve_path("/abs/visa.csv", tmp_path) == "/abs/visa.csv"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_file_round_trip_from_a_relative_path(tmp_path, visa, kind):
    (tmp_path / "data").mkdir()
    file = tmp_path / "data" / f"visa.{kind}"
    if kind == "csv":
        visa.to_csv(file, index=False)
    else:
        visa.to_parquet(file, index=False)
    source = SourceConfig(type=kind, path=f"data/visa.{kind}")

    _same(load(source, tmp_path), visa)
    assert describe(source, tmp_path) == f"{kind}:{file}"
    assert file_checksum(source, tmp_path) == hashlib.sha256(file.read_bytes()).hexdigest()


def test_options_go_to_pandas(tmp_path, visa):
    visa.to_csv(tmp_path / "visa.tsv", sep="\t", index=False)
    source = SourceConfig(type="csv", path="visa.tsv", options={"sep": "\t", "nrows": 10})
    _same(load(source, tmp_path), visa.head(10))


def test_file_checksum_changes_when_one_byte_changes(tmp_path, visa):
    file = tmp_path / "visa.csv"
    visa.to_csv(file, index=False)
    source = SourceConfig(type="csv", path="visa.csv")
    before = file_checksum(source, tmp_path)
    assert file_checksum(source, tmp_path) == before

    data = bytearray(file.read_bytes())
    data[-3] = ord("0") if data[-3] != ord("0") else ord("1")
    file.write_bytes(bytes(data))

    assert file_checksum(source, tmp_path) != before


def test_file_checksum_is_none_for_databases(tmp_path):
    sql = SourceConfig(type="sql", url="sqlite://", table="t")
    mongo = SourceConfig(type="mongodb", uri="mongodb://h", database="d", collection="c")
    assert file_checksum(sql, tmp_path) is None
    assert file_checksum(mongo, tmp_path) is None


def test_parquet_dataset_folder_loads_and_hashes_every_file(tmp_path, visa):
    folder = tmp_path / "visa"
    folder.mkdir()
    visa.iloc[:250].to_parquet(folder / "part-0.parquet", index=False)
    visa.iloc[250:].to_parquet(folder / "part-1.parquet", index=False)
    source = SourceConfig(type="parquet", path="visa")

    _same(load(source, tmp_path), visa)
    before = file_checksum(source, tmp_path)
    visa.iloc[250:].head(1).to_parquet(folder / "part-1.parquet", index=False)
    assert file_checksum(source, tmp_path) != before


def test_header_only_csv_gives_an_empty_frame(tmp_path):
    (tmp_path / "visa.csv").write_text("case_id,continent,case_status\n")
    frame = load(SourceConfig(type="csv", path="visa.csv"), tmp_path)
    assert list(frame.columns) == ["case_id", "continent", "case_status"]
    assert len(frame) == 0


# --- file errors: each names the file and the problem ----------------------------------------


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_missing_file(tmp_path, kind):
    source = SourceConfig(type=kind, path=f"nope.{kind}")
    for call in (load, file_checksum):
        with pytest.raises(DataValidationError, match="data file not found") as info:
            call(source, tmp_path)
        assert str(tmp_path / f"nope.{kind}") in str(info.value)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_empty_file(tmp_path, kind):
    (tmp_path / f"visa.{kind}").write_bytes(b"")
    with pytest.raises(DataValidationError, match=r"visa\.\w+: is empty \(0 bytes\)"):
        load(SourceConfig(type=kind, path=f"visa.{kind}"), tmp_path)


def test_blank_lines_only_csv(tmp_path):
    (tmp_path / "visa.csv").write_text("\n\n")
    with pytest.raises(DataValidationError, match=r"visa\.csv: is empty: no header row"):
        load(SourceConfig(type="csv", path="visa.csv"), tmp_path)


def test_not_utf8_names_the_byte_offset_and_the_encoding_option(tmp_path):
    (tmp_path / "visa.csv").write_bytes(b"a,b\n1,caf\xe9\n")
    with pytest.raises(DataValidationError) as info:
        load(SourceConfig(type="csv", path="visa.csv"), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "visa.csv") in message
    assert "not valid utf-8 text: byte 0xe9 at offset 9" in message
    assert "data.source.options.encoding" in message

    frame = load(
        SourceConfig(type="csv", path="visa.csv", options={"encoding": "latin-1"}), tmp_path
    )
    assert frame["b"].tolist() == ["café"]


def test_not_utf8_offset_is_in_the_file_not_in_pandas_buffer(tmp_path):
    good = b"a,b\n" + b"1,x\n" * 200_000  # past pandas' and our read buffers
    (tmp_path / "visa.csv").write_bytes(good + b"2,\xff\n")
    with pytest.raises(DataValidationError, match=f"byte 0xff at offset {len(good) + 2}"):
        load(SourceConfig(type="csv", path="visa.csv"), tmp_path)


def test_unknown_encoding(tmp_path, visa):
    visa.to_csv(tmp_path / "visa.csv", index=False)
    source = SourceConfig(type="csv", path="visa.csv", options={"encoding": "klingon"})
    with pytest.raises(DataValidationError, match=r"visa\.csv: data\.source\.options\.encoding"):
        load(source, tmp_path)


@pytest.mark.parametrize(
    ("data", "kind"),
    [(bytes(range(256)) * 16, "binary data"), (b"PAR1" + bytes(range(256)) * 4, "parquet")],
)
def test_binary_file_as_csv(tmp_path, data, kind):
    (tmp_path / "visa.csv").write_bytes(data)
    with pytest.raises(DataValidationError, match=r"visa\.csv: cannot read as csv") as info:
        load(SourceConfig(type="csv", path="visa.csv"), tmp_path)
    assert kind in str(info.value)


def test_csv_or_garbage_as_parquet(tmp_path, visa):
    visa.to_csv(tmp_path / "visa.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"visa\.parquet: cannot read as parquet") as info:
        load(SourceConfig(type="parquet", path="visa.parquet"), tmp_path)
    assert "set type: csv" in str(info.value)

    (tmp_path / "junk.parquet").write_bytes(bytes(range(256)) * 16)
    with pytest.raises(DataValidationError, match=r"junk\.parquet: cannot read as parquet"):
        load(SourceConfig(type="parquet", path="junk.parquet"), tmp_path)


@pytest.mark.parametrize(("sep", "shown"), [(";", ";"), ("\t", "\\t")])
def test_wrong_delimiter_suggests_sep(tmp_path, visa, sep, shown):
    visa.to_csv(tmp_path / "visa.csv", sep=sep, index=False)
    with pytest.raises(
        DataValidationError, match=r"visa\.csv: parsed into a single column"
    ) as info:
        load(SourceConfig(type="csv", path="visa.csv"), tmp_path)
    assert f'options: {{sep: "{shown}"}}' in str(info.value)
    _same(load(SourceConfig(type="csv", path="visa.csv", options={"sep": sep}), tmp_path), visa)


def test_wrong_delimiter_with_ragged_rows_suggests_sep(tmp_path):
    # Decimal commas split the rows into more fields than the header has: a parser error.
    (tmp_path / "visa.csv").write_text("id;wage\n1;1,5\n2;2,7,5\n")
    with pytest.raises(DataValidationError, match=r"visa\.csv: cannot read as csv") as info:
        load(SourceConfig(type="csv", path="visa.csv"), tmp_path)
    assert 'options: {sep: ";"}' in str(info.value)


def test_csv_path_is_a_directory(tmp_path):
    (tmp_path / "visa.csv").mkdir()
    with pytest.raises(DataValidationError, match=r"visa\.csv: is a directory"):
        load(SourceConfig(type="csv", path="visa.csv"), tmp_path)


def test_bad_pandas_option_names_the_options(tmp_path, visa):
    visa.to_csv(tmp_path / "visa.csv", index=False)
    source = SourceConfig(type="csv", path="visa.csv", options={"no_such_option": 1})
    with pytest.raises(DataValidationError, match=r"visa\.csv: data\.source\.options .*no_such"):
        load(source, tmp_path)


def test_streaming_options_are_refused(tmp_path):
    source = SourceConfig(type="csv", path="visa.csv", options={"chunksize": 10})
    with pytest.raises(DataValidationError, match=r"data\.source\.options\.chunksize"):
        load(source, tmp_path)


# --- ${VAR} expansion -----------------------------------------------------------------------


def test_path_expands_from_environment_then_dotenv(tmp_path, visa, monkeypatch):
    (tmp_path / "data").mkdir()
    visa.to_csv(tmp_path / "data" / "visa.csv", index=False)
    source = SourceConfig(type="csv", path="${CONVEYOR_TEST_DATA}/visa.csv")

    monkeypatch.delenv("CONVEYOR_TEST_DATA", raising=False)
    (tmp_path / ".env").write_text("CONVEYOR_TEST_DATA=data\n")
    _same(load(source, tmp_path), visa)
    assert "CONVEYOR_TEST_DATA" not in os.environ  # .env is read, not loaded into it

    monkeypatch.setenv("CONVEYOR_TEST_DATA", str(tmp_path / "elsewhere"))  # environment wins
    with pytest.raises(DataValidationError, match="elsewhere/visa.csv: data file not found"):
        load(source, tmp_path)


def test_unset_variable_names_the_key_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVEYOR_TEST_PG_PASSWORD", raising=False)
    source = SourceConfig(
        type="sql", url="postgresql+psycopg://u:${CONVEYOR_TEST_PG_PASSWORD}@h/db", table="t"
    )
    with pytest.raises(DataValidationError) as info:
        load(source, tmp_path)
    assert str(info.value).startswith(
        "data.source.url: environment variable CONVEYOR_TEST_PG_PASSWORD is not set (nor in .env"
    )
    # describe() never fails: it shows the template, which holds no secret.
    assert describe(source, tmp_path) == "sql:postgresql+psycopg://u:***@h/db:t"


# --- S3 (moto server on loopback) -----------------------------------------------------------


@pytest.mark.service
def test_s3_csv_and_parquet(tmp_path, visa, s3_bucket_uri):
    loc = s3_bucket_uri
    csv_bytes = visa.to_csv(index=False).encode()
    parquet_bytes = visa.to_parquet(index=False)
    loc.client().put_object(Bucket=loc.bucket, Key="visa.csv", Body=csv_bytes)
    loc.client().put_object(Bucket=loc.bucket, Key="visa.parquet", Body=parquet_bytes)

    for kind, data in (("csv", csv_bytes), ("parquet", parquet_bytes)):
        source = SourceConfig(
            type=kind,
            path=f"s3://{loc.bucket}/visa.{kind}",
            options={"storage_options": loc.storage_options},
        )
        _same(load(source, tmp_path), visa)
        assert file_checksum(source, tmp_path) == hashlib.sha256(data).hexdigest()
        assert describe(source, tmp_path) == f"{kind}:s3://{loc.bucket}/visa.{kind}"


@pytest.mark.service
def test_s3_missing_object_and_credentials_from_dotenv(tmp_path, visa, s3_bucket_uri):
    loc = s3_bucket_uri
    loc.client().put_object(Bucket=loc.bucket, Key="visa.csv", Body=visa.to_csv(index=False))
    (tmp_path / ".env").write_text(f"CONVEYOR_TEST_S3_SECRET={loc.storage_options['secret']}\n")
    options = {"storage_options": {**loc.storage_options, "secret": "${CONVEYOR_TEST_S3_SECRET}"}}

    _same(load(SourceConfig(path=f"s3://{loc.bucket}/visa.csv", options=options), tmp_path), visa)
    missing = SourceConfig(path=f"s3://{loc.bucket}/nope.csv", options=options)
    with pytest.raises(
        DataValidationError, match=f"s3://{loc.bucket}/nope.csv: data file not found"
    ):
        load(missing, tmp_path)


# --- SQL on the real PostgreSQL -------------------------------------------------------------


@pytest.fixture
def visa_table(postgres_url, visa) -> str:
    """The visa frame written into the test schema; returns the schema name."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    try:
        visa.to_sql("visa", engine, index=False)
    finally:
        engine.dispose()
    match = re.search(r"search_path%3D(\w+)", postgres_url)
    assert match is not None
    return match[1]


@pytest.mark.service
def test_sql_table_and_query(tmp_path, visa, postgres_url, visa_table):
    for table in ("visa", f"{visa_table}.visa"):
        _same(load(SourceConfig(type="sql", url=postgres_url, table=table), tmp_path), visa)

    query = "SELECT case_id, continent, case_status FROM visa WHERE continent = 'Asia'"
    got = load(SourceConfig(type="sql", url=postgres_url, query=query), tmp_path)
    expected = visa.loc[visa["continent"] == "Asia", ["case_id", "continent", "case_status"]]
    _same(got, expected)


@pytest.mark.service
def test_sql_url_from_environment_and_dotenv(tmp_path, visa, postgres_url, visa_table, monkeypatch):
    source = SourceConfig(type="sql", url="${CONVEYOR_TEST_PGURL}", table="visa")
    monkeypatch.setenv("CONVEYOR_TEST_PGURL", postgres_url)
    _same(load(source, tmp_path), visa)

    monkeypatch.delenv("CONVEYOR_TEST_PGURL")
    (tmp_path / ".env").write_text(f"CONVEYOR_TEST_PGURL={postgres_url}\n")
    _same(load(source, tmp_path), visa)


@pytest.mark.service
def test_sql_missing_table_and_bad_query(tmp_path, postgres_url, visa_table):
    with pytest.raises(DataValidationError, match=r"table 'nope' not found \(data.source.table\)"):
        load(SourceConfig(type="sql", url=postgres_url, table="nope"), tmp_path)
    with pytest.raises(DataValidationError, match='column "nope" does not exist') as info:
        load(SourceConfig(type="sql", url=postgres_url, query="SELECT nope FROM visa"), tmp_path)
    assert str(info.value).startswith("sql:postgresql+psycopg://postgres@127.0.0.1:5432/test?")


@pytest.mark.service
@pytest.mark.parametrize("via_env", [True, False])
def test_sql_password_never_shows(tmp_path, monkeypatch, via_env):
    # Local PostgreSQL trusts every login, so a wrong password would connect: use a closed port.
    monkeypatch.setenv("CONVEYOR_TEST_PG_PASSWORD", PASSWORD)
    password = "${CONVEYOR_TEST_PG_PASSWORD}" if via_env else PASSWORD
    source = SourceConfig(
        type="sql", url=f"postgresql+psycopg://conveyor:{password}@127.0.0.1:1/test", table="visa"
    )
    with pytest.raises(DataValidationError) as info:
        load(source, tmp_path)
    _leak_free(info.value, PASSWORD)
    assert "sql:postgresql+psycopg://conveyor:***@127.0.0.1:1/test" in str(info.value)
    assert "OperationalError" in str(info.value)
    assert PASSWORD not in describe(source, tmp_path)
    assert (
        describe(source, tmp_path) == "sql:postgresql+psycopg://conveyor:***@127.0.0.1:1/test:visa"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{PASSWORD}@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:p%40ss%2Fw0rd-long@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u@h/db?sslmode=require&password={PASSWORD}", None),
        (f"mssql+pyodbc://u:{PASSWORD}@dsn?driver=ODBC", "mssql+pyodbc://u:***@dsn?driver=ODBC"),
        (f"postgresql:/u:{PASSWORD}@h/db", "***"),  # not a URL: could hide a secret anywhere
    ],
)
def test_describe_masks_every_password_shape(tmp_path, url, shown):
    text = describe(SourceConfig(type="sql", url=url, table="t"), tmp_path)
    assert PASSWORD not in text
    assert "p%40ss" not in text
    assert "***" in text
    if shown is not None:
        assert text == f"sql:{shown}:t"


def test_sql_unencoded_at_in_password_is_refused_without_leaking(tmp_path):
    source = SourceConfig(type="sql", url="postgresql+psycopg://u:ab@cd-efgh@h/db", table="t")
    with pytest.raises(DataValidationError, match="percent-encode") as info:
        load(source, tmp_path)
    _leak_free(info.value, "ab@cd-efgh", "cd-efgh")


def test_literal_password_is_warned_about_without_the_password(tmp_path, caplog):
    source = SourceConfig(type="sql", url=f"sqlite://u:{PASSWORD}@/", query="SELECT 1")
    with caplog.at_level("WARNING", logger="conveyor.data.sources"):
        with pytest.raises(DataValidationError, match="Invalid SQLite URL") as info:
            load(source, tmp_path)  # SQLAlchemy quotes the whole URL in its message
    _leak_free(info.value, PASSWORD)
    assert "data.source.url holds a literal password" in caplog.text
    assert PASSWORD not in caplog.text


def test_sql_needs_exactly_one_of_query_or_table(tmp_path):
    for extra in ({}, {"query": "SELECT 1", "table": "t"}):
        with pytest.raises(DataValidationError, match="exactly one of query or table"):
            load(SourceConfig(type="sql", url="sqlite://", **extra), tmp_path)


def test_sql_unparseable_url_is_masked(tmp_path):
    source = SourceConfig(type="sql", url=f"not a url with {PASSWORD}", query="SELECT 1")
    with pytest.raises(DataValidationError, match="ArgumentError") as info:
        load(source, tmp_path)
    _leak_free(info.value, PASSWORD)


def test_sql_password_in_query_string_is_masked(tmp_path):
    source = SourceConfig(
        type="sql", url=f"postgresql://u@h/db?sslmode=disable&password={PASSWORD}", table="t"
    )
    assert describe(source, tmp_path) == "sql:postgresql://u@h/db?sslmode=disable&password=***:t"


# --- mongodb (mongomock) --------------------------------------------------------------------
# mongomock stands in for a server: no MongoDB server can be installed or run on this machine.


@pytest.fixture
def mongo(visa, monkeypatch):
    """pymongo.MongoClient replaced by one mongomock client holding visa.applications."""
    mongomock = require_module("mongomock", "the dev extra (conveyor[dev])")
    pymongo = require_module("pymongo", "the mongo extra (conveyor[mongo])")
    client = mongomock.MongoClient()
    client["visa"]["applications"].insert_many(visa.to_dict("records"))
    seen: list[str] = []

    def connect(uri, *args, **kwargs):
        seen.append(uri)
        return client

    monkeypatch.setattr(pymongo, "MongoClient", connect)
    return seen


def _mongo_source(**options) -> SourceConfig:
    return SourceConfig(
        type="mongodb",
        uri="mongodb://reader:${CONVEYOR_TEST_MONGO_PASSWORD}@db.internal:27017",
        database="visa",
        collection="applications",
        options=options,
    )


def test_mongodb_whole_collection(tmp_path, visa, mongo, monkeypatch):
    monkeypatch.setenv("CONVEYOR_TEST_MONGO_PASSWORD", PASSWORD)
    source = _mongo_source()

    got = load(source, tmp_path)

    _same(got, visa)  # no _id column by default
    assert mongo == [f"mongodb://reader:{PASSWORD}@db.internal:27017"]
    assert describe(source, tmp_path) == (
        "mongodb:mongodb://reader:***@db.internal:27017:visa.applications"
    )


def test_mongodb_filter_projection_limit(tmp_path, visa, mongo, monkeypatch):
    monkeypatch.setenv("CONVEYOR_TEST_MONGO_PASSWORD", PASSWORD)
    columns = ["case_id", "continent", "case_status"]
    source = _mongo_source(filter={"continent": "Asia"}, projection=columns)

    got = load(source, tmp_path)

    assert list(got.columns) == columns
    _same(got, visa.loc[visa["continent"] == "Asia", columns])
    assert len(load(_mongo_source(projection={"case_id": 1}, limit=7), tmp_path)) == 7


def test_mongodb_driver_error_is_masked(tmp_path, monkeypatch):
    import pymongo
    from pymongo.errors import ServerSelectionTimeoutError

    def connect(uri, *args, **kwargs):
        raise ServerSelectionTimeoutError(f"{uri}: no servers found, tried {PASSWORD}")

    monkeypatch.setattr(pymongo, "MongoClient", connect)
    monkeypatch.setenv("CONVEYOR_TEST_MONGO_PASSWORD", PASSWORD)
    with pytest.raises(DataValidationError, match="ServerSelectionTimeoutError") as info:
        load(_mongo_source(), tmp_path)
    _leak_free(info.value, PASSWORD)
    assert "mongodb://reader:***@db.internal:27017:visa.applications" in str(info.value)


def test_mongodb_without_pymongo(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymongo", None)
    with pytest.raises(DataValidationError, match=r"pip install 'conveyor\[mongo\]'"):
        load(_mongo_source(), tmp_path)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sort": {"a": 1}}, r"unknown key\(s\) \['sort'\]"),
        ({"filter": ["a"]}, r"options\.filter: expected a mapping"),
        ({"projection": "a"}, r"options\.projection: expected"),
        ({"limit": -1}, r"options\.limit: expected a non-negative integer"),
    ],
)
def test_mongodb_bad_options(tmp_path, mongo, monkeypatch, options, match):
    monkeypatch.setenv("CONVEYOR_TEST_MONGO_PASSWORD", PASSWORD)
    with pytest.raises(DataValidationError, match=match):
        load(_mongo_source(**options), tmp_path)


def test_each_builtin_type_is_a_registered_source() -> None:
    found = [type(source_for(kind)) for kind in ("csv", "parquet", "sql", "mongodb")]
    assert found == [CsvSource, ParquetSource, SqlSource, MongoSource]


def test_an_unknown_source_type_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown data source 'ftp'; available: csv, parquet"):
        source_for("ftp")
