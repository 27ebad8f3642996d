"""The data half of the built-in lines: ingest -> validate -> split, as steps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor._text import short_list
from conveyor.config import SourceConfig
from conveyor.contracts import DatasetVersion
from conveyor.data import sources, split, versioning
from conveyor.data.schema import Schema, load_schema
from conveyor.data.target import check_classes, infer_task, resolve_positive
from conveyor.data.validation import ValidationReport
from conveyor.data.validation import validate as validate_frame
from conveyor.errors import ConfigError, DataValidationError
from conveyor.pipeline import Step

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from conveyor.config import DataConfig
    from conveyor.pipeline import StepContext


def project_schema(data: DataConfig, base_dir: Path) -> Schema:
    """The data contract of the project (an empty one when ``data.schema`` is not set)."""
    return load_schema(base_dir / data.schema_file) if data.schema_file else Schema()


def data_steps(
    data: DataConfig,
    base_dir: Path,
    *,
    schema: Schema | None = None,
    task: str | None = None,
    folds: int = 2,
) -> list[Step]:
    """ingest (source -> raw), validate (raw -> clean, report), split (clean -> train/test).

    The split step also checks what training will need, so a problem fails in seconds rather
    than after tuning: ``data.positive_class`` names a class of the target, and every class
    has at least ``folds`` training rows (the cross-validation folds).
    """
    schema = schema if schema is not None else project_schema(data, base_dir)
    target_spec = schema.columns.get(data.target)
    if schema.columns and target_spec is None:
        raise ConfigError(f"data.target: {data.target!r} is not a column of {data.schema_file}")
    ingest: Callable[..., Any]
    validate: Callable[..., Any]
    if data.partitioned:
        from conveyor.lines import _partitioned

        _partitioned.check(data, schema)
        ingest, validate = _partitioned.ingest, _partitioned.validate
        split_step = _partitioned.split_step(data, task=task, folds=folds)
    else:
        ingest, validate = _ingest, _validate
        split_step = _split_step(data, task=task, folds=folds)
    checksum = sources.file_checksum(data.source, base_dir)
    return [
        Step(
            ingest,
            "ingest",
            inputs={},
            outputs=("raw", "dataset"),
            params={
                "source": data.source.model_dump(),
                "base_dir": str(base_dir),
                "checksum": checksum,
                "schema_hash": schema.digest(),
                "ignore_row_order": data.version.ignore_row_order,
            },
            cache=checksum is not None,
        ),  # a database can change under us: always re-read
        Step(
            validate,
            "validate",
            inputs={"raw": "raw", "dataset": "dataset"},
            outputs=("clean",),
            params={"schema": schema.model_dump(mode="json"), "target": data.target},
        ),
        split_step,
    ]


def _split_step(data: DataConfig, *, task: str | None, folds: int) -> Step:
    outputs = ("train", "validation", "test") if data.split.validation_size else ("train", "test")
    return Step(
        _split,
        "split",
        inputs={"clean": "clean", "dataset": "dataset"},
        outputs=outputs,
        params={
            "target": data.target,
            **data.split.model_dump(),
            "task": task,
            "folds": folds,
            "positive": data.positive_class,
        },
    )


def _ingest(
    *,
    source: dict[str, Any],
    base_dir: str,
    checksum: str | None,
    schema_hash: str,
    ignore_row_order: bool,
) -> tuple[pd.DataFrame, DatasetVersion]:
    src = SourceConfig(**source)
    df = sources.load(src, Path(base_dir))
    dataset = DatasetVersion(
        fingerprint=versioning.fingerprint(
            df, schema_hash=schema_hash, ignore_row_order=ignore_row_order
        ),
        source=sources.describe(src, Path(base_dir)),
        rows=len(df),
        columns=len(df.columns),
        schema_hash=schema_hash,
        checksum=checksum,
    )
    return df, dataset


def _validate(
    ctx: StepContext,
    raw: pd.DataFrame,
    dataset: DatasetVersion,
    *,
    schema: dict[str, Any],
    target: str,
) -> pd.DataFrame:
    record_dataset(ctx, dataset, raw.columns, target)
    clean, report = validate_frame(
        raw, Schema.model_validate(schema), source=dataset.source, target=target
    )
    record_validation(ctx, report, columns=len(raw.columns))
    return clean


def record_dataset(ctx: StepContext, dataset: DatasetVersion, columns: Any, target: str) -> None:
    """Record the dataset version the validate step reads; fail when the target is missing."""
    ctx.metadata.record_dataset(
        dataset.fingerprint,
        source=dataset.source,
        n_rows=dataset.rows,
        n_columns=dataset.columns,
        schema_hash=dataset.schema_hash,
        digest=ctx.input_digests["raw"],
        run_id=ctx.run_id,
    )
    if target not in columns:
        raise DataValidationError(
            f"{dataset.source}: target column {target!r} (data.target) is missing; "
            f"columns: {short_list(columns, limit=10)}"
        )


def record_validation(ctx: StepContext, report: ValidationReport, *, columns: int) -> None:
    """Attach the report and its counts to the run; raise when an error check failed."""
    ctx.attach("validation_report", report.to_dict())
    ctx.log_metrics(
        {
            "data.rows": report.rows_in,
            "data.columns": columns,
            "validation.rows_out": report.rows_out,
            "validation.dropped": report.count("drop"),
            "validation.fixed": report.count("fix"),
            "validation.warnings": report.count("warn"),
            "validation.errors": len(report.errors),
        }
    )
    if not report.passed:
        raise DataValidationError(report.error_message())


def _split(
    ctx: StepContext,
    clean: pd.DataFrame,
    dataset: DatasetVersion,
    *,
    target: str,
    test_size: float,
    validation_size: float,
    stratify: bool,
    seed: int,
    task: str | None = None,
    folds: int = 2,
    positive: Any = None,
) -> tuple[pd.DataFrame, ...]:
    task = task or infer_task(clean[target])
    try:
        parts = split.train_test(
            clean,
            target=target,
            test_size=test_size,
            stratify=stratify,
            seed=seed,
            validation_size=validation_size,
            task=task,
        )
        if task == "classification":
            resolve_positive(clean[target].unique(), positive, where="data.positive_class")
            check_classes(
                parts[0][target],
                target=target,
                min_rows=folds,
                where="training split",
                why=f"cross-validation makes {folds} folds, each needing every class; drop or "
                "merge rare classes (schema.yaml `allowed` with severity drop) or lower "
                "training.tuning.cv",
            )
    except DataValidationError as exc:
        raise DataValidationError(f"{dataset.source}: {exc}") from None
    names = ("train", "validation", "test") if len(parts) == 3 else ("train", "test")
    ctx.log_metrics({f"split.{n}_rows": len(part) for n, part in zip(names, parts, strict=True)})
    return parts
