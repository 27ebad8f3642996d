"""Lineage queries: from a model version back to its data, run, candidates and decisions, and
from a dataset version forward to the models trained on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.contracts import Contract, Decision, Evaluation, GateReport, Registration
from conveyor.errors import NotFoundError
from conveyor.registry.versions import aliases_holding, resolve

if TYPE_CHECKING:
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import (
        DatasetRecord,
        MetadataStore,
        ModelVersionRecord,
        RunRecord,
    )


@dataclass(frozen=True)
class CandidateLine:
    """One candidate of the run that made a model, and whether it was the one chosen."""

    candidate: str
    metrics: dict[str, float]
    chosen: bool


@dataclass(frozen=True)
class TrialCounts:
    """How one candidate's tuning trials ended."""

    trials: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ModelLineage:
    """Dataset -> run -> candidates and trials -> gates and decision -> model version ->
    alias history -> serving."""

    model: ModelVersionRecord
    dataset: DatasetRecord | None
    run: RunRecord | None
    candidates: list[CandidateLine] = field(default_factory=list)
    trials: dict[str, TrialCounts] = field(default_factory=dict)
    gates: GateReport | None = None
    decision: Decision | None = None
    alias_history: list[dict[str, Any]] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    @property
    def served_as(self) -> list[str]:
        """``name@alias`` for every alias that points at the version."""
        return [f"{self.model.name}@{a}" for a in self.aliases]

    def to_json(self) -> dict[str, Any]:
        """Plain data (``conveyor lineage --json``)."""
        run = self.run
        return {
            "model": asdict(self.model),
            "dataset": None
            if self.dataset is None
            else {k: v for k, v in asdict(self.dataset).items() if k != "models"},
            "run": None
            if run is None
            else {
                "id": run.id,
                "pipeline": run.pipeline,
                "status": str(run.status),
                "started_at": run.started_at,
                "git_commit": run.git_commit,
                "config_hash": run.config_hash,
                "executor": run.executor,
                "params": run.params,
            },
            "candidates": [asdict(c) for c in self.candidates],
            "trials": {k: asdict(v) for k, v in self.trials.items()},
            "gates": [] if self.gates is None else [g.to_json() for g in self.gates.results],
            "decision": None if self.decision is None else self.decision.to_json(),
            "alias_history": self.alias_history,
            "aliases": self.aliases,
            "served_as": self.served_as,
        }


@dataclass(frozen=True)
class DatasetModel:
    """A model version trained on a dataset version."""

    model: str
    status: str
    run_id: str | None
    metrics: dict[str, float]
    aliases: list[str]


@dataclass(frozen=True)
class DatasetLineage:
    """A dataset version and the model versions trained on it."""

    dataset: DatasetRecord
    models: list[DatasetModel]

    def to_json(self) -> dict[str, Any]:
        """Plain data (``conveyor lineage --dataset FP --json``)."""
        return {"dataset": asdict(self.dataset), "models": [asdict(m) for m in self.models]}


def model_lineage(
    metadata: MetadataStore, artifacts: AbstractArtifactStore, ref: str
) -> ModelLineage:
    """Dataset -> run -> candidates and trials -> model version -> alias history -> serving."""
    model = resolve(metadata, ref)
    run = metadata.get_run(model.run_id) if model.run_id else None
    outputs = {o.name: o for s in run.steps for o in s.outputs} if run else {}

    def read(name: str, contract: type[Contract]) -> Any:
        ref = outputs.get(name)
        if ref is None or not artifacts.exists(ref.digest):
            return None
        return contract.of(artifacts.get(ref.digest, ref.kind))

    evaluation: Evaluation | None = read("evaluation", Evaluation)
    registration: Registration | None = read("registration", Registration) or read(
        "rejection", Registration
    )
    history = [
        h
        for h in metadata.alias_history(model.name)
        if h["version"] == model.version or h["previous_version"] == model.version
    ]
    return ModelLineage(
        model=model,
        dataset=None if model.dataset is None else _find_dataset(metadata, model.dataset),
        run=run,
        candidates=[]
        if evaluation is None
        else [
            CandidateLine(row.candidate, row.metrics, row.candidate == evaluation.best)
            for row in evaluation.leaderboard
        ],
        trials=_trial_summary(metadata.list_trials(run.id)) if run else {},
        gates=read("gates", GateReport),
        decision=None if registration is None else registration.decision,
        alias_history=history,
        aliases=aliases_holding(metadata, model.name, model.version),
    )


def dataset_lineage(metadata: MetadataStore, fingerprint: str) -> DatasetLineage:
    """Which runs read a dataset version and which model versions were trained on it.

    ``fingerprint`` may be a unique prefix.

    Raises:
        NotFoundError: no (or more than one) dataset version matches.
    """
    record = _find_dataset(metadata, fingerprint)
    versions = [m for m in metadata.list_model_versions() if m.dataset == record.fingerprint]
    return DatasetLineage(
        dataset=record,
        models=[
            DatasetModel(
                model=f"{m.name}:{m.version}",
                status=m.status,
                run_id=m.run_id,
                metrics=m.metrics,
                aliases=aliases_holding(metadata, m.name, m.version),
            )
            for m in versions
        ],
    )


def _find_dataset(metadata: MetadataStore, fingerprint: str) -> DatasetRecord:
    matches = [d for d in metadata.list_datasets() if d.fingerprint.startswith(fingerprint)]
    if len(matches) != 1:
        what = "no dataset version" if not matches else "several dataset versions"
        raise NotFoundError(f"{what} match {fingerprint!r} (see `conveyor data versions`)")
    return matches[0]


def _trial_summary(trials: list[dict[str, Any]]) -> dict[str, TrialCounts]:
    counts: dict[str, dict[str, int]] = {}
    for t in trials:
        entry = counts.setdefault(t["candidate"], {"trials": 0})
        entry["trials"] += 1
        if t["state"] in ("complete", "pruned", "failed"):
            entry[t["state"]] = entry.get(t["state"], 0) + 1
    return {name: TrialCounts(**entry) for name, entry in counts.items()}
