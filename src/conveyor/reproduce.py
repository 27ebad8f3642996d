"""``conveyor reproduce NAME:VER``: re-run the recorded line from the recorded dataset version and
config in a scratch project, and say whether the model and its metrics come out the same."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor._secrets import MASK
from conveyor.config import ProjectConfig
from conveyor.errors import ArtifactError, RegistryError
from conveyor.project import Project, git_commit

if TYPE_CHECKING:
    from conveyor.runner import RunHooks

RECORDED_DATA = "data/recorded.parquet"
SCRATCH_SCHEMA = "schema.yaml"


@dataclass
class Reproduction:
    """How a reproduction went."""

    model: str
    scratch: str
    run_id: str
    original_digest: str
    reproduced_digest: str | None
    original_metrics: dict[str, float]
    reproduced_metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def digest_match(self) -> bool:
        """Bit-identical model artifact."""
        return self.original_digest == self.reproduced_digest

    @property
    def metrics_match(self) -> bool:
        """Every recorded test metric came out exactly the same."""
        return self.original_metrics == self.reproduced_metrics

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            **self.__dict__,
            "digest_match": self.digest_match,
            "metrics_match": self.metrics_match,
        }


def reproduce(
    project: Project, ref: str, *, scratch: Path | None = None, hooks: RunHooks | None = None
) -> Reproduction:
    """Rebuild ``ref`` in ``scratch`` (a new temporary folder by default) and compare.

    Raises:
        RegistryError: the version lacks the run, dataset or data artifact needed.
    """
    from conveyor.registry.versions import resolve

    record = resolve(project.metadata, ref)
    if record.run_id is None or record.dataset is None:
        raise RegistryError(f"{record.name}:{record.version} has no recorded run or dataset")
    run = project.metadata.get_run(record.run_id)
    dataset = next(
        (d for d in project.metadata.list_datasets() if d.fingerprint == record.dataset), None
    )
    if dataset is None or dataset.digest is None or not project.artifacts.exists(dataset.digest):
        raise RegistryError(
            f"{record.name}:{record.version}: the bytes of dataset {record.dataset[:12]} are not "
            "in the artifact store any more; it cannot be reproduced"
        )
    raw = project.artifacts.get(dataset.digest, project.metadata.artifact_kind(dataset.digest))
    recorded = ProjectConfig.model_validate(_unflatten(run.params))
    notes: list[str] = []
    if any(isinstance(v, str) and MASK in v for v in run.params.values()):
        notes.append(
            "secrets were masked when the run was recorded; its config hash is not checked"
        )
    elif Project(project.root, recorded).config_hash() != run.config_hash:
        notes.append("the recorded parameters do not hash to the run's config hash")
    stored = _stored_artifact_problem(project, record.digest)
    if stored is not None:
        notes.append(stored)
    now = git_commit(project.root)
    if run.git_commit and now != run.git_commit:
        notes.append(f"code is at {now or 'no git commit'}, the run used {run.git_commit}")
    made = scratch is None
    folder = Path(scratch or tempfile.mkdtemp(prefix="conveyor-reproduce-"))
    try:
        config = _scratch_config(project, recorded, raw, folder)
        with Project(folder, config) as scratch_project:
            result = scratch_project.run("train", executor="local", use_cache=False, hooks=hooks)
            outputs = result.outputs
            digest = outputs["model"].digest if "model" in outputs else None
            metrics = {
                k.removeprefix("test."): v
                for k, v in scratch_project.metadata.get_run(result.run_id).metrics.items()
                if k.startswith("test.")
            }
            data_versions = [d.fingerprint for d in scratch_project.metadata.list_datasets()]
    except BaseException:
        if made:  # nothing to look at: leave no scratch folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if record.dataset not in data_versions:
        notes.append("the schema changed since: the dataset version differs")
    if not result.ok and not digest:
        notes.append(f"the re-run ended {result.status}: {result.failures}")
    if stored is not None:
        digest = None  # identical to a digest whose bytes are gone is not identical
    return Reproduction(
        f"{record.name}:{record.version}",
        str(folder),
        result.run_id,
        record.digest,
        digest,
        dict(record.metrics),
        metrics,
        notes,
    )


def _scratch_config(
    project: Project, recorded: ProjectConfig, raw: Any, folder: Path
) -> ProjectConfig:
    """Write the recorded data (and schema) into ``folder``; the config that reads them there.

    Everything lands at a fixed name inside ``folder``, whatever the recorded paths were
    (a subfolder, an absolute path or ``../``).

    Raises:
        RegistryError: the schema file the run used is not there any more.
    """
    (folder / "data").mkdir(parents=True, exist_ok=True)
    raw.to_parquet(folder / RECORDED_DATA)
    data = recorded.data
    assert data is not None
    update: dict[str, Any] = {
        "source": data.source.model_copy(
            update={"type": "parquet", "path": RECORDED_DATA, "options": {}}
        )
    }
    if data.schema_file:
        source = (project.root / data.schema_file).resolve()
        if not source.is_file():
            raise RegistryError(
                f"data.schema: {data.schema_file} (as the run recorded it) is not a file any more"
            )
        shutil.copyfile(source, folder / SCRATCH_SCHEMA)
        update["schema_file"] = SCRATCH_SCHEMA
    return recorded.model_copy(update={"data": data.model_copy(update=update)})


def _stored_artifact_problem(project: Project, digest: str) -> str | None:
    """Why the registered model's stored bytes cannot be compared with, or None if they can."""
    try:
        project.artifacts.get_bytes(digest)
    except ArtifactError as exc:
        return f"the registered artifact cannot be read back: {exc}"
    return None


def _unflatten(params: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the inverse of how runs record the config)."""
    tree: dict[str, Any] = {}
    for key, value in params.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree
