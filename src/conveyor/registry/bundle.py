"""Model bundles: one registered version as a self-contained folder (and ``.tar.gz``) that a
server can load with no metadata store, every file verified against its manifest.

A bundle holds ``manifest.json`` (format version, the version's record, and a SHA-256 and size
per file), ``model.joblib`` (the model artifact's exact bytes), ``signature.json``,
``reference_profile.json`` (when the version has one) and ``lineage.json``. The ``.tar.gz`` has
the same files at its root: SageMaker unpacks it into ``/opt/ml/model``.

Bundles are data: loading one verifies every listed file's hash before anything is decoded, and
extracting an archive refuses absolute names, ``..``, links and anything but regular files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor._version import __version__
from conveyor.contracts import REFERENCE_PROFILE_TAG, ModelSignature
from conveyor.errors import ConfigError, RegistryError
from conveyor.registry import versions
from conveyor.registry.lineage import model_lineage

if TYPE_CHECKING:
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import MetadataStore, ModelVersionRecord

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
SIGNATURE_FILE = "signature.json"
PROFILE_FILE = "reference_profile.json"
LINEAGE_FILE = "lineage.json"
ARCHIVE_SUFFIX = ".tar.gz"
_MAX_ARCHIVE_MEMBERS = 64  # a bundle has five files; anything much bigger is not one
_MAX_MANIFEST_BYTES = 1 << 20


class BundleError(RegistryError, ValueError):
    """A bundle cannot be written or loaded: missing, tampered with, or not a bundle."""


class BundleFile(BaseModel):
    """One file of a bundle: its SHA-256 and size in bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class BundleModel(BaseModel):
    """The model version a bundle holds: what ``/v1/model`` shows and deployers audit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: int = Field(ge=1)
    status: str
    digest: str
    kind: str  # the serializer that reads model.joblib (joblib for every built-in model)
    run_id: str | None = None
    dataset: str | None = None
    git_commit: str | None = None
    config_hash: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: float = 0.0


class BundleManifest(BaseModel):
    """``manifest.json``: the format version, the model version, and every file's digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int
    conveyor_version: str
    exported_at: float
    model: BundleModel
    files: dict[str, BundleFile]

    def to_bytes(self) -> bytes:
        """Pretty, sorted JSON (people read manifests)."""
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified bundle on local disk (every file listed in the manifest matched its hash)."""

    root: Path
    manifest: BundleManifest
    signature: ModelSignature
    lineage: dict[str, Any]
    reference_profile: dict[str, Any] | None

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.manifest.model.name}:{self.manifest.model.version}"

    def load_model(self) -> Any:
        """The model object, decoded from bytes re-verified against the manifest right now.

        Raises:
            BundleError: ``model.joblib`` changed since the bundle was opened.
        """
        from conveyor.store.artifacts.serializers import deserialize

        data = _verified(self.root, MODEL_FILE, self.manifest.files[MODEL_FILE])
        return deserialize(self.manifest.model.kind, data)

    def record(self) -> ModelVersionRecord:
        """The version as the registry would return it (what serving shows on ``/v1/model``)."""
        from conveyor.store.metadata import ModelVersionRecord

        m = self.manifest.model
        return ModelVersionRecord(
            name=m.name,
            version=m.version,
            digest=m.digest,
            run_id=m.run_id,
            dataset=m.dataset,
            status=m.status,
            metrics=dict(m.metrics),
            signature=self.signature.to_json(),
            tags=dict(m.tags),
            git_commit=m.git_commit,
            config_hash=m.config_hash,
            reason=None,
            created_at=m.created_at,
        )


def export_model(
    metadata: MetadataStore,
    artifacts: AbstractArtifactStore,
    ref: str,
    out: Path,
    *,
    force: bool = False,
) -> BundleManifest:
    """Write the bundle of ``ref`` to the folder ``out`` and to ``out.tar.gz`` next to it.

    Both are written under temporary names and renamed into place, so a failure leaves no
    half bundle.

    Raises:
        ModelNotFoundError: no such model, version or alias.
        ArtifactCorruptedError: the stored model bytes do not match their registered hash.
        ConfigError: the version has no signature (it could not be served).
        BundleError: ``out`` (or its archive) exists and ``force`` is not set.
    """
    import time

    out = Path(out)
    archive = archive_path(out)
    if not force:
        for target in (out, archive):
            if target.exists():
                raise BundleError(f"{target} exists; pass --force to overwrite it")
    record = versions.resolve(metadata, ref)
    signature = versions.signature_of(record)
    if signature is None:
        raise ConfigError(
            f"{record.name}:{record.version} has no input signature; only versions registered "
            "by the train line can be exported"
        )
    files = {
        MODEL_FILE: artifacts.get_bytes(record.digest),  # hash-verified by the store
        SIGNATURE_FILE: _json_bytes(signature.to_json()),
        LINEAGE_FILE: _json_bytes(_lineage_summary(metadata, artifacts, ref)),
    }
    profile = record.tags.get(REFERENCE_PROFILE_TAG)
    if profile:
        files[PROFILE_FILE] = _json_bytes(artifacts.get(profile, metadata.artifact_kind(profile)))
    manifest = BundleManifest(
        format_version=FORMAT_VERSION,
        conveyor_version=__version__,
        exported_at=time.time(),
        model=_model_of(record, kind=metadata.artifact_kind(record.digest)),
        files={
            name: BundleFile(sha256=_sha256(data), size=len(data)) for name, data in files.items()
        },
    )
    files[MANIFEST] = manifest.to_bytes()
    _write_folder(out, files, force=force)
    _write_archive(archive, files, force=force)
    return manifest


def archive_path(out: Path) -> Path:
    """``OUT.tar.gz`` next to the folder ``OUT``."""
    return out.with_name(out.name + ARCHIVE_SUFFIX)


def open_bundle(path: str | Path, *, workdir: Path | None = None) -> Bundle:
    """Open and verify a bundle: a folder, a ``.tar.gz``, a folder holding exactly one of those
    (``$AZUREML_MODEL_DIR`` puts the registered folder one level down), or any fsspec URI of
    a folder (``gs://...``, Vertex AI's ``$AIP_STORAGE_URI``), copied locally first.

    Args:
        path: where the bundle is.
        workdir: where to unpack an archive or copy a remote bundle (default: a new temporary
            folder, left for the life of the process: the server reads the model from it).

    Raises:
        BundleError: no bundle there, an unsafe archive member, a file missing or whose bytes
            do not match the manifest (the message names the file), or an unreadable manifest.
    """
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        root = _fetch_remote(text, _workdir(workdir))
    else:
        root = locate(Path(text.removeprefix("file://")))
        if root.is_file():
            root = extract_archive(root, _workdir(workdir))
    manifest = read_manifest(root)
    for name, entry in sorted(manifest.files.items()):
        _verified(root, name, entry)
    return Bundle(
        root=root,
        manifest=manifest,
        signature=_read_signature(root, manifest),
        lineage=_read_json(root, LINEAGE_FILE, manifest) or {},
        reference_profile=_read_json(root, PROFILE_FILE, manifest),
    )


def locate(path: Path) -> Path:
    """The bundle folder or archive at or just under ``path``.

    Raises:
        BundleError: nothing that looks like a bundle is there.
    """
    if path.is_file() or (path / MANIFEST).is_file():
        return path
    if not path.is_dir():
        raise BundleError(f"no model bundle at {path}: it does not exist")
    inner = [p for p in path.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
    inner += [p for p in path.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIX)]
    if len(inner) == 1:
        return inner[0]
    found = "several bundles" if inner else f"no {MANIFEST} and no *{ARCHIVE_SUFFIX}"
    raise BundleError(
        f"no model bundle at {path}: {found} there (export one with "
        "`conveyor export model REF OUT`)"
    )


def extract_archive(archive: Path, target: Path) -> Path:
    """Unpack a bundle archive into ``target`` (regular files at its root only).

    Raises:
        BundleError: not a gzip'd tar, or a member that is a link, a device, a folder path,
            an absolute name or one with ``..``.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            if len(members) > _MAX_ARCHIVE_MEMBERS:
                raise BundleError(f"{archive}: {len(members)} members; not a model bundle")
            for member in members:
                name = _safe_member(archive, member)
                if name is None:
                    continue
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has content
                with source, (target / name).open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{archive} is not a readable .tar.gz bundle: {exc}") from exc
    return target


def read_manifest(root: Path) -> BundleManifest:
    """The manifest of the bundle folder ``root``.

    Raises:
        BundleError: missing, unreadable, of a newer format, or not listing model.joblib.
    """
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root} is not a model bundle: {MANIFEST} is missing")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is larger than {_MAX_MANIFEST_BYTES} bytes: not a manifest")
    try:
        manifest = BundleManifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BundleError(f"{path} is not a bundle manifest: {_first_problem(exc)}") from None
    if manifest.format_version > FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format {manifest.format_version} is newer than this conveyor "
            f"reads ({FORMAT_VERSION}); upgrade conveyor"
        )
    for name in (MODEL_FILE, SIGNATURE_FILE):
        if name not in manifest.files:
            raise BundleError(f"{path} does not list {name}")
    for name in manifest.files:
        if name == MANIFEST or PurePosixPath(name).name != name or name.startswith("."):
            raise BundleError(f"{path} lists {name!r}: bundle files are plain names")
    return manifest


