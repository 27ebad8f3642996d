"""data.partitioned: ingest, validate and split one partition at a time give what the in-memory
line gives (fingerprint, validation counts), whatever the partitioning, and catch what only the
whole table shows (duplicates across partitions, too few rows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conveyor.config import DataConfig, SourceConfig
from conveyor.contracts import DatasetVersion, PartitionedTable
from conveyor.data import partitions
from conveyor.data.schema import load_schema
from conveyor.errors import ConfigError, DataValidationError
from conveyor.examples.visa.generate import generate
from conveyor.lines._data import data_steps
from conveyor.pipeline import Pipeline
from conveyor.runner import LocalExecutor, Runner
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import open_metadata_store

if TYPE_CHECKING:
    from pathlib import Path

VISA = "src/conveyor/examples/visa/schema.yaml"


@pytest.fixture(scope="module")
def visa() -> pd.DataFrame:
    return generate(6000, seed=11)


def write_parts(frame: pd.DataFrame, folder: Path, n: int, kind: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), n)):
        part = frame.iloc[chunk]
        if kind == "parquet":
            part.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
        else:
            part.to_csv(folder / f"part-{i:03d}.csv", index=False)
    return folder


def run_data(
    tmp_path: Path,
    path: str,
    *,
    partitioned: bool,
    kind: str = "parquet",
    sql: dict[str, Any] | None = None,  # the source's settings other than type (default: path)
    **data: Any,
) -> tuple[Any, dict[str, Any], Any]:
    """Run ingest -> validate -> split; returns the result, the step outputs and the stores."""
    import shutil
    from pathlib import Path as P

    if not (tmp_path / "schema.yaml").exists():
        shutil.copy(P(__file__).parents[2] / VISA, tmp_path / "schema.yaml")
    config = DataConfig.model_validate(
        {
            "source": {"type": kind, **(sql or {"path": path})},
            "schema": "schema.yaml",
            "target": "case_status",
            "positive_class": "Certified",
            "partitioned": partitioned,
            **data,
        }
    )
    metadata = open_metadata_store("sqlite://")
    artifacts = open_artifact_store(str(tmp_path / f"artifacts-{partitioned}"))
    line = Pipeline(data_steps(config, tmp_path, task="classification"), name="data")
    with LocalExecutor(artifacts, lambda: metadata) as ex:
        result = Runner(metadata, artifacts, ex).run(line)
    outputs = {name: artifacts.get(ref.digest, ref.kind) for name, ref in result.outputs.items()}
    return result, outputs, (metadata, artifacts)


def metric_values(metadata: Any, run_id: str) -> dict[str, float]:
    return dict(metadata.get_run(run_id).metrics)


def test_partitioned_line_gives_the_in_memory_fingerprint_and_counts(
    tmp_path: Path, visa: pd.DataFrame
) -> None:
    visa.to_parquet(tmp_path / "whole.parquet", index=False)
    write_parts(visa, tmp_path / "parts", 7)
    whole, out_whole, (meta_whole, _) = run_data(tmp_path, "whole.parquet", partitioned=False)
    parts, out_parts, (meta_parts, store) = run_data(tmp_path, "parts", partitioned=True)
    assert whole.ok and parts.ok, (whole.failures, parts.failures)
    assert isinstance(out_parts["dataset"], DatasetVersion)
    assert out_parts["dataset"].fingerprint == out_whole["dataset"].fingerprint
    counts = [k for k in metric_values(meta_whole, whole.run_id) if k.startswith("validation.")]
    assert counts
    got = metric_values(meta_parts, parts.run_id)
    want = metric_values(meta_whole, whole.run_id)
    assert {k: got[k] for k in counts} == {k: want[k] for k in counts}
    assert got["validation.dropped"] > 0  # the generator's dirt: negative employee counts
    clean: PartitionedTable = out_parts["clean"]
    assert len(clean.parts) == 7
    assert clean.rows == want["validation.rows_out"]
    # every partition loads with the table's types
    first = partitions.load_part(store, clean, 0)
    assert [str(t) for t in first.dtypes] == clean.dtypes


def test_fingerprint_and_split_do_not_depend_on_the_partitioning(
    tmp_path: Path, visa: pd.DataFrame
) -> None:
    write_parts(visa, tmp_path / "three", 3)
    write_parts(visa, tmp_path / "eleven", 11)
    _, three, (_, store3) = run_data(tmp_path, "three", partitioned=True)
    _, eleven, (_, store11) = run_data(tmp_path, "eleven", partitioned=True)
    assert three["dataset"].fingerprint == eleven["dataset"].fingerprint

    def ids(table: PartitionedTable, store: Any) -> set[str]:
        frames = [partitions.load_part(store, table, i) for i in range(len(table.parts))]
        return set(pd.concat(frames)["case_id"])

    test3, test11 = ids(three["test_parts"], store3), ids(eleven["test_parts"], store11)
    assert test3 == test11
    share = len(test3) / three["clean"].rows
    assert 0.17 < share < 0.23  # test_size 0.2 by a hash of each row
    assert not test3 & ids(three["train_parts"], store3)
    # nothing above sample_rows: the samples are the whole sides
    assert set(three["test"]["case_id"]) == test3


def test_samples_are_bounded_and_seeded(tmp_path: Path, visa: pd.DataFrame) -> None:
    write_parts(visa, tmp_path / "parts", 4)
    _, out, _ = run_data(tmp_path, "parts", partitioned=True, sample_rows=1000)
    train, test = out["train"], out["test"]
    assert 800 < len(train) < 1200 and 800 < len(test) < 1200
    assert out["train_parts"].rows + out["test_parts"].rows == out["clean"].rows
    _, again, _ = run_data(tmp_path, "parts", partitioned=True, sample_rows=1000)
    assert again["train"]["case_id"].tolist() == train["case_id"].tolist()


def test_duplicates_across_partitions_fail_with_their_global_rows(
    tmp_path: Path, visa: pd.DataFrame
) -> None:
    dirty = visa.copy()
    dirty.loc[5000, "case_id"] = dirty.loc[10, "case_id"]  # row 11 and row 5001, two partitions
    write_parts(dirty, tmp_path / "parts", 6)
    result, _, _ = run_data(tmp_path, "parts", partitioned=True)
    assert not result.ok
    message = result.failures["validate"]
    assert "unique" in message and "primary key case_id unique" in message
    assert "rows 11, 5001 in partitions 0, 5" in message
    assert repr(visa.loc[10, "case_id"]) in message
    # the in-memory line says the same about the same rows
    dirty.to_parquet(tmp_path / "whole.parquet", index=False)
    whole, _, _ = run_data(tmp_path, "whole.parquet", partitioned=False)
    assert "rows 11, 5001" in whole.failures["validate"]


def test_min_rows_is_judged_over_the_whole_table(tmp_path: Path, visa: pd.DataFrame) -> None:
    # 150 rows in 3 partitions of 50: each is below min_rows 100, the table is not
    write_parts(visa.iloc[:150], tmp_path / "small", 3)
    result, _, _ = run_data(tmp_path, "small", partitioned=True)
    assert "min_rows" not in result.failures.get("validate", "")
    write_parts(visa.iloc[:60], tmp_path / "tiny", 3)
    result, _, _ = run_data(tmp_path, "tiny", partitioned=True)
    assert "min_rows 100" in result.failures["validate"]


def test_csv_glob_partitions_take_the_table_types(tmp_path: Path) -> None:
    """A whole-number column with gaps in one file only: int64 there, float64 in the other."""
    from conveyor.config import SourceConfig
    from conveyor.data import sources

    folder = tmp_path / "csv"
    folder.mkdir()
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).to_csv(folder / "1.csv", index=False)
    pd.DataFrame({"a": [4.0, None], "b": ["x", None]}).to_csv(folder / "2.csv", index=False)
    source = SourceConfig(type="csv", path="csv/*.csv")
    whole = sources.load(source, tmp_path)
    assert whole["a"].dtype == "float64" and len(whole) == 5
    files = partitions.list_files(source, tmp_path)
    dtypes = [{c: str(t) for c, t in files.read(i).dtypes.items()} for i in range(len(files))]
    assert dtypes[0]["a"] == "int64"
    assert partitions.common_dtypes(dtypes)["a"] == str(whole["a"].dtype)


def test_a_glob_matching_nothing_names_the_path(tmp_path: Path) -> None:
    from conveyor.config import SourceConfig

    with pytest.raises(DataValidationError, match=r"nothing/\*\.parquet.*no \.parquet or \.pq"):
        partitions.list_files(SourceConfig(type="parquet", path="nothing/*.parquet"), tmp_path)


def test_partitions_whose_columns_differ_are_refused(tmp_path: Path, visa: pd.DataFrame) -> None:
    folder = write_parts(visa.iloc[:300], tmp_path / "parts", 2, kind="csv")
    visa.iloc[:10].drop(columns=["continent"]).to_csv(folder / "part-009.csv", index=False)
    result, _, _ = run_data(tmp_path, "parts/*.csv", partitioned=True, kind="csv")
    assert "part-009.csv: its columns differ" in result.failures["ingest"]


def test_settings_partitioned_mode_cannot_honour_are_refused(tmp_path: Path) -> None:
    config = DataConfig.model_validate(
        {
            "source": {"type": "parquet", "path": "x"},
            "target": "y",
            "partitioned": True,
            "split": {"validation_size": 0.1},
        }
    )
    with pytest.raises(ConfigError, match="validation_size"):
        data_steps(config, tmp_path)
    (tmp_path / "schema.yaml").write_text(
        "columns:\n"
        "  id: {dtype: string, unique: {value: true, severity: drop}}\n"
        "  y: {dtype: int}\n"
    )
    config = DataConfig.model_validate(
        {
            "source": {"type": "parquet", "path": "x"},
            "target": "y",
            "partitioned": True,
            "schema": "schema.yaml",
        }
    )
    assert load_schema(tmp_path / "schema.yaml").columns["id"].rule("unique")[1] == "drop"
    with pytest.raises(ConfigError, match="unique with severity drop"):
        data_steps(config, tmp_path)


# --- sql in ranges ----------------------------------------------------------------------------


def sql_table(url: str, frame: pd.DataFrame) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        frame.to_sql("visa", conn, index=False)
    engine.dispose()


def check_sql_ranges(tmp_path: Path, url: str, visa: pd.DataFrame) -> None:
    frame = visa.reset_index(drop=True).assign(row_id=np.arange(len(visa)))
    frame.loc[7, "row_id"] = None  # a NULL key still comes along (with the first range)
    sql_table(url, frame)
    schema = load_schema(VISA)
    schema.columns["row_id"] = schema.columns["yr_of_estab"].model_copy(
        update={"nullable": True, "min": None, "max": None}
    )
    (tmp_path / "schema.yaml").write_text(
        yaml.safe_dump(schema.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    )
    source = {"type": "sql", "url": url, "table": "visa", "partition_on": "row_id", "partitions": 4}
    ranges = partitions.sql_ranges(SourceConfig(**source), tmp_path)
    assert len(ranges) == 4
    read = [ranges.read(i) for i in range(4)]
    assert sum(len(f) for f in read) == len(frame)
    assert read[0]["row_id"].isna().sum() == 1
    assert pd.concat(read)["case_id"].is_unique
    assert "range 3" in ranges.file_name(3) and "password" not in ranges.file_name(3)


def test_sql_is_read_in_ranges_on_sqlite(tmp_path: Path, visa: pd.DataFrame) -> None:
    check_sql_ranges(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", visa)


@pytest.mark.service
def test_sql_is_read_in_ranges_on_postgres(
    tmp_path: Path, visa: pd.DataFrame, postgres_url: str
) -> None:
    check_sql_ranges(tmp_path, postgres_url, visa)


@pytest.mark.service
def test_partitioned_line_over_postgres_ranges_matches_the_whole_read(
    tmp_path: Path, visa: pd.DataFrame, postgres_url: str
) -> None:
    """ignore_row_order: a whole-table read has no defined order, the ranges come sorted."""
    sql_table(postgres_url, visa.assign(row_id=np.arange(len(visa))).drop(columns=[]))
    source = {"url": postgres_url, "table": "visa"}
    ranged = {**source, "partition_on": "row_id", "partitions": 5}
    schema = load_schema(VISA)
    schema.columns["row_id"] = schema.columns["yr_of_estab"].model_copy(
        update={"min": None, "max": None}
    )
    (tmp_path / "schema.yaml").write_text(
        yaml.safe_dump(schema.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    )
    version = {"version": {"ignore_row_order": True}}
    whole, out_whole, _ = run_data(
        tmp_path, "", partitioned=False, kind="sql", sql=source, **version
    )
    parts, out_parts, _ = run_data(
        tmp_path, "", partitioned=True, kind="sql", sql=ranged, **version
    )
    assert whole.ok and parts.ok, (whole.failures, parts.failures)
    assert len(out_parts["clean"].parts) == 5
    assert out_parts["dataset"].fingerprint == out_whole["dataset"].fingerprint


def test_partition_on_needs_a_sql_source() -> None:
    with pytest.raises(ValueError, match="only a sql source is read in ranges"):
        SourceConfig(type="csv", path="x.csv", partition_on="id")


def test_a_sql_source_without_partition_on_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sql_table(url, pd.DataFrame({"a": [1, 2]}))
    with pytest.raises(DataValidationError, match="partition_on"):
        partitions.of_source(SourceConfig(type="sql", url=url, table="visa"), tmp_path)


def test_appending_a_file_parses_only_that_file(
    tmp_path: Path, visa: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    original = partitions.SourceFiles.parse

    def counting(self: partitions.SourceFiles, index: int, data: bytes) -> pd.DataFrame:
        parsed.append(self.files[index].rsplit("/", 1)[-1])
        return original(self, index, data)

    monkeypatch.setattr(partitions.SourceFiles, "parse", counting)
    folder = tmp_path / "parts"
    write_parts(visa.iloc[:4000], folder, 4)
    artifacts = tmp_path / "artifacts-True"
    first, _, _ = run_data(tmp_path, "parts", partitioned=True)
    assert first.ok and len(parsed) == 4
    parsed.clear()
    visa.iloc[4000:].to_parquet(folder / "part-100.parquet", index=False)
    second, out, _ = run_data(tmp_path, "parts", partitioned=True)
    assert second.ok and parsed == ["part-100.parquet"]
    assert artifacts.exists()
    visa.to_parquet(tmp_path / "whole.parquet", index=False)
    _, whole, _ = run_data(tmp_path, "whole.parquet", partitioned=False)
    assert out["dataset"].fingerprint == whole["dataset"].fingerprint
    # a changed file is parsed again
    parsed.clear()
    visa.iloc[:1000].assign(no_of_employees=7).to_parquet(folder / "part-000.parquet", index=False)
    third, changed, _ = run_data(tmp_path, "parts", partitioned=True)
    assert third.ok and parsed == ["part-000.parquet"]
    assert changed["dataset"].fingerprint != out["dataset"].fingerprint


@pytest.mark.service
def test_a_glob_on_s3_is_read_partition_by_partition(
    tmp_path: Path, visa: pd.DataFrame, s3_bucket_uri: Any
) -> None:
    """Source and artifacts on the S3 API (moto): the same dataset as the local whole file."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_bucket_uri.storage_options)
    local = write_parts(visa, tmp_path / "parts", 3)
    for file in sorted(local.iterdir()):
        fs.put_file(str(file), f"{s3_bucket_uri.bucket}/visa/{file.name}")
    storage = dict(s3_bucket_uri.storage_options)
    source = {
        "path": f"s3://{s3_bucket_uri.bucket}/visa/part-*.parquet",
        "options": {"storage_options": storage},
    }
    parts, out, _ = run_data(tmp_path, "", partitioned=True, sql=source)
    assert parts.ok, parts.failures
    visa.to_parquet(tmp_path / "whole.parquet", index=False)
    _, whole, _ = run_data(tmp_path, "whole.parquet", partitioned=False)
    assert out["dataset"].fingerprint == whole["dataset"].fingerprint
    assert len(out["clean"].parts) == 3


