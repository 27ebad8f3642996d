"""Batch scoring on a Dask cluster: one task per input file, Parquet parts published at once.

``conveyor predict --executor dask`` lists its input as partitions (a file, a folder or a glob:
:func:`conveyor.data.partitions.list_files`) and sends one task per partition to a Dask
cluster. A task reads its file, validates and predicts through the same code as the in-process
path (:func:`conveyor.serving.batch.score_chunks`: same contract, messages and columns), and
writes ``part-<index>.parquet`` and a small record of it into a staging folder beside the
output. Each worker process loads the model once and keeps it, keyed by its artifact digest.

When every partition has succeeded the output is published at once: a local staging folder is
renamed to the output; on object stores the parts are copied under the output and the
``_SUCCESS`` manifest is written last (a reader trusts the folder only once it is there). A
failed partition leaves no output, and the parts scored so far in the staging folder: a re-run
with the same model and input keeps each part whose record still matches (input path and size,
model digest; its bytes checked against their SHA-256) and scores only the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import tempfile
import threading
import time
import uuid
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from conveyor import errors
from conveyor._dask import dask_client
from conveyor.errors import ArtifactStorageError, ConfigError, ConveyorError, DataValidationError
from conveyor.serving.batch import DEFAULT_CHUNK_ROWS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd

    from conveyor.data.partitions import SourceFiles
    from conveyor.project import Project
    from conveyor.serving.contract import UnknownPolicy
    from conveyor.serving.model import LoadedModel

__all__ = [
    "MANIFEST",
    "ModelSource",
    "Output",
    "PartOutcome",
    "PartRecord",
    "ScoreSummary",
    "input_files",
    "model_source",
    "output_for",
    "score_partitioned",
    "worker_stats",
]

MANIFEST = "_SUCCESS"
FORMAT = 1  # of the records and the manifest; a record of another format is scored again
STAGING_SUFFIX = ".conveyor-staging"
_PART = "part-{:05d}.parquet"
_RECORD = "_record-{:05d}.json"
# What a previous output (or one whose publishing was cut short) may hold: it may be replaced.
_OURS = re.compile(r"part-\d{5}\.parquet|_record-\d{5}\.json|_SUCCESS|\..+\.tmp")
_IO_THREADS = 8  # stat / hash / copy calls in flight against an object store


@dataclass(frozen=True)
class ModelSource:
    """Where workers load the model from: the stores' addresses and the version, resolved once
    (an alias moving during the run changes nothing)."""

    name: str
    version: int
    digest: str
    artifacts_uri: str
    metadata_url: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    unknown: UnknownPolicy = "reject"
    max_records: int = 1000

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


def model_source(proj: Project, ref: str) -> ModelSource:
    """``ref`` of ``proj`` resolved to a version, with the stores its workers open.

    Raises:
        ModelNotFoundError: no such model, version or alias.
        ConfigError: the artifact store is in this process's memory.
    """
    from conveyor import _secrets
    from conveyor.registry import versions

    if proj.artifacts_uri.startswith("memory://"):
        raise ConfigError("--executor dask needs an artifact store its workers can reach")
    record = versions.resolve(proj.metadata, ref)
    options = _secrets.expand_tree(
        proj.config.store.storage_options, "store.storage_options", proj.root
    )
    return ModelSource(
        name=record.name,
        version=record.version,
        digest=record.digest,
        artifacts_uri=proj.artifacts_uri,
        metadata_url=proj.metadata_url,
        storage_options=options,
        unknown=proj.config.serving.unknown_categories,
        max_records=proj.config.serving.max_records,
    )


@dataclass(frozen=True)
class Output:
    """The output folder (an absolute path or an object-store URI) and its fsspec options."""

    uri: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def staging_uri(self) -> str:
        """The staging folder beside the output (hidden: readers of the parent skip it)."""
        head, _, name = self.uri.rstrip("/").rpartition("/")
        return f"{head}/.{name}{STAGING_SUFFIX}"

    def locate(self) -> tuple[Any, str, str]:
        """The filesystem, the output's path in it and the staging folder's path.

        Raises:
            ArtifactStorageError: the filesystem cannot be opened, or the URI names no folder.
        """
        from conveyor.store.artifacts._filesystems import first_line, open_filesystem

        try:
            fs, out = open_filesystem(self.uri, self.storage_options)
            _, staging = open_filesystem(self.staging_uri, self.storage_options)
        except Exception as exc:  # a driver missing, or rejecting its options
            raise ArtifactStorageError(f"{self.uri}: cannot open: {first_line(exc)}") from None
        if "/" not in out.strip("/"):
            raise ArtifactStorageError(f"{self.uri}: name a folder inside the bucket or container")
        return fs, out.rstrip("/"), staging.rstrip("/")

    @property
    def is_local(self) -> bool:
        """A folder on this machine's filesystem (published by renaming)."""
        return "://" not in self.uri or self.uri.startswith("file://")


