"""The data half of the train line for tables bigger than one process: ``data.partitioned: true``.

ingest, validate and split work partition by partition (Dask tasks on the cluster when the
``dask`` executor runs the step, else a thread pool), and the partitions live in the artifact
store as Parquet (:class:`~conveyor.contracts.PartitionedTable`), so no process holds the table:

- **ingest** reads each file of the source once, stores it, and feeds its row hashes to the
  dataset fingerprint in row order: the fingerprint equals the in-memory one for the same rows,
  whatever the partitioning.
- **validate** runs the schema on each partition and merges the reports (counts summed, the
  first failing rows with their file and global row number). What cannot be judged one partition
  at a time is judged over the table: ``min_rows``, and ``unique`` / the primary key from the
  64-bit hashes of the key values (8 bytes a row on the step's process).
- **split** sends each row to train or test by a seeded hash of the row (the same row always
  lands on the same side, whatever the partitioning; class shares hold by the law of large
  numbers rather than by stratification), and draws seeded samples of at most
  ``data.sample_rows`` rows of each side for what trains and evaluates in memory (every
  candidate except Dask estimators, the evaluation, the report and the reference profile).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor._text import short_list
from conveyor.config import SourceConfig
from conveyor.contracts import DatasetVersion, Evaluation, PartitionedTable, TablePart
from conveyor.data import partitions, sources, versioning
from conveyor.data.schema import Schema
from conveyor.data.target import check_classes, infer_task, resolve_positive
from conveyor.data.validation import SAMPLE, Failure, ValidationReport, _coerce, _jsonable
from conveyor.data.validation import validate as validate_frame
from conveyor.errors import ConfigError, DataValidationError
from conveyor.pipeline import Step

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.config import DataConfig
    from conveyor.monitoring.sketches import FrameSketch
    from conveyor.pipeline import StepContext

SPLIT_OUTPUTS = ("train", "test", "train_parts", "test_parts")


def check(data: DataConfig, schema: Schema) -> None:
    """Refuse the settings the partitioned line cannot honour, before anything runs."""
    if data.split.validation_size:
        raise ConfigError(
            "data.split.validation_size: not supported with data.partitioned yet (train/test only)"
        )
    for name, spec in schema.columns.items():
        unique, severity = spec.rule("unique")
        if unique and severity in ("drop", "fix"):
            raise ConfigError(
                f"schema column {name!r}: unique with severity {severity} is not supported with "
                "data.partitioned (duplicates across partitions are found, not removed); use "
                "error or warn"
            )


def split_step(data: DataConfig, *, task: str | None, folds: int) -> Step:
    """The split of the partitioned line: train/test partitions and in-memory samples."""
    return Step(
        split,
        "split",
        inputs={"clean": "clean", "dataset": "dataset"},
        outputs=SPLIT_OUTPUTS,
        params={
            "target": data.target,
            "test_size": data.split.test_size,
            "seed": data.split.seed,
            "sample_rows": data.sample_rows,
            "task": task,
            "folds": folds,
            "positive": data.positive_class,
        },
    )


# --- ingest ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ingest:
    """Reads one partition, stores it and hashes its rows. A file whose bytes were ingested
    before (same content, same reading options) is not parsed again: its memo in the artifact
    store points at the stored partition and row hashes, so appending a file to a source costs
    that file's parsing only (the others are read and hashed with SHA-256, nothing more)."""

    files: partitions.SourceFiles | partitions.SqlRanges
    store: Any

    def __call__(self, index: int) -> tuple[TablePart, dict[str, str], np.ndarray[Any, Any]]:
        if isinstance(self.files, partitions.SqlRanges):  # a database can change: no memo
            return self._ingest(self.files.read(index))
        data = self.files.read_bytes(index)
        key = self.files.memo_key(data)
        remembered = self._remembered(key)
        if remembered is not None:
            return remembered
        part, dtypes, hashes = self._ingest(self.files.parse(index, data))
        memo = {
            "part": part.model_dump(),
            "dtypes": list(dtypes.items()),  # in column order
            "hashes": self.store.put_bytes(hashes.tobytes()),
        }
        self.store.put_memo(key, json.dumps(memo, sort_keys=True).encode())
        return part, dtypes, hashes

    def _ingest(
        self, frame: pd.DataFrame
    ) -> tuple[TablePart, dict[str, str], np.ndarray[Any, Any]]:
        dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
        return partitions.store_part(self.store, frame), dtypes, versioning.row_hashes(frame)

    def _remembered(
        self, key: str
    ) -> tuple[TablePart, dict[str, str], np.ndarray[Any, Any]] | None:
        raw = self.store.get_memo(key)
        if raw is None:
            return None
        memo = json.loads(raw)
        part = TablePart.model_validate(memo["part"])
        if not self.store.exists(part.digest):
            return None
        hashes = np.frombuffer(self.store.get_bytes(memo["hashes"]), dtype=np.uint64)
        return part, {str(c): str(t) for c, t in memo["dtypes"]}, hashes


