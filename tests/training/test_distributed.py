"""A lightgbm.dask candidate trains on every partition and comes back as an ordinary model;
settings it cannot honour are refused before anything runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conveyor.config import CandidateConfig
from conveyor.errors import ConfigError
from conveyor.project import Project
from conveyor.training.distributed import is_distributed, local_equivalent

if TYPE_CHECKING:
    from pathlib import Path


def penguins_project(tmp_path: Path, candidates: list[dict[str, Any]], **data: Any) -> Path:
    """palmerpenguins (missing values, text columns) as 4 csv files, partitioned. The rows are
    sorted by species, so no worker holds every class: the label coding must be global."""
    from palmerpenguins import load_penguins

    frame = load_penguins()
    (tmp_path / "data").mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[rows].to_csv(tmp_path / "data" / f"penguins-{i}.csv", index=False)
    config = {
        "project": "penguins",
        "store": {"metadata": "sqlite:///meta.db", "artifacts": "artifacts"},
        "data": {
            "source": {"type": "csv", "path": "data/penguins-*.csv"},
            "target": "species",
            "partitioned": True,
            "sample_rows": 100,
            **data,
        },
        "training": {"candidates": candidates},
        "evaluation": {"primary": "accuracy", "beat_baseline": False},
        "registry": {"model": "penguins"},
    }
    (tmp_path / "conveyor.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return tmp_path


DASK_LGBM = {
    "name": "lgbm",
    "estimator": "lightgbm.dask.DaskLGBMClassifier",
    "params": {"n_estimators": 20, "verbose": -1, "min_child_samples": 5},
}


@pytest.mark.slow
def test_dask_lightgbm_trains_on_every_row_and_serves_as_a_local_model(tmp_path: Path) -> None:
    logreg = {
        "name": "logreg",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 500},
    }
    root = penguins_project(tmp_path, [DASK_LGBM, logreg])
    with Project.load(root) as proj:
        result = proj.run(workers=2)
        assert result.ok, result.failures
        run = proj.metadata.get_run(result.run_id)
        # every training row, not the sample of 100
        assert run.metrics["train.lgbm.rows"] == run.metrics["split.train_rows"]
        assert run.metrics["split.train_rows"] > run.metrics["split.train_sample_rows"]
        model = proj.load_artifact(result.outputs["model_lgbm"].digest)
    from palmerpenguins import load_penguins

    from conveyor.training.distributed import BoosterClassifier

    estimator = model.named_steps["estimator"]
    assert isinstance(estimator, BoosterClassifier)
    assert list(estimator.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    rows = load_penguins().drop(columns=["species"]).head(20)
    labels = model.predict(rows)
    assert set(labels) <= {"Adelie", "Chinstrap", "Gentoo"}
    proba = model.predict_proba(rows)
    assert np.allclose(proba.sum(axis=1), 1.0)
    accuracy = float(np.mean(labels == load_penguins()["species"].head(20).to_numpy()))
    assert accuracy >= 0.9  # penguin species are easy: a broken fit would not get here


def test_dask_estimators_need_partitioned_data_and_no_search(tmp_path: Path) -> None:
    root = penguins_project(tmp_path, [DASK_LGBM], partitioned=False)
    with Project.load(root) as proj, pytest.raises(ConfigError, match="data.partitioned: true"):
        proj.pipeline("train")
    searched = {**DASK_LGBM, "search": {"num_leaves": [7, 15]}}
    root = penguins_project(tmp_path / "b", [searched])
    with Project.load(root) as proj, pytest.raises(ConfigError, match="lightgbm.LGBMClassifier"):
        proj.pipeline("train")


def test_a_dask_estimator_is_cross_validated_as_its_local_counterpart() -> None:
    dask = CandidateConfig(name="x", estimator="lightgbm.dask.DaskLGBMRegressor", params={"a": 1})
    assert is_distributed(dask)
    local = local_equivalent(dask)
    assert local.estimator == "lightgbm.LGBMRegressor" and local.params == {"a": 1}
    plain = CandidateConfig(name="y", estimator="sklearn.linear_model.Ridge")
    assert local_equivalent(plain) is plain and not is_distributed(plain)


def test_memory_artifact_store_is_refused_for_dask_training(tmp_path: Path) -> None:
    from conveyor.config import FeaturesConfig
    from conveyor.contracts import PartitionedTable
    from conveyor.store.artifacts import open_artifact_store
    from conveyor.training.distributed import fit_distributed

    store = open_artifact_store("memory://")
    table = PartitionedTable(parts=[], columns=["a", "y"], dtypes=["float64", "int64"])
    sample = pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]})
    with pytest.raises(ConfigError, match="memory://"):
        fit_distributed(
            store,
            table,
            sample,
            target="y",
            features=FeaturesConfig(),
            candidate=CandidateConfig(**DASK_LGBM),
            seed=0,
        )