def _verified(root: Path, name: str, entry: BundleFile) -> bytes:
    """The bytes of ``root/name`` after checking size and SHA-256 against the manifest."""
    path = root / name
    if not path.is_file() or path.is_symlink():
        raise BundleError(f"bundle {root}: {name} is listed in the manifest but missing")
    data = path.read_bytes()
    actual = _sha256(data)
    if len(data) != entry.size or actual != entry.sha256:
        raise BundleError(
            f"bundle {root}: {name} does not match the manifest (sha256 {actual}, "
            f"{len(data)} bytes; expected {entry.sha256}, {entry.size} bytes): refusing to "
            "load it"
        )
    return data


def _read_signature(root: Path, manifest: BundleManifest) -> ModelSignature:
    data = _read_json(root, SIGNATURE_FILE, manifest)
    try:
        return ModelSignature.stored(data)
    except ValidationError as exc:
        raise BundleError(
            f"bundle {root}: {SIGNATURE_FILE} is not a model signature: {_first_problem(exc)}"
        ) from None


def _read_json(root: Path, name: str, manifest: BundleManifest) -> Any:
    entry = manifest.files.get(name)
    if entry is None:
        return None
    try:
        return json.loads(_verified(root, name, entry))
    except ValueError as exc:
        raise BundleError(f"bundle {root}: {name} is not JSON: {exc}") from None