def ingest(
    ctx: StepContext,
    *,
    source: dict[str, Any],
    base_dir: str,
    checksum: str | None,
    schema_hash: str,
    ignore_row_order: bool,
) -> tuple[PartitionedTable, DatasetVersion]:
    src = SourceConfig(**source)
    files = partitions.of_source(src, Path(base_dir))
    parts: list[TablePart] = []
    dtypes: list[dict[str, str]] = []
    hashes: list[np.ndarray[Any, Any]] = []
    for part, types, rows in partitions.run_tasks(
        _Ingest(files, ctx.artifacts), range(len(files)), label="ingest"
    ):
        parts.append(part)
        dtypes.append(types)
        hashes.append(rows)
    columns = list(dtypes[0])
    for i, types in enumerate(dtypes[1:], start=1):
        if list(types) != columns:
            raise DataValidationError(
                f"{files.file_name(i)}: its columns differ from {files.file_name(0)}'s: "
                f"{short_list(types, limit=10)} vs {short_list(columns, limit=10)}"
            )
    common = partitions.common_dtypes(dtypes)
    table = PartitionedTable(parts=parts, columns=columns, dtypes=[common[c] for c in columns])
    builder = versioning.Fingerprinter(common.items(), ignore_row_order=ignore_row_order)
    for i, types in enumerate(dtypes):
        if types != common:  # typed by its own rows: hash it as the table types it
            hashes[i] = versioning.row_hashes(partitions.load_part(ctx.artifacts, table, i))
        builder.add(hashes[i])
        hashes[i] = hashes[i][:0]
    dataset = DatasetVersion(
        fingerprint=builder.finish(schema_hash),
        source=sources.describe(src, Path(base_dir)),
        rows=table.rows,
        columns=len(columns),
        schema_hash=schema_hash,
        checksum=checksum,
    )
    ctx.log_metrics({"data.partitions": len(parts)})
    return table, dataset


# --- validate -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PartReport:
    part: TablePart
    dtypes: dict[str, str]
    report: ValidationReport
    keys: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]  # check -> hashes, rows


@dataclass(frozen=True)
class _Validate:
    store: Any
    table: PartitionedTable
    schema: Schema  # without the rules judged over the whole table
    unique: dict[str, list[str]]  # check label -> the columns whose values must be unique
    source: str
    target: str

    def __call__(self, index: int) -> _PartReport:
        raw = partitions.load_part(self.store, self.table, index)
        clean, report = validate_frame(raw, self.schema, source=self.source, target=self.target)
        for failure in report.failures:
            failure.positions = None  # the report travels back: only the sample of rows
        keys = {}
        for check, columns in self.unique.items():
            if all(c in raw.columns for c in columns):
                keys[check] = _key_hashes(raw, columns, self.schema)
        dtypes = {str(c): str(t) for c, t in clean.dtypes.items()}
        return _PartReport(partitions.store_part(self.store, clean), dtypes, report, keys)