@pytest.mark.slow
def test_the_reference_profile_is_built_from_every_row(tmp_path: Path, visa: pd.DataFrame) -> None:
    """Features from every training row, outputs from every test row, through sketches: the
    profile build_profile makes of the same rows (categories exactly, numbers within the
    sketches' tolerance), and no drift when checked against those rows."""
    import shutil
    from pathlib import Path as P

    from conveyor.monitoring.drift import detect
    from conveyor.monitoring.profile import ReferenceProfile, build_profile
    from conveyor.project import Project

    write_parts(visa, tmp_path / "data", 5)
    shutil.copy(P(__file__).parents[2] / VISA, tmp_path / "schema.yaml")
    config = {
        "project": "p",
        "store": {"metadata": "sqlite:///meta.db", "artifacts": "artifacts"},
        "data": {
            "source": {"type": "parquet", "path": "data"},
            "schema": "schema.yaml",
            "target": "case_status",
            "partitioned": True,
            "sample_rows": 1000,
        },
        "features": {"drop": ["case_id"]},
        "training": {
            "candidates": [{"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}]
        },
        "evaluation": {"beat_baseline": False},
        "registry": {"model": "p"},
    }
    (tmp_path / "conveyor.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with Project.load(tmp_path) as proj:
        result = proj.run()
        assert result.ok, result.failures
        got = ReferenceProfile.from_dict(
            proj.load_artifact(result.outputs["reference_profile"].digest)
        )
        store, model = proj.artifacts, proj.load_artifact(result.outputs["model"].digest)
        tables = {
            n: proj.load_artifact(result.outputs[n].digest) for n in ("train_parts", "test_parts")
        }
        html = proj.load_artifact(result.outputs["report_html"].digest).decode()
        sample = proj.load_artifact(result.outputs["train"].digest)
    train, test = (
        pd.concat([partitions.load_part(store, t, i) for i in range(len(t.parts))])
        for t in tables.values()
    )
    X = test.drop(columns=["case_status"])
    want = build_profile(
        train.drop(columns=["case_status", "case_id"]),
        predictions=model.predict(X),
        probabilities=model.predict_proba(X),
        positive=got.positive,
        classes=list(model.classes_),
    )
    assert got.n_rows == want.n_rows == len(train) > 1000  # every row, not the sample
    assert set(got.columns) == set(want.columns) and set(got.outputs) == set(want.outputs)
    assert got.columns["continent"] == want.columns["continent"]
    assert got.outputs["prediction"] == want.outputs["prediction"]
    assert got.columns["yr_of_estab"].mean == pytest.approx(want.columns["yr_of_estab"].mean)
    # the report says what trained on a sample, with the sizes of both sides
    assert "candidates trained in memory on a sample of" in html
    assert f"{len(sample):,} of {len(train):,} training rows" in html
    verdict = detect(got, train.drop(columns=["case_status"]))
    assert not verdict.drifted_columns, verdict.drifted_columns