def _safe_member(archive: Path, member: tarfile.TarInfo) -> str | None:
    """The member's file name when it is a regular file at the archive's root (None: the root
    folder entry ``.``, which tar tools write); refuses everything else."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or "\\" in name or ":" in name:
        raise BundleError(f"{archive}: refusing member {name!r} (absolute or outside the bundle)")
    if member.isdir() and parts in ((), (".",)):
        return None
    if not member.isfile():
        raise BundleError(f"{archive}: refusing member {name!r} (a link, folder or device)")
    clean = [p for p in parts if p != "."]
    if len(clean) != 1:
        raise BundleError(f"{archive}: refusing member {name!r} (bundle files sit at the root)")
    return clean[0]


def _fetch_remote(uri: str, target: Path) -> Path:
    """Copy the bundle folder (or archive) at ``uri`` into ``target``: the manifest first, then
    only the files it lists."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(uri)
    try:
        if base.endswith(ARCHIVE_SUFFIX):
            fs.get(base, str(target / "bundle.tar.gz"))
            return extract_archive(target / "bundle.tar.gz", target / "bundle")
        base = base.rstrip("/")
        if not fs.exists(f"{base}/{MANIFEST}"):
            archives = [p for p in fs.ls(base, detail=False) if str(p).endswith(ARCHIVE_SUFFIX)]
            if len(archives) != 1:
                raise BundleError(f"no model bundle at {uri}: no {MANIFEST} there")
            return _fetch_remote(f"{uri.split('://')[0]}://{archives[0]}", target)
        target.mkdir(parents=True, exist_ok=True)
        fs.get(f"{base}/{MANIFEST}", str(target / MANIFEST))
        for name in read_manifest(target).files:
            fs.get(f"{base}/{name}", str(target / name))
    except OSError as exc:
        raise BundleError(f"cannot copy the bundle at {uri}: {exc}") from exc
    return target


def _workdir(given: Path | None) -> Path:
    return given if given is not None else Path(tempfile.mkdtemp(prefix="conveyor-bundle-"))


def _write_folder(out: Path, files: dict[str, bytes], *, force: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if force and out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_archive(archive: Path, files: dict[str, bytes], *, force: bool) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{archive.name}.", dir=archive.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for member, data in sorted(files.items()):
                info = tarfile.TarInfo(member)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        if archive.exists() and not force:
            raise BundleError(f"{archive} exists; pass --force to overwrite it")
        tmp.replace(archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _lineage_summary(
    metadata: MetadataStore, artifacts: AbstractArtifactStore, ref: str
) -> dict[str, Any]:
    """What a deployer needs of the lineage: where the data, run and decision came from."""
    full = model_lineage(metadata, artifacts, ref).to_json()
    model, dataset, run = full["model"], full["dataset"], full["run"]
    return {
        "model": {k: model.get(k) for k in ("name", "version", "status", "digest", "reason")},
        "dataset": None
        if dataset is None
        else {k: dataset.get(k) for k in ("fingerprint", "source", "n_rows", "n_columns")},
        "run": None
        if run is None
        else {k: run.get(k) for k in ("id", "pipeline", "started_at", "git_commit", "config_hash")},
        "candidates": full["candidates"],
        "gates": full["gates"],
        "decision": full["decision"],
        "aliases": full["aliases"],
    }


def _model_of(record: ModelVersionRecord, *, kind: str) -> BundleModel:
    return BundleModel(
        name=record.name,
        version=record.version,
        status=str(record.status),
        digest=record.digest,
        kind=kind,
        run_id=record.run_id,
        dataset=record.dataset,
        git_commit=record.git_commit,
        config_hash=record.config_hash,
        metrics=dict(record.metrics),
        tags=dict(record.tags),
        created_at=record.created_at,
    )


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])
