"""The prediction log: every served row with its output, model version, request id and time.

Rows are appended in memory on the request path (a list append) and written by a background
thread in batches. :class:`PredictionLog` (registry mode) writes each batch as one Parquet
partition in the artifact store indexed in the metadata store; :class:`FolderPredictionLog`
(bundle and platform modes, no metadata store) writes it as a Parquet file under a local folder
or any fsspec URI. ``close()`` flushes what is left (the server calls it on graceful shutdown).
Monitoring reads the registry log back with :func:`conveyor.monitoring.current.read_log` as its
"current" data; a folder log is read with ``pandas.read_parquet(FOLDER)``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from typing import TYPE_CHECKING

from conveyor.monitoring.current import (  # the log's format, shared with its reader
    MODEL_VERSION,
    PREDICTED_AT,
    PREDICTION,
    PROBA_PREFIX,
    REQUEST_ID,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from conveyor.serving.batcher import Batch
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ServingStore

log = logging.getLogger("conveyor.serving")


class AbstractPredictionLog(ABC):
    """Buffers served batches and writes them as Parquet partitions off the request path;
    backends implement :meth:`_write` (one model version's batches).

    Args:
        flush_rows: write when this many rows are buffered ...
        flush_seconds: ... or when the oldest buffered row is this old.
        on_written: called with the number of rows of each written partition.
        on_error: called when a partition cannot be written (the rows are kept for next time).
    """

    def __init__(
        self,
        *,
        flush_rows: int = 5000,
        flush_seconds: float = 2.0,
        on_written: Callable[[int], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._on_written = on_written
        self._on_error = on_error
        self._pending: list[Batch] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-predlog", daemon=True)
        self._thread.start()

    def append(self, batch: Batch) -> None:
        """Queue a served batch (cheap: no I/O here)."""
        with self._lock:
            self._pending.append(batch)
            self._rows += len(batch.predictions)
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def close(self) -> None:
        """Stop the writer after flushing everything buffered."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the writer must outlive any one bad batch
                log.exception("prediction log: flush failed; the writer keeps running")
                if self._on_error is not None:
                    self._on_error()

    def flush(self) -> int:
        """Write buffered rows now, one partition per model version; returns rows written."""
        with self._lock:
            pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return 0
        by_version: dict[tuple[str, int], list[Batch]] = defaultdict(list)
        for batch in pending:
            by_version[(batch.model.record.name, batch.model.record.version)].append(batch)
        written = 0
        for (name, version), batches in by_version.items():
            try:
                rows = self._write(name, version, batches)
            except Exception:  # never lose rows to a transient store error
                log.exception("prediction log: cannot write %d batches; will retry", len(batches))
                if self._on_error is not None:
                    self._on_error()
                with self._lock:
                    self._pending[:0] = batches
                    self._rows += sum(len(b.predictions) for b in batches)
                continue
            written += rows
            if self._on_written is not None:
                self._on_written(rows)
        return written

    @abstractmethod
    def _write(self, name: str, version: int, batches: list[Batch]) -> int:
        """Write one version's batches as one partition; returns the rows written."""


class PredictionLog(AbstractPredictionLog):
    """The registry's prediction log: partitions in the artifact store, indexed in the
    metadata store (what ``conveyor monitor`` reads)."""

    def __init__(
        self,
        metadata: ServingStore,
        artifacts: AbstractArtifactStore,
        *,
        flush_rows: int = 5000,
        flush_seconds: float = 2.0,
        on_written: Callable[[int], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._metadata = metadata
        self._artifacts = artifacts
        super().__init__(
            flush_rows=flush_rows,
            flush_seconds=flush_seconds,
            on_written=on_written,
            on_error=on_error,
        )

    def _write(self, name: str, version: int, batches: list[Batch]) -> int:
        from conveyor.store.metadata import ArtifactRef

        frame = batches_to_frame(batches)
        stored = self._artifacts.put(frame)
        ref = ArtifactRef("prediction_log", stored.digest, stored.kind, stored.size)
        self._metadata.record_prediction_log(
            name,
            version,
            ref,
            n_rows=len(frame),
            first_at=min(b.at for b in batches),
            last_at=max(b.at for b in batches),
        )
        return len(frame)


class FolderPredictionLog(AbstractPredictionLog):
    """A prediction log with no metadata store: ``ROOT/NAME/vVERSION/TIME-ID.parquet`` under a
    local folder or any fsspec URI (``s3://``, ``gs://``, ``az://``), each file written under
    a temporary name and renamed (a reader never sees half a file).

    Args:
        root: the folder or URI.
        kwargs: as :class:`AbstractPredictionLog`.
    """

    def __init__(
        self,
        root: str,
        *,
        flush_rows: int = 5000,
        flush_seconds: float = 2.0,
        on_written: Callable[[int], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        import fsspec

        self.root = root
        self._fs, self._base = fsspec.core.url_to_fs(root)
        self._fs.makedirs(self._base, exist_ok=True)
        super().__init__(
            flush_rows=flush_rows,
            flush_seconds=flush_seconds,
            on_written=on_written,
            on_error=on_error,
        )

    def _write(self, name: str, version: int, batches: list[Batch]) -> int:
        import io
        import time

        frame = batches_to_frame(batches)
        buf = io.BytesIO()
        frame.to_parquet(buf, engine="pyarrow", compression="zstd", index=False)
        folder = f"{self._base.rstrip('/')}/{name}/v{version}"
        stem = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(min(b.at for b in batches)))}"
        path = f"{folder}/{stem}-{uuid.uuid4().hex[:12]}.parquet"
        self._fs.makedirs(folder, exist_ok=True)
        self._fs.pipe_file(f"{path}.tmp", buf.getvalue())
        self._fs.mv(f"{path}.tmp", path)
        return len(frame)


def batches_to_frame(batches: list[Batch]) -> pd.DataFrame:
    """Inputs (training schema columns), prediction, class probabilities, version, id, time.

    JSON batches are merged as column lists and turned into ONE frame (building a frame per
    one-row batch cost ~2.8 ms each and held the GIL against the request path); file batches
    already carry their frame.
    """
    import pandas as pd

    lists = [b for b in batches if b.frame is None]
    frames = [b for b in batches if b.frame is not None]
    parts = []
    if lists:
        contract = lists[0].model.contract
        merged = {
            name: [v for b in lists for v in (b.columns or {})[name]] for name in contract.columns
        }
        parts.append(_with_outputs(contract.frame(merged), lists))
    for batch in frames:
        assert batch.frame is not None
        parts.append(_with_outputs(batch.frame.reset_index(drop=True), [batch]))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _with_outputs(part: pd.DataFrame, batches: list[Batch]) -> pd.DataFrame:
    """``part`` (the inputs of ``batches``, in order) with their outputs and keys appended."""
    import numpy as np

    first = batches[0].predictions
    part[PREDICTION] = [label for b in batches for label in b.predictions.labels]
    if first.probabilities is not None and first.classes is not None:
        stacked = np.vstack([b.predictions.probabilities for b in batches])  # type: ignore[misc]
        for i, cls in enumerate(first.classes):
            part[f"{PROBA_PREFIX}{cls}"] = stacked[:, i]
    part[MODEL_VERSION] = batches[0].model.record.version
    part[REQUEST_ID] = [rid for b in batches for rid in b.request_ids]
    part[PREDICTED_AT] = np.repeat([b.at for b in batches], [len(b.predictions) for b in batches])
    return part
