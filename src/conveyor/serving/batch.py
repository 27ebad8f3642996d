"""Scoring tables: the file endpoint and ``conveyor predict`` (in chunks, bounded memory).

Inputs go through the same contract as online requests (:class:`InputContract`); outputs are
the input columns, then ``prediction``, ``proba_<class>`` per class, ``model_name`` and
``model_version`` on every row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from conveyor.errors import ArtifactStorageError, DataValidationError
from conveyor.monitoring.current import PREDICTION, PROBA_PREFIX

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import pandas as pd

    from conveyor.serving.model import LoadedModel, Predictions

T = TypeVar("T")
Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
DEFAULT_CHUNK_ROWS = 100_000


def format_of(name: str, *, given: str | None = None) -> Format:
    """``csv`` or ``parquet``: ``given`` if set, else from the file name's extension.

    Raises:
        DataValidationError: an unknown format.
    """
    kind = (given or Path(name.split("?")[0]).suffix.lstrip(".") or "csv").lower()
    kind = {"pq": "parquet", "txt": "csv", "tsv": "csv"}.get(kind, kind)
    if kind not in FORMATS:
        raise DataValidationError(f"{name}: cannot score .{kind} files; use csv or parquet")
    return kind


def annotate(model: LoadedModel, original: pd.DataFrame, predictions: Predictions) -> pd.DataFrame:
    """``original`` with the model's outputs appended."""
    out = original.reset_index(drop=True).copy()
    out[PREDICTION] = predictions.labels
    if predictions.probabilities is not None and predictions.classes is not None:
        for i, cls in enumerate(predictions.classes):
            out[f"{PROBA_PREFIX}{cls}"] = predictions.probabilities[:, i]
    out["model_name"] = model.record.name
    out["model_version"] = model.record.version
    return out


def score_chunks(
    model: LoadedModel, chunks: Iterator[pd.DataFrame], *, source: str
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, Predictions]]:
    """Validate and predict chunk by chunk; yields (model frame, output chunk, predictions).

    Raises:
        DataValidationError: a chunk breaks the contract, or the model refuses one of its rows
            (see :func:`predict_rows`); rows are numbered from the file's first data row. A
            table without rows is refused too (as the server does).
    """
    schema = model.contract.schema()
    offset = 0
    for chunk in chunks:
        if chunk.empty:  # a header-only csv reads as one empty chunk
            continue
        frame = model.contract.conform(chunk, source=source, schema=schema, row_offset=offset)
        predictions = predict_rows(model, frame, source=source, row_offset=offset)
        yield frame, annotate(model, chunk, predictions), predictions
        offset += len(chunk)
    if offset == 0:
        raise DataValidationError(f"{source}: no rows to score (the file has column names only)")


def predict_rows(
    model: LoadedModel, frame: pd.DataFrame, *, source: str, row_offset: int = 0
) -> Predictions:
    """``model.predict(frame)``, with a refusal made a one-line error naming the row.

    Rows that pass the contract can still be refused by the model's own checks (a value of
    1e308 overflows a derived feature to infinity): the first refused row is found by halving.

    Raises:
        DataValidationError: ``source``, the row (1-based, from ``row_offset``) and the
            model's reason.
    """
    try:
        return model.predict(frame)
    except ValueError as exc:
        row = row_offset + _first_refused(model, frame) + 1
        lines = str(exc).strip().splitlines()
        reason = lines[0][:200] if lines else type(exc).__name__
        raise DataValidationError(
            f"{source}: row {row}: the model cannot score it: {reason}"
        ) from exc


def _first_refused(model: LoadedModel, frame: pd.DataFrame) -> int:
    """The position of a row ``model`` refuses (the first, when refusals are per row)."""
    lo, hi = 0, len(frame)  # a refused row lies in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            model.predict(frame.iloc[lo:mid])
        except ValueError:
            hi = mid
        else:
            lo = mid
    return lo


def in_background(items: Iterable[T], *, depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a worker thread, ``depth`` items ahead of the consumer.

    Scoring chains reading, validating and predicting in the worker while the caller writes
    the previous chunk (pyarrow and numpy release the GIL): I/O overlaps the model. An
    exception in the worker is raised here, in order.
    """
    import queue
    import threading

    done = object()
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put((item, None))
        except BaseException as exc:  # handed to the consumer, raised there
            box.put((None, exc))
        else:
            box.put((done, None))

    worker = threading.Thread(target=produce, name="conveyor-score", daemon=True)
    worker.start()
    try:
        while True:
            item, error = box.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting on a full queue
            try:
                box.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def write_table(
    chunks: Iterator[pd.DataFrame],
    output: str | Path,
    *,
    fmt: Format,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Write chunks to ``output`` atomically (a temporary file renamed at the end; nothing is
    left behind on failure). Returns the rows written.

    Raises:
        ArtifactStorageError: the output cannot be written.
    """
    target = Path(output)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    rows = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as fh:
            rows = _write_chunks(chunks, fh, fmt, on_chunk)
        partial.replace(target)
    except OSError as exc:
        raise ArtifactStorageError(f"{target}: cannot write: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _write_chunks(
    chunks: Iterator[pd.DataFrame],
    fh: Any,
    fmt: Format,
    on_chunk: Callable[[int], None] | None,
) -> int:
    rows = 0
    writer: Any = None
    try:
        for i, chunk in enumerate(chunks):
            if fmt == "csv":
                chunk.to_csv(fh, header=i == 0, index=False)
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(fh, table.schema, compression="zstd")
                else:  # a chunk where a column is all null infers another type
                    table = table.cast(writer.schema)
                writer.write_table(table)
            rows += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    finally:
        if writer is not None:
            writer.close()
    return rows