@dataclass(frozen=True)
class PartRecord:
    """One partition scored: its input file, the model, and the part written (None for an input
    without rows)."""

    index: int
    input: str
    input_size: int
    model_digest: str
    rows: int
    part: str | None
    size: int
    sha256: str | None
    format: int = FORMAT

    def to_json(self) -> bytes:
        """The record as stored beside its part."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PartRecord | None:
        """A stored record, or None when it is unreadable or of another format."""
        try:
            fields = json.loads(data)
            record = cls(**fields)
        except (ValueError, TypeError):
            return None
        return record if record.format == FORMAT else None


@dataclass(frozen=True)
class PartOutcome:
    """What one task reports: its record, or the conveyor error that stopped it."""

    index: int
    record: PartRecord | None
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0
    worker: int = 0  # the worker's process id
    loaded_model: bool = False  # this task loaded the model (else the worker had it)


@dataclass(frozen=True)
class ScoreSummary:
    """The published output: how many partitions and rows, and how many were resumed."""

    model: ModelSource
    output: str
    partitions: int
    resumed: int
    rows: int
    scored_rows: int  # rows scored by this run (resumed parts excluded)
    seconds: float
    startup_seconds: float  # starting (or reaching) the cluster
    model_loads: int  # workers that loaded the model in this run
    records: tuple[PartRecord, ...]


def score_partitioned(
    files: SourceFiles,
    output: Output,
    model: ModelSource,
    *,
    address: str | None = None,
    workers: int = 2,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_start: Callable[[int, int], None] | None = None,
    on_part: Callable[[PartOutcome, int, int], None] | None = None,
) -> ScoreSummary:
    """Score every partition of ``files`` on a Dask cluster and publish ``output`` at once.

    Args:
        files: the input's partitions (one per file).
        output: the folder to publish; an existing one is replaced only if it holds nothing but
            a previous output (parts and ``_SUCCESS``), as ``conveyor predict`` replaces a file.
        model: the version to score with, and where workers load it from.
        address: a scheduler address; None starts a LocalCluster of ``workers`` processes.
        workers: processes of the local cluster (one thread each).
        chunk_rows: rows validated and predicted at a time inside a partition.
        on_start: called with (partitions resumed, partitions) before scoring.
        on_part: called with (outcome, done, to do) as each partition finishes.

    Raises:
        DataValidationError: a partition breaks the contract or the model refuses a row: the
            message names the file and row; no output is published.
        ArtifactStorageError: the output cannot be written, or exists holding other files.
        ConveyorError: the cluster cannot be reached, or a worker died.
    """
    start = time.perf_counter()
    fs, out_path, staging = output.locate()
    _check_target(fs, out_path, output.uri)
    inside = [f for f in files.files if f.startswith((f"{out_path}/", f"{staging}/"))]
    if inside:
        raise DataValidationError(
            f"{files.name}: the input includes the output folder ({inside[0]}); "
            "write the scores elsewhere"
        )
    sizes = _input_sizes(files)
    kept = _resume(fs, staging, files, sizes, model.digest, local=output.is_local)
    if on_start is not None:
        on_start(len(kept), len(files))
    todo = [i for i in range(len(files)) if i not in kept]
    outcomes: list[PartOutcome] = []
    startup = 0.0
    if todo:
        try:
            with dask_client(address, workers) as client:
                startup = time.perf_counter() - start
                outcomes = _run(client, files, todo, sizes, model, output, chunk_rows, on_part)
        except BaseException:
            _drop_if_empty(fs, staging)
            raise
    records = dict(kept)
    records.update({o.index: o.record for o in outcomes if o.record is not None})
    ordered = tuple(records[i] for i in range(len(files)))
    if not any(r.rows for r in ordered):
        _drop_if_empty(fs, staging, force=True)
        raise DataValidationError(f"{files.name}: no rows to score (every file is empty)")
    manifest = _manifest(files, model, ordered)
    _publish(fs, out_path, staging, ordered, manifest, output)
    return ScoreSummary(
        model=model,
        output=output.uri,
        partitions=len(files),
        resumed=len(kept),
        rows=sum(r.rows for r in ordered),
        scored_rows=sum(r.rows for i, r in enumerate(ordered) if i not in kept),
        seconds=time.perf_counter() - start,
        startup_seconds=startup,
        model_loads=sum(o.loaded_model for o in outcomes),
        records=ordered,
    )


# --- on the workers ------------------------------------------------------------------------------

_MODELS: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
_LOADS: Counter[str] = Counter()  # model loads in this process, by digest
_SCORED: Counter[str] = Counter()  # partitions scored in this process, by model digest
_LOCK = threading.Lock()
_KEEP_MODELS = 2  # a long-lived cluster scoring with several versions keeps the latest two


def worker_stats() -> dict[str, Any]:
    """This process's model loads and partitions scored, by model digest: ``client.run`` it to
    see each worker load a model once however many partitions it scored."""
    return {"pid": os.getpid(), "loads": dict(_LOADS), "partitions": dict(_SCORED)}


def _score_part(
    file: SourceFiles,
    index: int,
    size: int,
    source: ModelSource,
    output: Output,
    chunk_rows: int,
) -> PartOutcome:
    """Partition ``index`` (``file``: the listing cut down to its file) scored and its part
    written to the staging folder (a task)."""
    start = time.perf_counter()
    loaded_now = False
    try:
        model, loaded_now = _loaded(source)
        frame = file.read(0)
        record = _write_part(frame, model, file.file_name(0), index, size, output, chunk_rows)
    except ConveyorError as exc:  # sent back as text: some carry arguments pickle cannot rebuild
        return PartOutcome(
            index,
            None,
            error=str(exc),
            error_type=type(exc).__name__,
            seconds=time.perf_counter() - start,
            worker=os.getpid(),
            loaded_model=loaded_now,
        )
    with _LOCK:
        _SCORED[source.digest] += 1
    return PartOutcome(
        index,
        record,
        seconds=time.perf_counter() - start,
        worker=os.getpid(),
        loaded_model=loaded_now,
    )


def _loaded(source: ModelSource) -> tuple[LoadedModel, bool]:
    """The model of ``source``, loaded by the first task on this worker and kept."""
    key = (source.digest, source.unknown)
    with _LOCK:  # a worker with several threads still loads once
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key], False
        model = _load(source)
        _MODELS[key] = model
        _LOADS[source.digest] += 1
        while len(_MODELS) > _KEEP_MODELS:
            _MODELS.popitem(last=False)
        return model, True


def _load(source: ModelSource) -> LoadedModel:
    from conveyor.serving.model import load_version
    from conveyor.store.artifacts import open_artifact_store
    from conveyor.store.metadata import open_metadata_store

    artifacts = open_artifact_store(source.artifacts_uri, storage_options=source.storage_options)
    metadata = open_metadata_store(source.metadata_url)
    try:
        loaded = load_version(
            metadata,
            artifacts,
            source.ref,
            unknown=source.unknown,
            max_records=source.max_records,
        )
    finally:
        metadata.close()
    if loaded.record.digest != source.digest:
        raise ConfigError(
            f"{source.ref}: the metadata store the workers reach names artifact "
            f"{loaded.record.digest[:12]}, not {source.digest[:12]} as the client's does"
        )
    return loaded


def _write_part(
    frame: pd.DataFrame,
    model: LoadedModel,
    name: str,
    index: int,
    input_size: int,
    output: Output,
    chunk_rows: int,
) -> PartRecord:
    from conveyor.serving.batch import in_background, score_chunks

    fs, _, staging = output.locate()

    def record(rows: int, part: str | None, size: int, sha256: str | None) -> PartRecord:
        return PartRecord(index, name, input_size, model.record.digest, rows, part, size, sha256)

    if frame.empty:  # a header-only file: nothing to write, recorded as 0 rows
        done = record(0, None, 0, None)
    else:
        chunks = (frame.iloc[i : i + chunk_rows] for i in range(0, len(frame), chunk_rows))
        # Validate and predict the next chunk while this one is written, as the in-process
        # command does (pyarrow and numpy release the GIL).
        scored = in_background(out for _, out, _ in score_chunks(model, chunks, source=name))
        part = _PART.format(index)
        with _scratch(staging if output.is_local else None, part) as tmp:
            rows = _write_parquet(scored, tmp)
            digest, nbytes = _hash_file(tmp)
            _place(fs, tmp, f"{staging}/{part}", local=output.is_local)
        done = record(rows, part, nbytes, digest)
    _write_bytes(fs, f"{staging}/{_RECORD.format(index)}", done.to_json(), output.is_local)
    return done


@contextmanager
def _scratch(folder: str | None, part: str) -> Iterator[str]:
    """A temporary file name: in ``folder`` (renamed into place there), else in the system's
    temporary folder (uploaded from there); removed unless it was moved."""
    if folder is None:
        fd, path = tempfile.mkstemp(suffix=".parquet", prefix="conveyor-part-")
        os.close(fd)
    else:
        path = f"{folder}/.{part}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        yield path
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)


def _write_parquet(chunks: Iterator[pd.DataFrame], path: str) -> int:
    """Chunks into one Parquet file (zstd, a row group per chunk), as ``conveyor predict``
    writes them; returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    writer: Any = None
    try:
        for chunk in chunks:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            else:  # a chunk where a column is all null infers another type
                table = table.cast(writer.schema)
            writer.write_table(table)
            rows += len(chunk)
    except OSError as exc:
        raise ArtifactStorageError(f"{path}: cannot write: {exc}") from exc
    finally:
        if writer is not None:
            writer.close()
    return rows


