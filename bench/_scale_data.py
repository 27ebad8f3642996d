"""A visa-shaped Parquet dataset of any size, written partition by partition and kept in a cache.

Each partition is one call of the visa example's seeded generator
(:func:`conveyor.examples.visa.generate.generate`) with its own seed, derived from the dataset
seed and the partition's index, so the whole dataset is reproducible and only one partition is
in memory at a time. ``case_id`` is renumbered from the partition's first row, so it stays
unique across partitions (``EZYV01`` ... as in the example, which the schema's primary key and
regex check). The folder holds ``part-00000.parquet`` ... and a ``_manifest.json`` written last;
a folder whose manifest matches the parameters (and whose files are all there, with their
sizes) is reused as it is.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST = "_manifest.json"  # "_": readers of the folder (pyarrow, conveyor) skip it
LAYOUT = 1  # bump when the way partitions are derived changes: old caches are then rebuilt


@dataclass(frozen=True)
class Spec:
    """What a dataset folder holds: its parameters are its identity."""

    rows: int
    seed: int
    partition_rows: int
    drift: bool = False
    dirt: bool = True

    def folder(self, root: Path) -> Path:
        """``root/scale-<rows>-<seed>[-drift][-clean]``: one folder per (rows, seed, kind)."""
        kind = ("-drift" if self.drift else "") + ("" if self.dirt else "-clean")
        return root / f"scale-{self.rows}-{self.seed}{kind}"


@dataclass
class Dataset:
    """A dataset folder on disk and how it came to be there."""

    path: Path
    spec: Spec
    files: list[dict[str, Any]]  # name, rows, bytes, in row order
    seconds: float  # time to generate it now (0 when reused)
    reused: bool

    @property
    def rows(self) -> int:
        return sum(int(f["rows"]) for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files)


def _generator_digest() -> str:
    """Digest of the example generator's source: a changed generator invalidates the caches."""
    from conveyor.examples.visa import generate as module

    text = inspect.getsource(module) + f"\nlayout={LAYOUT}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def partition_seed(seed: int, index: int, *, drift: bool) -> int:
    """A seed per partition, from the dataset seed and the partition's index."""
    import numpy as np

    state = np.random.SeedSequence([seed, index, int(drift)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def case_ids(start: int, stop: int) -> Any:
    """``EZYV<n>`` for rows ``start`` .. ``stop - 1`` (0-based), numbered from 1 with at least two
    digits, like the example's own ids."""
    import numpy as np

    numbers = np.char.zfill(np.arange(start + 1, stop + 1).astype(np.str_), 2)
    return np.char.add("EZYV", numbers)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data


def _matches(folder: Path, spec: Spec, manifest: dict[str, Any] | None) -> bool:
    if manifest is None or manifest.get("spec") != asdict(spec):
        return False
    if manifest.get("generator") != _generator_digest():
        return False
    for f in manifest.get("files", []):
        path = folder / f["name"]
        if not path.is_file() or path.stat().st_size != f["bytes"]:
            return False
    return bool(manifest.get("files"))


def ensure(root: Path, spec: Spec, *, log: Any = print) -> Dataset:
    """The dataset of ``spec`` under ``root``: reused when its manifest matches, else generated.

    Generation writes into a temporary sibling folder and renames it into place at the end, so
    an interrupted run never leaves a folder that looks complete.
    """
    folder = spec.folder(root)
    manifest = _read_manifest(folder)
    if _matches(folder, spec, manifest):
        assert manifest is not None
        return Dataset(folder, spec, manifest["files"], 0.0, reused=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conveyor.examples.visa.generate import generate

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files: list[dict[str, Any]] = []
    start = time.perf_counter()
    count = -(-spec.rows // spec.partition_rows)
    try:
        for index in range(count):
            first = index * spec.partition_rows
            n = min(spec.partition_rows, spec.rows - first)
            seed = partition_seed(spec.seed, index, drift=spec.drift)
            frame = generate(n, seed=seed, drift=spec.drift, dirt=spec.dirt)
            frame["case_id"] = case_ids(first, first + n)
            name = f"part-{index:05d}.parquet"
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp / name)
            files.append({"name": name, "rows": n, "bytes": (tmp / name).stat().st_size})
            if (index + 1) % 10 == 0 or index + 1 == count:
                log(f"  {folder.name}: {index + 1}/{count} partitions")
        seconds = time.perf_counter() - start
        info = {
            "spec": asdict(spec),
            "generator": _generator_digest(),
            "files": files,
            "seconds": round(seconds, 2),
        }
        (tmp / MANIFEST).write_text(json.dumps(info, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Dataset(folder, spec, files, seconds, reused=False)


@dataclass
class Slice:
    """The first whole partitions of a dataset: as a folder (hard links) and as one file."""

    folder: Path
    file: Path
    rows: int


def ensure_slice(dataset: Dataset, rows: int) -> Slice:
    """The leading partitions of ``dataset`` holding at most ``rows`` rows (at least one
    partition), as ``<dataset>-slice<rows>/`` (links to the same files, for the partitioned
    path) and ``<dataset>-slice<rows>.parquet`` (one file, for the in-memory path). Both are
    rebuilt when the dataset was."""
    import pyarrow.parquet as pq

    chosen: list[dict[str, Any]] = []
    total = 0
    for f in dataset.files:
        if chosen and total + int(f["rows"]) > rows:
            break
        chosen.append(f)
        total += int(f["rows"])
    base = dataset.path.parent / f"{dataset.path.name}-slice{total}"
    folder, single = base, base.with_suffix(".parquet")
    stamp = json.dumps({"files": chosen, "generator": _generator_digest()}, sort_keys=True)
    marker = folder / ".stamp"
    if folder.is_dir() and single.is_file() and marker.is_file() and marker.read_text() == stamp:
        return Slice(folder, single, total)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in chosen:
        src, dst = dataset.path / f["name"], folder / f["name"]
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    tmp = single.with_suffix(".tmp")
    writer = None
    try:
        for f in chosen:
            table = pq.read_table(dataset.path / f["name"])
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(single)
    marker.write_text(stamp)
    return Slice(folder, single, total)


def parquet_rows(path: Path) -> int:
    """Rows of a Parquet file or of every ``*.parquet`` under a folder (from the footers)."""
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
