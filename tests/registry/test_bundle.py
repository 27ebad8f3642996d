"""Model bundles: export writes a verifiable folder and archive; loading refuses anything that
does not match the manifest, and archives that reach outside the bundle."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conveyor.contracts import REFERENCE_PROFILE_TAG, ModelSignature
from conveyor.errors import ModelNotFoundError
from conveyor.examples.visa.generate import generate
from conveyor.project import Project
from conveyor.registry.bundle import (
    LINEAGE_FILE,
    MANIFEST,
    MODEL_FILE,
    PROFILE_FILE,
    SIGNATURE_FILE,
    BundleError,
    archive_path,
    export_model,
    open_bundle,
)

MODEL = "visa-approval"
FILES = {MANIFEST, MODEL_FILE, SIGNATURE_FILE, PROFILE_FILE, LINEAGE_FILE}


@pytest.fixture(scope="module")
def project(trained_visa: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(trained_visa, tmp_path_factory.mktemp("bundle") / "visa"))


@pytest.fixture(scope="module")
def exported(project: Path) -> Path:
    out = project.parent / "bundle"
    with Project.load(project) as proj:
        export_model(proj.metadata, proj.artifacts, f"{MODEL}@production", out)
    return out


def _copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


def test_export_writes_every_file_with_its_digest_and_the_archive(
    project: Path, exported: Path
) -> None:
    assert {p.name for p in exported.iterdir()} == FILES
    manifest = json.loads((exported / MANIFEST).read_text())
    assert set(manifest["files"]) == FILES - {MANIFEST}
    for name, entry in manifest["files"].items():
        data = (exported / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    with Project.load(project) as proj:
        record = proj.metadata.get_model_version(MODEL, 1)
        stored = proj.artifacts.get_bytes(record.digest)
    assert (exported / MODEL_FILE).read_bytes() == stored  # the artifact's exact bytes
    model = manifest["model"]
    assert (model["name"], model["version"], model["status"]) == (MODEL, 1, "approved")
    assert model["run_id"] == record.run_id and model["dataset"] == record.dataset
    assert model["config_hash"] == record.config_hash and model["tags"] == record.tags
    assert manifest["format_version"] == 1 and manifest["conveyor_version"]
    assert REFERENCE_PROFILE_TAG in record.tags
    lineage = json.loads((exported / LINEAGE_FILE).read_text())
    assert lineage["run"]["id"] == record.run_id
    assert lineage["dataset"]["fingerprint"] == record.dataset
    with tarfile.open(archive_path(exported)) as tar:
        assert {m.name for m in tar.getmembers()} == FILES
        assert all(m.isfile() for m in tar.getmembers())


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_a_bundle_loads_verified_and_predicts_like_the_registry(
    project: Path, exported: Path, form: str
) -> None:
    path = exported if form == "folder" else archive_path(exported)
    bundle = open_bundle(path)
    assert bundle.ref == f"{MODEL}:1"
    with Project.load(project) as proj:
        record = proj.metadata.get_model_version(MODEL, 1)
        registered = proj.artifacts.get(record.digest, proj.metadata.artifact_kind(record.digest))
    assert bundle.signature == ModelSignature.stored(record.signature)
    assert bundle.reference_profile is not None
    rows = generate(n_rows=200, seed=5, dirt=False).drop(columns=["case_status"])
    assert list(bundle.load_model().predict(rows)) == list(registered.predict(rows))
    assert bundle.record().digest == record.digest


@pytest.mark.parametrize("name", [MODEL_FILE, SIGNATURE_FILE, LINEAGE_FILE, PROFILE_FILE])
def test_a_flipped_byte_is_refused_naming_the_file(
    exported: Path, tmp_path: Path, name: str
) -> None:
    copy = _copy(exported, tmp_path)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{name} does not match the manifest"):
        open_bundle(copy)


def test_a_model_changed_after_opening_is_not_unpickled(exported: Path, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    bundle = open_bundle(copy)
    (copy / MODEL_FILE).write_bytes(b"\x80\x04not the model")
    with pytest.raises(BundleError, match=MODEL_FILE):
        bundle.load_model()


def test_a_missing_file_and_a_missing_manifest_are_named(exported: Path, tmp_path: Path) -> None:
    copy = _copy(exported, tmp_path)
    (copy / PROFILE_FILE).unlink()
    with pytest.raises(BundleError, match=rf"{PROFILE_FILE} is listed in the manifest but missing"):
        open_bundle(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(BundleError, match="no model bundle"):
        open_bundle(copy)


def test_a_flipped_byte_inside_the_archive_is_refused(exported: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    _tar(archive, {n: (exported / n).read_bytes() for n in FILES} | {MODEL_FILE: b"tampered"})
    with pytest.raises(BundleError, match=MODEL_FILE):
        open_bundle(archive)


@pytest.mark.parametrize(
    "member", ["../x", "/etc/passwd", "a/../../x", "sub/model.joblib", "..\\x"]
)
def test_archive_members_outside_the_root_are_refused(
    exported: Path, tmp_path: Path, member: str
) -> None:
    archive = tmp_path / "evil.tar.gz"
    _tar(archive, {n: (exported / n).read_bytes() for n in FILES} | {member: b"x"})
    with pytest.raises(BundleError, match="refusing member"):
        open_bundle(archive, workdir=tmp_path / "out")
    assert not (tmp_path / "x").exists()


def test_links_in_an_archive_are_refused(exported: Path, tmp_path: Path) -> None:
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in FILES - {MODEL_FILE}:
            data = (exported / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(MODEL_FILE)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(BundleError, match="a link"):
        open_bundle(archive, workdir=tmp_path / "out")


def test_a_bundle_one_folder_down_is_found(exported: Path, tmp_path: Path) -> None:
    shutil.copytree(exported, tmp_path / "models" / "visa")  # how Azure ML mounts a folder
    assert open_bundle(tmp_path / "models").ref == f"{MODEL}:1"


def test_export_refuses_to_overwrite_without_force(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    with Project.load(project) as proj:
        export_model(proj.metadata, proj.artifacts, f"{MODEL}:1", out)
        (out / "marker").write_text("mine")
        with pytest.raises(BundleError, match="--force"):
            export_model(proj.metadata, proj.artifacts, f"{MODEL}:1", out)
        assert (out / "marker").exists()
        export_model(proj.metadata, proj.artifacts, f"{MODEL}:1", out, force=True)
    assert not (out / "marker").exists()
    assert open_bundle(out).ref == f"{MODEL}:1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_export_leaves_nothing(project: Path, tmp_path: Path) -> None:
    with Project.load(project) as proj, pytest.raises(ModelNotFoundError):
        export_model(proj.metadata, proj.artifacts, "nope@production", tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def _tar(archive: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_a_bundle_at_a_uri_is_copied_then_verified(exported: Path, form: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    base = f"/bundles/{form}"
    if form == "folder":
        for name in FILES:
            fs.pipe_file(f"{base}/visa/{name}", (exported / name).read_bytes())
        uri = f"memory://{base}/visa"  # as $AIP_STORAGE_URI names the folder
    else:
        fs.pipe_file(f"{base}/visa.tar.gz", archive_path(exported).read_bytes())
        uri = f"memory://{base}"
    assert open_bundle(uri).ref == f"{MODEL}:1"
    fs.pipe_file(f"{base}/visa/{MODEL_FILE}", b"tampered")
    if form == "folder":
        with pytest.raises(BundleError, match=MODEL_FILE):
            open_bundle(uri)
