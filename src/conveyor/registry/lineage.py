"""Lineage queries: from a model version back to its data, run, candidates and decisions, and
from a dataset version forward to the models trained on it."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from conveyor.errors import NotFoundError
from conveyor.registry.versions import aliases_holding, resolve

if TYPE_CHECKING:
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import DatasetRecord, SqlMetadataStore

# Step outputs of the train line that explain a model, by name.
_EXPLAINING = ("evaluation", "gates", "registration", "rejection", "report")


def model_lineage(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore, ref: str
) -> dict[str, Any]:
    """Dataset -> run -> candidates and trials -> model version -> alias history -> serving."""
    model = resolve(metadata, ref)
    run = metadata.get_run(model.run_id) if model.run_id else None
    outputs = {o.name: o for s in run.steps for o in s.outputs} if run else {}
    found = {
        name: artifacts.get(outputs[name].digest, outputs[name].kind)
        for name in _EXPLAINING
        if name in outputs and artifacts.exists(outputs[name].digest)
    }
    evaluation = found.get("evaluation", {})
    decision = (found.get("registration") or found.get("rejection") or {}).get("decision")
    history = [
        h
        for h in metadata.alias_history(model.name)
        if h["version"] == model.version or h["previous_version"] == model.version
    ]
    holding = aliases_holding(metadata, model.name, model.version)
    return {
        "model": {k: v for k, v in asdict(model).items()},
        "dataset": _dataset(metadata, model.dataset),
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
        "candidates": [
            {
                "candidate": row["candidate"],
                "metrics": row["metrics"],
                "chosen": row["candidate"] == evaluation.get("best"),
            }
            for row in evaluation.get("leaderboard", [])
        ],
        "trials": _trial_summary(metadata.list_trials(run.id)) if run else {},
        "gates": found.get("gates", {}).get("results", []),
        "decision": decision,
        "alias_history": history,
        "aliases": holding,
        "served_as": [f"{model.name}@{a}" for a in holding],
    }


def dataset_lineage(metadata: SqlMetadataStore, fingerprint: str) -> dict[str, Any]:
    """Which runs read a dataset version and which model versions were trained on it.

    ``fingerprint`` may be a unique prefix.

    Raises:
        NotFoundError: no (or more than one) dataset version matches.
    """
    record = _find_dataset(metadata, fingerprint)
    versions = [m for m in metadata.list_model_versions() if m.dataset == record.fingerprint]
    return {
        "dataset": asdict(record),
        "models": [
            {
                "model": f"{m.name}:{m.version}",
                "status": m.status,
                "run_id": m.run_id,
                "metrics": m.metrics,
                "aliases": aliases_holding(metadata, m.name, m.version),
            }
            for m in versions
        ],
    }


def _dataset(metadata: SqlMetadataStore, fingerprint: str | None) -> dict[str, Any] | None:
    if fingerprint is None:
        return None
    record = _find_dataset(metadata, fingerprint)
    return {k: v for k, v in asdict(record).items() if k != "models"}


def _find_dataset(metadata: SqlMetadataStore, fingerprint: str) -> DatasetRecord:
    matches = [d for d in metadata.list_datasets() if d.fingerprint.startswith(fingerprint)]
    if len(matches) != 1:
        what = "no dataset version" if not matches else "several dataset versions"
        raise NotFoundError(f"{what} match {fingerprint!r} (see `conveyor data versions`)")
    return matches[0]


def _trial_summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for t in trials:
        entry = summary.setdefault(
            t["candidate"], {"trials": 0, "complete": 0, "pruned": 0, "failed": 0}
        )
        entry["trials"] += 1
        entry[t["state"]] = entry.get(t["state"], 0) + 1
    return summary