def _hash_file(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _place(fs: Any, tmp: str, target: str, *, local: bool) -> None:
    """Move the finished file to ``target``: a rename on this machine, one upload elsewhere
    (either way a reader sees the whole file or none)."""
    try:
        if local:
            os.replace(tmp, target)
        else:
            fs.put_file(tmp, target)
    except Exception as exc:  # OSError, botocore and azure errors
        raise _storage_error(target, exc) from None


def _write_bytes(fs: Any, target: str, data: bytes, local: bool) -> None:
    try:
        if local:
            folder, name = posixpath.split(target)
            tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        else:
            fs.pipe_file(target, data)
    except Exception as exc:  # OSError, botocore and azure errors
        raise _storage_error(target, exc) from None


def _storage_error(target: str, exc: BaseException) -> ArtifactStorageError:
    from conveyor.store.artifacts._filesystems import first_line

    return ArtifactStorageError(f"{target}: cannot write: {first_line(exc)}")


# --- on the client: running the tasks -------------------------------------------------------------


def _run(
    client: Any,
    files: SourceFiles,
    todo: list[int],
    sizes: list[int],
    model: ModelSource,
    output: Output,
    chunk_rows: int,
    on_part: Callable[[PartOutcome, int, int], None] | None,
) -> list[PartOutcome]:
    """One task per partition in ``todo``, twice as many in flight as there are workers. At
    the first failure no more are sent; those in flight finish (their parts are kept for a
    re-run), then the failure is raised."""
    import distributed

    dist: Any = distributed  # no complete annotations
    window = 2 * max(1, sum(client.nthreads().values()))
    token = uuid.uuid4().hex[:8]
    pending = iter(todo)
    flying: dict[str, int] = {}
    finished = dist.as_completed()

    def submit() -> None:
        for index in pending:
            future = client.submit(
                _score_part,
                replace(files, files=[files.files[index]]),  # its own file only
                index,
                sizes[index],
                model,
                output,
                chunk_rows,
                key=f"conveyor-predict-{token}-{index:05d}",
                pure=False,
            )
            flying[future.key] = index
            finished.add(future)
            return

    for _ in range(window):
        submit()
    done: list[PartOutcome] = []
    failed: list[tuple[int, str, str]] = []  # (index, message, error type)
    crashed: BaseException | None = None
    for future in finished:
        index = flying.pop(future.key)
        try:
            outcome: PartOutcome = future.result()
        except Exception as exc:
            if not _cluster_failure(exc):
                crashed = crashed or exc
                failed.append((index, f"{type(exc).__name__}: {exc}", "ConveyorError"))
            else:
                message = f"{files.file_name(index)}: the dask task scoring it failed: {exc!r}"
                failed.append((index, message, "ConveyorError"))
        else:
            if outcome.record is None:
                failed.append((index, outcome.error or "failed", outcome.error_type or ""))
            else:
                done.append(outcome)
                if on_part is not None:
                    on_part(outcome, len(done), len(todo))
        future.release()
        if not failed:
            submit()
    if crashed is not None:
        raise crashed
    if failed:
        raise _failure(failed, len(files), len(files) - len(todo) + len(done), output)
    return done


def _cluster_failure(exc: BaseException) -> bool:
    """A worker died, the task was cancelled or the connection dropped (not a bug in a task)."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    return isinstance(exc, KilledWorker | CancelledError | OSError)


def _failure(
    failed: list[tuple[int, str, str]], total: int, kept: int, output: Output
) -> ConveyorError:
    """The first failed partition's error (its own type when it is a conveyor error), with
    what a re-run will reuse."""
    index, message, kind = min(failed)
    more = f"; {len(failed) - 1} more partitions failed" if len(failed) > 1 else ""
    keep = (
        f"; {kept}/{total} partitions scored are kept in {output.staging_uri} for a re-run"
        if kept
        else ""
    )
    text = f"{message} (partition {index + 1}/{total}{more}{keep})"
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, ConveyorError):
        with suppress(TypeError):  # a class whose constructor takes more than a message
            return cls(text)
    return ConveyorError(text)


# --- on the client: inputs, resuming, publishing --------------------------------------------------


def _input_sizes(files: SourceFiles) -> list[int]:
    """Each input file's size in bytes (part of what a kept part must match).

    Raises:
        DataValidationError: a file cannot be looked at; names it.
    """
    from conveyor.store.artifacts._filesystems import first_line, open_filesystem

    fs, _ = open_filesystem(files.root, files.storage)

    def size(index: int) -> int:
        try:
            return int(fs.size(files.files[index]))
        except Exception as exc:  # missing since listed, permissions, network
            raise DataValidationError(
                f"{files.file_name(index)}: cannot access: {first_line(exc)}"
            ) from None

    with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
        return list(pool.map(size, range(len(files))))


def _check_target(fs: Any, out: str, uri: str) -> None:
    """Refuse an output that exists and is not a previous output of this command.

    Raises:
        ArtifactStorageError: ``out`` is a file, or a folder holding other files.
    """
    if not fs.exists(out):
        return
    if fs.isfile(out):
        raise ArtifactStorageError(
            f"{uri}: cannot write: it is a file; with --executor dask the output is a folder"
        )
    foreign = sorted(n for n in _names(fs, out) if not _OURS.fullmatch(n))
    if foreign:
        raise ArtifactStorageError(
            f"{uri}: cannot write: the folder holds files conveyor predict did not write "
            f"({foreign[0]!r}); choose another --output or remove it"
        )


def _names(fs: Any, folder: str) -> list[str]:
    """The names of the entries of ``folder`` (none when it does not exist)."""
    try:
        entries = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    return [posixpath.basename(str(p).rstrip("/")) for p in entries]


def _resume(
    fs: Any, staging: str, files: SourceFiles, sizes: list[int], digest: str, *, local: bool
) -> dict[int, PartRecord]:
    """The parts already in the staging folder that this run can keep; everything else there
    (parts of other inputs or models, unfinished files) is removed."""
    names = _names(fs, staging)

    def keep(name: str) -> PartRecord | None:
        try:
            record = PartRecord.from_json(fs.cat_file(f"{staging}/{name}"))
        except FileNotFoundError:
            return None
        if record is None or not _matches(record, files, sizes, digest, names):
            return None
        if record.part and _sha256(fs, f"{staging}/{record.part}") != record.sha256:
            return None
        return record

    records = [n for n in names if re.fullmatch(r"_record-\d{5}\.json", n)]
    with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
        kept = {r.index: r for r in pool.map(keep, records) if r is not None}
    keep_names = {_RECORD.format(i) for i in kept} | {r.part for r in kept.values() if r.part}
    stale = [f"{staging}/{n}" for n in names if n not in keep_names]
    if stale:
        fs.rm(stale, recursive=True)
    if local:
        fs.makedirs(staging, exist_ok=True)
    return kept


def _matches(
    record: PartRecord, files: SourceFiles, sizes: list[int], digest: str, names: list[str]
) -> bool:
    i = record.index
    return (
        0 <= i < len(files)
        and record.input == files.file_name(i)
        and record.input_size == sizes[i]
        and record.model_digest == digest
        and (record.part is None or record.part in names)
    )


def _sha256(fs: Any, path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with fs.open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _manifest(files: SourceFiles, model: ModelSource, records: tuple[PartRecord, ...]) -> bytes:
    """``_SUCCESS``: the model, each input file with its size, each part's rows and hash."""
    from datetime import UTC, datetime

    from conveyor._version import __version__

    body = {
        "format": FORMAT,
        "conveyor": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"name": model.name, "version": model.version, "digest": model.digest},
        "input": {"source": files.name, "type": files.kind},
        "rows": sum(r.rows for r in records),
        "partitions": [
            {
                "index": r.index,
                "input": {"path": r.input, "size": r.input_size},
                "part": r.part,
                "rows": r.rows,
                "bytes": r.size,
                "sha256": r.sha256,
            }
            for r in records
        ],
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def _publish(
    fs: Any,
    out: str,
    staging: str,
    records: tuple[PartRecord, ...],
    manifest: bytes,
    output: Output,
) -> None:
    """Make the staged parts the output, the manifest last.

    Raises:
        ArtifactStorageError: a part is missing (a remote cluster wrote it to a disk this
            machine does not see) or the storage failed.
    """
    present = set(_names(fs, staging))
    missing = [r.part for r in records if r.part and r.part not in present]
    if missing:
        raise ArtifactStorageError(
            f"{output.staging_uri}/{missing[0]}: written by a worker but not found here; with a "
            "remote cluster the output must be on storage both reach (s3://, gs://, az:// or a "
            "shared folder)"
        )
    _check_target(fs, out, output.uri)  # nothing else appeared there meanwhile
    try:
        if output.is_local:
            _publish_local(fs, out, staging, manifest)
        else:
            _publish_remote(fs, out, staging, records, manifest)
    except ConveyorError:
        raise
    except Exception as exc:  # OSError, botocore and azure errors
        raise _storage_error(output.uri, exc) from None


def _publish_local(fs: Any, out: str, staging: str, manifest: bytes) -> None:
    """Rename the staging folder to ``out`` (a previous output is swapped out, then removed)."""
    import shutil

    _write_bytes(fs, f"{staging}/{MANIFEST}", manifest, True)
    if os.path.exists(out):
        old = f"{posixpath.dirname(out)}/.{posixpath.basename(out)}.conveyor-old-{os.getpid()}"
        os.rename(out, old)
        try:
            os.rename(staging, out)
        except OSError:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)
    for name in _names(fs, out):
        if name.startswith("_record-") or name.endswith(".tmp"):
            os.unlink(f"{out}/{name}")


def _publish_remote(
    fs: Any, out: str, staging: str, records: tuple[PartRecord, ...], manifest: bytes
) -> None:
    """Copy the parts under ``out`` and write ``_SUCCESS`` last; a previous output loses its
    ``_SUCCESS`` first, so it is never taken for complete while being replaced."""
    old = _names(fs, out)
    if MANIFEST in old:
        fs.rm_file(f"{out}/{MANIFEST}")
    parts = [r.part for r in records if r.part]
    stale = [f"{out}/{n}" for n in old if n != MANIFEST and n not in parts]
    if stale:
        fs.rm(stale)
    if parts:
        fs.copy([f"{staging}/{p}" for p in parts], [f"{out}/{p}" for p in parts])
    fs.pipe_file(f"{out}/{MANIFEST}", manifest)
    fs.rm(staging, recursive=True)


def _drop_if_empty(fs: Any, staging: str, *, force: bool = False) -> None:
    """Remove a staging folder that holds nothing to resume from (or anything, with force)."""
    with suppress(Exception):  # tidying up after a failure must not hide the failure
        names = _names(fs, staging)
        if force or not any(n.startswith("_record-") for n in names):
            fs.rm(staging, recursive=True)


# --- from a project -------------------------------------------------------------------------------


def input_files(proj: Project, path: str) -> SourceFiles:
    """The partitions of ``path`` (a csv/parquet file, a folder or a glob; relative paths are
    relative to the project), its type from the name's extension, else from the files found.

    Raises:
        DataValidationError: nothing to read, or a folder holding both csv and parquet files.
    """
    from pathlib import PurePosixPath

    from conveyor.config import SourceConfig
    from conveyor.data.partitions import list_files
    from conveyor.serving.batch import format_of

    options = {"storage_options": proj.config.store.storage_options} if "://" in path else {}
    kinds: list[str] = ["parquet", "csv"]
    if PurePosixPath(path.split("?")[0].rstrip("/")).suffix:
        with suppress(DataValidationError):  # "data/2024.06" is a folder, not a format
            kinds = [format_of(path)]
    found: list[SourceFiles] = []
    problem: DataValidationError | None = None
    for kind in kinds:
        try:
            found.append(list_files(SourceConfig(type=kind, path=path, options=options), proj.root))
        except DataValidationError as exc:
            problem = problem or exc
    if len(found) > 1:
        raise DataValidationError(
            f"{found[0].name}: holds both csv and parquet files; name one kind with a glob "
            f"(e.g. {path.rstrip('/')}/*.parquet)"
        )
    if not found:
        assert problem is not None
        raise problem
    return found[0]


def output_for(proj: Project, path: str) -> Output:
    """The output folder: a local path made absolute (from the current folder, as for a file
    output), or an object-store URI opened with ``store.storage_options``."""
    from pathlib import Path

    from conveyor import _secrets

    if "://" not in path:
        return Output(str(Path(path).expanduser().resolve()))
    options = _secrets.expand_tree(
        proj.config.store.storage_options, "store.storage_options", proj.root
    )
    return Output(path.rstrip("/"), options)
