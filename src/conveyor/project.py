"""A conveyor project: a folder with conveyor.yaml, its stores, and the lines it runs."""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.config import CONFIG_FILE, ExecutorConfig, ProjectConfig, load_config
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from conveyor.pipeline import Pipeline
    from conveyor.runner import AbstractExecutor, RunHooks, RunResult
    from conveyor.runner.orchestrated import Stamp, StepRun
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import RunRecord, SqlMetadataStore

BUILTIN_LINES = ("train",)


class Project:
    """A project folder and its configuration; opens its stores on first use.

    Args:
        root: the project folder (relative store paths are resolved against it).
        config: the validated conveyor.yaml.
    """

    def __init__(self, root: str | Path, config: ProjectConfig) -> None:
        self.root = Path(root).resolve()
        self.config = config

    @classmethod
    def load(cls, path: str | Path = ".", *, overrides: Iterable[str] = ()) -> Project:
        """Load the project whose conveyor.yaml is in (or is) ``path``."""
        path = Path(path)
        root = path if path.is_dir() else path.parent
        return cls(root, load_config(path, overrides=overrides))

    @property
    def metadata_url(self) -> str:
        """The metadata store URL, with a relative SQLite path made absolute."""
        url = self.config.store.metadata
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
            return prefix + str(self.root / url[len(prefix) :])
        return url

    @property
    def artifacts_uri(self) -> str:
        """The artifact store URI, with a relative folder made absolute."""
        uri = self.config.store.artifacts
        return uri if "://" in uri else str(self.root / uri)

    @cached_property
    def metadata(self) -> SqlMetadataStore:
        """The metadata store, opened and migrated on first use.

        Opening it also marks runs whose process died (e.g. SIGKILL) as interrupted, so every
        command shows a consistent state.
        """
        from conveyor.store.metadata import open_metadata_store

        store = open_metadata_store(self.metadata_url)
        store.recover_interrupted()
        return store

    @cached_property
    def artifacts(self) -> AbstractArtifactStore:
        """The artifact store (opened on first use)."""
        from conveyor.store.artifacts import open_artifact_store

        return open_artifact_store(
            self.artifacts_uri,
            storage_options=self.config.store.storage_options,
            base_dir=self.root,
        )

    @property
    def pipeline_names(self) -> list[str]:
        """Built-in lines plus the project's own pipelines."""
        return [*BUILTIN_LINES, *self.config.pipelines]

    def pipeline(self, name: str = "train") -> Pipeline:
        """The pipeline called ``name``: a built-in line or one from ``pipelines:``.

        Raises:
            ConfigError: unknown name, or a ``module:attr`` that does not give a Pipeline.
        """
        from conveyor.pipeline import Pipeline

        if name in self.config.pipelines:
            target = self.config.pipelines[name]
            found = _import_attr(target, self.root, key=f"pipelines.{name}")
            made = (
                found(self.config) if callable(found) and not isinstance(found, Pipeline) else found
            )
            if not isinstance(made, Pipeline):
                raise ConfigError(
                    f"{CONFIG_FILE}: pipelines.{name}: {target} gave "
                    f"{type(made).__name__}, not a conveyor Pipeline"
                )
            made.name = name
            return made
        if name == "train":
            from conveyor.lines import train

            return train.build(self.config, self.root)
        raise ConfigError(
            f"no pipeline {name!r}; this project has: {', '.join(self.pipeline_names)}"
        )

    def executor(self, kind: str | None = None, *, workers: int | None = None) -> AbstractExecutor:
        """The executor from the config (or ``kind``): ``local``, ``dask`` or a plugin.

        Raises:
            ConfigError: unknown executor (listing the available ones), or a broken plugin.
        """
        from conveyor import _plugins

        cfg = self.config.executor
        kind = kind or cfg.type
        factory = _plugins.load(_plugins.EXECUTORS, kind, _executor_factory)
        settings = ExecutorSettings(
            config=cfg,
            artifacts=lambda: self.artifacts,
            metadata=lambda: self.metadata,
            artifacts_uri=self.artifacts_uri,
            metadata_url=self.metadata_url,
            storage_options=self.config.store.storage_options,
            workers=workers,
        )
        made = factory(settings)
        if not isinstance(made, _abstract_executor()):
            raise ConfigError(
                f"executor {kind!r} gave {type(made).__name__}, not a "
                "conveyor.runner.AbstractExecutor"
            )
        return made

    def run(
        self,
        name: str = "train",
        *,
        executor: str | None = None,
        workers: int | None = None,
        use_cache: bool = True,
        hooks: RunHooks | Iterable[RunHooks] | None = None,
    ) -> RunResult:
        """Run a pipeline of this project and record it; see :class:`~conveyor.runner.Runner`."""
        from conveyor.runner import Runner

        line = self.pipeline(name)
        stamp = self._stamp()
        with self.executor(executor, workers=workers) as ex:
            runner = Runner(self.metadata, self.artifacts, ex, hooks=hooks)
            return runner.run(
                line,
                use_cache=use_cache,
                params=stamp.params,
                git_commit=stamp.git_commit,
                config_hash=stamp.config_hash,
            )

    def plan(self, name: str = "train", *, key: str | None = None) -> RunRecord:
        """Create the run of pipeline ``name`` that ``key`` names (if new), every step pending,
        for an orchestrator to drive with :meth:`run_step`; see
        :mod:`conveyor.runner.orchestrated`."""
        from conveyor.runner import LocalExecutor, Runner
        from conveyor.runner.orchestrated import plan

        line = self.pipeline(name)
        with LocalExecutor(self.artifacts, lambda: self.metadata) as ex:
            return plan(Runner(self.metadata, self.artifacts, ex), line, key, self._stamp())

    def run_step(
        self,
        name: str,
        key: str,
        step: str,
        *,
        executor: str | None = None,
        use_cache: bool = True,
        hooks: RunHooks | Iterable[RunHooks] | None = None,
    ) -> StepRun:
        """Run one step of the run ``key`` names (created if new), reading its inputs from the
        steps before it in the same run."""
        from conveyor.runner import Runner
        from conveyor.runner.orchestrated import run_step

        line = self.pipeline(name)
        with self.executor(executor, workers=1) as ex:
            runner = Runner(self.metadata, self.artifacts, ex, hooks=hooks)
            return run_step(runner, line, key, step, self._stamp(), use_cache=use_cache)

    def _stamp(self) -> Stamp:
        from conveyor.runner.orchestrated import Stamp

        return Stamp(self.run_params(), git_commit(self.root), self.config_hash())

    def model_ref(self, ref: str | None = None) -> str:
        """``ref``, or the served model by default: ``registry.model@registry.promote.alias``.

        Raises:
            ConfigError: no ``ref`` and no registry section.
        """
        if ref:
            return ref
        if self.config.registry is None:
            raise ConfigError(f"{CONFIG_FILE} has no registry section: pass --model NAME@ALIAS")
        registry = self.config.registry
        return f"{registry.model}@{registry.promote.alias}"

    def load_artifact(self, digest: str) -> Any:
        """Load any recorded artifact by its SHA-256 (verified before decoding)."""
        return self.artifacts.get(digest, self.metadata.artifact_kind(digest))

    def load_model(self, ref: str) -> Any:
        """Load a registered model (``NAME``, ``NAME:VER`` or ``NAME@ALIAS``), hash-verified."""
        from conveyor.registry import versions

        return versions.load(self.metadata, self.artifacts, ref)

    def config_hash(self) -> str:
        """SHA-256 of the config that defines results (where data is stored and where steps
        execute are left out: the same config gives the same results on any executor)."""
        data = self.config.model_dump(mode="json", exclude={"store", "executor"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def run_params(self) -> dict[str, Any]:
        """The config flattened to ``dotted.key: value``, secrets masked (store settings left
        out: they are where the metadata lives, not what defines a result)."""
        from conveyor._secrets import mask_tree

        return _flatten(mask_tree(self.config.model_dump(mode="json", exclude={"store"})))

    def close(self) -> None:
        """Close the stores if they were opened."""
        if "metadata" in self.__dict__:
            self.metadata.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor is made from: the project's stores and the ``executor`` section.

    An executor plugin (entry point group ``conveyor.executors``) is a callable taking this and
    returning a :class:`~conveyor.runner.AbstractExecutor`.
    """

    config: ExecutorConfig  # the executor section: address, workers, options (for plugins)
    artifacts: Callable[[], AbstractArtifactStore]  # opens the artifact store on first call
    metadata: Callable[[], SqlMetadataStore]  # opens the metadata store on first call
    artifacts_uri: str  # where remote workers open the same stores
    metadata_url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None  # --workers, when given


def local_executor(settings: ExecutorSettings) -> AbstractExecutor:
    """The built-in ``local`` executor: steps in this process (threads when workers > 1)."""
    from conveyor.runner import LocalExecutor

    return LocalExecutor(settings.artifacts(), settings.metadata, workers=settings.workers or 1)


def dask_executor(settings: ExecutorSettings) -> AbstractExecutor:
    """The built-in ``dask`` executor: a scheduler at ``address``, else a LocalCluster."""
    from conveyor.runner.dask import DaskExecutor

    return DaskExecutor(
        settings.artifacts_uri,
        settings.metadata_url,
        storage_options=settings.storage_options,
        address=settings.config.address,
        workers=settings.workers or settings.config.workers or 2,
    )


def _executor_factory(obj: Any) -> Callable[[ExecutorSettings], AbstractExecutor]:
    if not callable(obj):
        raise TypeError(f"{type(obj).__name__} is not callable")
    factory: Callable[[ExecutorSettings], AbstractExecutor] = obj
    return factory


def _abstract_executor() -> type[AbstractExecutor]:
    from conveyor.runner import AbstractExecutor

    return AbstractExecutor


def load_model(ref: str, *, project: str | Path = ".") -> Any:
    """Load a registered model, e.g. ``load_model("visa-approval@production")``.

    The artifact's SHA-256 is checked before anything is unpickled; a changed byte raises
    :class:`~conveyor.errors.ArtifactCorruptedError`.
    """
    with Project.load(project) as proj:
        return proj.load_model(ref)


def git_commit(root: Path) -> str | None:
    """The commit checked out in ``root`` (``+dirty`` when files changed), or None."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None:
        return None
    dirty = _git(root, "status", "--porcelain")
    return head + ("+dirty" if dirty else "")


def _git(root: Path, *args: str) -> str | None:
    """Output of ``git -C root ARGS``, or None when git is missing or the command fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _import_attr(target: str, root: Path, *, key: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep:
        raise ConfigError(f"{CONFIG_FILE}: {key}: expected 'module:attribute', got {target!r}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{CONFIG_FILE}: {key}: cannot import {target!r}: {exc}") from exc
