"""The line as every exporter sees it: steps, their upstream steps, the gate, the parameters,
the stores, and the one ``conveyor run --step`` command each platform step runs.

The three exporters share this module so that the DAG and the command are built once: a platform
module only maps them onto its own constructs (steps, tasks, jobs) and placeholders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from conveyor.config import ARTIFACTS_URI_ENV, METADATA_URL_ENV
from conveyor.errors import ExportError

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.pipeline import Pipeline
    from conveyor.project import Project

T = TypeVar("T")

PROJECT_DIR = "/app"
"""Where the image holds the project (the Dockerfile `conveyor init` writes copies it there)."""
GATE_STEP = "gate"
"""The step whose output is the gate report: its ``--gate-passed`` file decides the branch."""
REGISTER_STEP = "register"
REJECTED_STEP = "register_rejected"
"""The platform step that runs ``--step register`` when the gate failed: it records the rejected
version, then exits non-zero, so the execution fails visibly."""
SHARED_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")
"""Artifact URI schemes every step of a cloud pipeline can reach."""


@dataclass(frozen=True)
class LineStep:
    """One conveyor step as one platform step.

    Attributes:
        name: the conveyor step name, kept as the platform step's name.
        upstream: the steps producing the datasets it reads, in the line's topological order.
        gate: whether it returns the gate report (it also writes ``--gate-passed``).
        gated: whether it runs only when the gate passed (``register`` and what follows it).
    """

    name: str
    upstream: tuple[str, ...]
    gate: bool = False
    gated: bool = False


@dataclass(frozen=True)
class Slots(Generic[T]):
    """A platform's values for the variable parts of the command.

    ``T`` is the platform's placeholder type (a pipeline parameter, a KFP placeholder, raw
    shell text); plain ``str`` parts are literal.

    Attributes:
        run_key: the platform's execution id, shared by every step of one execution.
        data_uri: the data URI parameter, or None when the source has no path.
        seed: the split seed parameter, or None when the line has no split.
        summary: where the step writes its JSON summary, or None for no summary.
        gate_passed: where the gate step writes ``true``/``false``, or None.
        assign: builds the ``--set`` value ``key=<placeholder>`` the platform's way.
    """

    run_key: T | str
    assign: Callable[[str, T], T | str]
    data_uri: T | None = None
    seed: T | None = None
    summary: T | str | None = None
    gate_passed: T | str | None = None


@dataclass(frozen=True)
class Line:
    """A conveyor pipeline described for export.

    Attributes:
        project: the project's name (conveyor.yaml ``project``).
        pipeline: the pipeline's name (``train`` or one of ``pipelines:``).
        image: the conveyor image every step runs.
        steps: the steps in the line's topological order.
        data_uri: the data source's ``path`` from the config (the default of the data URI
            parameter), or None when the source is not a path (a database).
        seed: ``data.split.seed`` from the config (the seed parameter's default), or None.
        env: the store locations the steps share, as environment variables; empty when the
            project's stores are local to this machine.
    """

    project: str
    pipeline: str
    image: str
    steps: tuple[LineStep, ...]
    data_uri: str | None = None
    seed: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The platform pipeline's name: ``<project>-<pipeline>``, letters, digits and dashes."""
        return re.sub(r"[^A-Za-z0-9]+", "-", f"{self.project}-{self.pipeline}").strip("-")

    @property
    def gated(self) -> bool:
        """Whether the line has a gate deciding whether ``register`` runs."""
        return any(s.gate for s in self.steps) and any(s.gated for s in self.steps)

    def step(self, name: str) -> LineStep:
        """The step called ``name``."""
        return next(s for s in self.steps if s.name == name)

    def dag(self) -> dict[str, set[str]]:
        """Step name -> upstream step names, plus ``register_rejected`` (when gated), which
        runs ``register``'s command after the same steps: what every exported DAG must equal."""
        found = {s.name: set(s.upstream) for s in self.steps}
        if self.gated:
            found[REJECTED_STEP] = set(self.step(REGISTER_STEP).upstream)
        return found

    def command(self, step: LineStep | str, slots: Slots[T]) -> list[T | str]:
        """``conveyor run PIPELINE --project /app --run-id KEY --step NAME [...]``: the argv
        (``conveyor`` first) that runs ``step`` inside the image.

        ``register_rejected`` runs ``--step register``: the same step, on the else branch.
        """
        name = step if isinstance(step, str) else step.name
        spec = self.step(REGISTER_STEP if name == REJECTED_STEP else name)
        argv: list[T | str] = ["conveyor", "run", self.pipeline, "--project", PROJECT_DIR]
        argv += ["--run-id", slots.run_key, "--step", spec.name]
        if slots.data_uri is not None:
            argv += ["--set", slots.assign("data.source.path=", slots.data_uri)]
        if slots.seed is not None:
            argv += ["--set", slots.assign("data.split.seed=", slots.seed)]
        if slots.summary is not None:
            argv += ["--summary", slots.summary]
        if spec.gate and slots.gate_passed is not None:
            argv += ["--gate-passed", slots.gate_passed]
        return argv


def describe(project: Project, pipeline: str = "train", *, image: str) -> Line:
    """The ``pipeline`` of ``project`` as a :class:`Line`.

    Raises:
        ConfigError: no pipeline by that name (the message lists the project's pipelines).
        DataValidationError: building the line reads the data file's checksum and it is missing.
    """
    line = project.pipeline(pipeline)
    data = project.config.data
    source_path = data.source.path if data is not None else None
    return Line(
        project=project.config.project,
        pipeline=pipeline,
        image=image,
        steps=_steps(line),
        data_uri=source_path if _uses(line, "ingest") else None,
        seed=data.split.seed if data is not None and _uses(line, "split") else None,
        env=shared_stores(project.metadata_url, project.artifacts_uri),
    )


def shared_stores(metadata_url: str, artifacts_uri: str) -> dict[str, str]:
    """The store locations as environment variables, when every step can reach them: a
    database server (not SQLite) and an object store (not a local folder); else empty."""
    scheme = artifacts_uri.partition("://")[0] if "://" in artifacts_uri else ""
    if metadata_url.startswith("sqlite") or scheme not in SHARED_SCHEMES:
        return {}
    return {METADATA_URL_ENV: metadata_url, ARTIFACTS_URI_ENV: artifacts_uri}


def required_env(line: Line, target: str) -> dict[str, str]:
    """The store variables for a target that fixes them in the definition (Vertex, Azure ML).

    Raises:
        ExportError: the project's stores are local to this machine, so steps running in
            separate containers could not share them; says which variables to set.
    """
    if not line.env:
        raise ExportError(
            f"--target {target}: each step runs in its own container, so the steps must share "
            f"stores: set {METADATA_URL_ENV} (postgresql+psycopg://...) and {ARTIFACTS_URI_ENV} "
            "(s3://, gs:// or az://...) when exporting (the project's store is local: "
            "SQLite or a folder)"
        )
    return dict(line.env)


def _uses(line: Pipeline, step: str) -> bool:
    return any(s.name == step for s in line.steps)


def _steps(line: Pipeline) -> tuple[LineStep, ...]:
    """Each step with its upstream steps; ``register`` and what follows it are gated when the
    line has a ``gate`` step upstream of ``register``."""
    names = [s.name for s in line.steps]
    order = {name: i for i, name in enumerate(names)}
    gated: set[str] = set()
    if GATE_STEP in order and REGISTER_STEP in order:
        if REGISTER_STEP in line.downstream(GATE_STEP):
            gated = {REGISTER_STEP, *line.downstream(REGISTER_STEP)}
    return tuple(
        LineStep(
            name=name,
            upstream=tuple(sorted(line.upstream(name), key=order.__getitem__)),
            gate=name == GATE_STEP and bool(gated),
            gated=name in gated,
        )
        for name in names
    )


def parameters(line: Line) -> dict[str, str | int | None]:
    """The parameters KFP and Azure ML pipelines expose (``data_uri``, ``seed``) and their
    defaults from conveyor.yaml."""
    found: dict[str, str | int | None] = {}
    if line.data_uri is not None:
        found["data_uri"] = line.data_uri
    if line.seed is not None:
        found["seed"] = line.seed
    return found