def _key_hashes(
    raw: pd.DataFrame, columns: list[str], schema: Schema
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """64-bit hashes of the (converted) key values of the rows that have them, and their rows."""
    import pandas as pd

    values = pd.DataFrame(
        {
            c: _coerce(raw[c], schema.columns[c].dtype, schema.columns[c].format)[0]
            if c in schema.columns
            else raw[c]
            for c in columns
        }
    )
    present = (
        values.notna().all(axis=1).to_numpy() if len(columns) == 1 else np.ones(len(raw), bool)
    )
    rows = np.flatnonzero(present)
    return versioning.row_hashes(values.iloc[rows]), rows


def validate(
    ctx: StepContext,
    raw: PartitionedTable,
    dataset: DatasetVersion,
    *,
    schema: dict[str, Any],
    target: str,
) -> PartitionedTable:
    from conveyor.lines._data import record_dataset, record_validation

    record_dataset(ctx, dataset, raw.columns, target)
    full = Schema.model_validate(schema)
    local, unique = _per_partition(full)
    job = _Validate(ctx.artifacts, raw, local, unique, dataset.source, target)
    offsets = np.concatenate([[0], np.cumsum([p.rows for p in raw.parts])])
    merged = ValidationReport(dataset.source, raw.rows, 0, len(raw.columns), full.digest())
    parts: list[TablePart] = []
    dtypes: list[dict[str, str]] = []
    keys: dict[str, list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]] = {}
    for i, result in enumerate(partitions.run_tasks(job, range(len(raw.parts)), label="validate")):
        _merge(merged, result.report, offset=int(offsets[i]), partition=i)
        merged.rows_out += result.report.rows_out
        merged.columns = result.report.columns
        parts.append(result.part)
        dtypes.append(result.dtypes)
        for check, (hashes, rows) in result.keys.items():
            keys.setdefault(check, []).append((hashes, rows + offsets[i]))
    for check, found in keys.items():
        failure = _duplicates(check, found, full, unique[check], ctx.artifacts, raw, offsets)
        if failure is not None:
            merged.failures.append(failure)
    if raw.rows < full.table.min_rows:
        merged.failures.append(
            Failure(
                None,
                f"min_rows {full.table.min_rows}",
                "error",
                raw.rows,
                detail=f"the data has {raw.rows} rows",
            )
        )
    columns = list(dtypes[0]) if dtypes else list(raw.columns)
    common = partitions.common_dtypes(dtypes)
    record_validation(ctx, merged, columns=len(raw.columns))
    return PartitionedTable(parts=parts, columns=columns, dtypes=[common[c] for c in columns])


def _per_partition(schema: Schema) -> tuple[Schema, dict[str, list[str]]]:
    """The schema without what only the whole table can judge, and the unique checks to run
    over the table (check label -> columns)."""
    unique: dict[str, list[str]] = {}
    columns = {}
    for name, spec in schema.columns.items():
        if spec.rule("unique")[0]:
            unique[f"unique:{name}"] = [name]
            spec = spec.model_copy(update={"unique": False})
        columns[name] = spec
    keys = schema.table.key_columns
    if keys:
        unique["primary key " + "+".join(keys) + " unique"] = list(keys)
    table = schema.table.model_copy(update={"min_rows": 0, "primary_key": None})
    return schema.model_copy(update={"columns": columns, "table": table}), unique


def _merge(total: ValidationReport, part: ValidationReport, *, offset: int, partition: int) -> None:
    """Add one partition's failures: counts summed, the first rows kept (global row numbers,
    with the partition each is in)."""
    for failure in part.failures:
        same = next(
            (
                f
                for f in total.failures
                if (f.column, f.check, f.severity)
                == (failure.column, failure.check, failure.severity)
            ),
            None,
        )
        rows = [offset + r for r in failure.rows]
        where = [partition] * len(rows)
        if same is None:
            total.failures.append(
                replace(
                    failure,
                    rows=rows[:SAMPLE],
                    values=failure.values[:SAMPLE],
                    partitions=where[:SAMPLE],
                )
            )
            continue
        if not failure.rows and not same.rows:  # a table-level finding every partition repeats
            continue
        same.count += failure.count
        room = SAMPLE - len(same.rows)
        if room > 0:
            same.rows += rows[:room]
            same.values += failure.values[:room]
            same.partitions += where[:room]


def _duplicates(
    check: str,
    found: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
    schema: Schema,
    columns: list[str],
    store: Any,
    raw: PartitionedTable,
    offsets: np.ndarray[Any, Any],
) -> Failure | None:
    hashes = np.concatenate([h for h, _ in found])
    rows = np.concatenate([r for _, r in found])
    found.clear()
    values, counts = np.unique(hashes, return_counts=True)
    repeated = values[counts > 1]
    if not len(repeated):
        return None
    dup_rows = np.sort(rows[np.isin(hashes, repeated)])
    column = columns[0] if check.startswith("unique:") else None
    name = columns[0]
    severity = schema.columns[name].rule("unique")[1] if column else "error"
    first = dup_rows[:SAMPLE]
    shown = []
    where = []
    for row in first:  # read back only the partitions holding the first duplicates
        part = int(np.searchsorted(offsets, row, side="right") - 1)
        frame = partitions.load_part(store, raw, part)
        shown.append(_jsonable(frame[name].iloc[int(row - offsets[part])]))
        where.append(part)
    label = "unique" if column else check
    return Failure(
        column,
        label,
        severity,
        len(dup_rows),
        [int(r) + 1 for r in first],
        shown,
        rule="unique" if column else None,
        partitions=where,
    )


# --- split ----------------------------------------------------------------------------------------


def uniform(hashes: np.ndarray[Any, Any], seed: int, salt: int) -> np.ndarray[Any, Any]:
    """A number in [0, 1) per row, from its content hash, the seed and a salt (splitmix64):
    the same row gets the same number whatever the partitioning."""
    mix = np.uint64((seed * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) % 2**64)
    x = hashes.astype(np.uint64) ^ mix
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    result: np.ndarray[Any, Any] = (x >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return result


@dataclass(frozen=True)
class _Split:
    store: Any
    table: PartitionedTable
    test_size: float
    seed: int
    rates: tuple[float, float]  # the share of train and of test rows kept in the samples

    def __call__(self, index: int) -> tuple[TablePart, TablePart, pd.DataFrame, pd.DataFrame]:
        frame = partitions.load_part(self.store, self.table, index)
        hashes = versioning.row_hashes(frame)
        test = uniform(hashes, self.seed, 1) < self.test_size
        keep = uniform(hashes, self.seed, 2)
        train_rows, test_rows = frame[~test], frame[test]
        return (
            partitions.store_part(self.store, train_rows),
            partitions.store_part(self.store, test_rows),
            train_rows[keep[~test] < self.rates[0]],
            test_rows[keep[test] < self.rates[1]],
        )


def split(
    ctx: StepContext,
    clean: PartitionedTable,
    dataset: DatasetVersion,
    *,
    target: str,
    test_size: float,
    seed: int,
    sample_rows: int,
    task: str | None = None,
    folds: int = 2,
    positive: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame, PartitionedTable, PartitionedTable]:

    expected = (clean.rows * (1 - test_size), clean.rows * test_size)
    rates = (
        min(1.0, sample_rows / max(expected[0], 1)),
        min(1.0, sample_rows / max(expected[1], 1)),
    )
    job = _Split(ctx.artifacts, clean, test_size, seed, rates)
    trains: list[TablePart] = []
    tests: list[TablePart] = []
    samples: tuple[list[pd.DataFrame], list[pd.DataFrame]] = ([], [])
    for train_part, test_part, train_sample, test_sample in partitions.run_tasks(
        job, range(len(clean.parts)), label="split"
    ):
        trains.append(train_part)
        tests.append(test_part)
        samples[0].append(train_sample)
        samples[1].append(test_sample)
    train, test = (_concat(s, clean) for s in samples)
    train_parts = clean.model_copy(update={"parts": trains})
    test_parts = clean.model_copy(update={"parts": tests})
    try:
        task = task or infer_task(train[target])
        if task == "classification":
            resolve_positive(train[target].unique(), positive, where="data.positive_class")
            check_classes(
                train[target],
                target=target,
                min_rows=folds,
                where="training sample",
                why=f"cross-validation makes {folds} folds, each needing every class",
            )
    except DataValidationError as exc:
        raise DataValidationError(f"{dataset.source}: {exc}") from None
    ctx.log_metrics(
        {
            "split.train_rows": train_parts.rows,
            "split.test_rows": test_parts.rows,
            "split.train_sample_rows": len(train),
            "split.test_sample_rows": len(test),
        }
    )
    return train, test, train_parts, test_parts


def _concat(frames: list[pd.DataFrame], table: PartitionedTable) -> pd.DataFrame:
    import pandas as pd

    kept = [f for f in frames if len(f)]
    if not kept:
        return pd.DataFrame(
            {c: pd.Series(dtype=d) for c, d in zip(table.columns, table.dtypes, strict=True)}
        )
    return partitions.conform(pd.concat(kept, ignore_index=True), table.columns, table.dtypes)


# --- reference profile ----------------------------------------------------------------------------


def _outputs(model: Any, X: pd.DataFrame, evaluation: Evaluation) -> Any:
    """The model's outputs on ``X`` as the reference profile has them."""
    from conveyor.monitoring.profile import model_outputs

    classification = evaluation.task == "classification"
    scores = classification and hasattr(model, "predict_proba")
    return model_outputs(
        predictions=model.predict(X),
        probabilities=model.predict_proba(X) if scores else None,
        positive=evaluation.positive,
        task=evaluation.task,
        classes=list(model.classes_) if scores else None,
    )


@dataclass(frozen=True)
class _SketchPart:
    """Sketches one partition: its features (training rows), or the model's outputs on it
    (test rows, scored like served traffic)."""

    store: Any
    table: PartitionedTable
    target: str
    drop: tuple[str, ...]
    model: Any = None
    evaluation: Evaluation | None = None

    def __call__(self, index: int) -> FrameSketch:
        import pandas as pd

        from conveyor.monitoring.sketches import sketch_frame

        X = partitions.load_part(self.store, self.table, index).drop(columns=[self.target])
        if self.model is None or self.evaluation is None:
            return sketch_frame(X.drop(columns=[c for c in self.drop if c in X.columns]))
        out = _outputs(self.model, X, self.evaluation)
        return sketch_frame(X.iloc[:0], outputs=pd.DataFrame(out.columns))


def profile(
    ctx: StepContext,
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    evaluation: Evaluation,
    train_parts: PartitionedTable,
    test_parts: PartitionedTable,
    *,
    target: str,
    drop: list[str],
) -> dict[str, Any]:
    """The reference profile from every training row (features) and every test row (the
    model's outputs), through mergeable sketches, one partition in memory at a time; the same
    profile as the in-memory line's within the sketches' tolerance
    (:mod:`conveyor.monitoring.sketches`)."""
    from conveyor.monitoring.sketches import profile_from_sketch

    def merged(job: _SketchPart, table: PartitionedTable) -> FrameSketch:
        total: FrameSketch | None = None
        for sketch in partitions.run_tasks(job, range(len(table.parts)), label="profile"):
            total = sketch if total is None else total.merge(sketch)
        assert total is not None
        return total

    store = ctx.artifacts
    features = merged(_SketchPart(store, train_parts, target, tuple(drop)), train_parts)
    outputs = merged(
        _SketchPart(store, test_parts, target, tuple(drop), model, evaluation), test_parts
    )
    meta = _outputs(model, test.drop(columns=[target]).iloc[:1], evaluation)
    both = replace(features, outputs=outputs.outputs, n_output_rows=outputs.n_output_rows)
    reference = profile_from_sketch(
        both, positive=meta.positive, task=meta.task, classes=meta.classes
    )
    return reference.to_dict()
