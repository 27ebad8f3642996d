"""Mergeable per-partition sketches (conveyor.monitoring.sketches) against the in-memory path:
the same profile and the same drift verdicts whatever the partitioning, exactly where the
sketch holds the values (small samples, few distinct values) and within the stated tolerance
where it reads a KLL quantile sketch; a size that does not grow with rows; the Dask path."""

from __future__ import annotations

import functools
import json
import pickle
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from conveyor.examples.visa.generate import generate
from conveyor.monitoring.drift import DriftResult, detect
from conveyor.monitoring.monitor import check
from conveyor.monitoring.profile import (
    DECILES,
    OTHER,
    SAMPLE_PROBABILITIES,
    Distribution,
    ReferenceProfile,
    build_profile,
    model_outputs,
)
from tests.conftest import require_module
from tests.monitoring.test_check_unit import (
    MODEL,
    REFERENCE,
    classifier_profile,
    inputs,
    outcome,
    registered,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from conveyor.store.metadata import SqlMetadataStore

require_module("datasketches", "the quantile sketches of conveyor.monitoring.sketches")

from conveyor.monitoring import partitioned  # noqa: E402 - after the module check
from conveyor.monitoring import sketches as sk  # noqa: E402 - after the module check

W_TOL = 0.01  # Wasserstein / std from the KLL sketch vs exact (threshold 0.1)
PSI_TOL = 0.01  # PSI and report shares from the KLL sketch vs exact
ALL_EXACT = sk.SketchOptions(exact_cap=1_000_000)  # every numeric column held exactly


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["case_status", "case_id"])


@pytest.fixture(scope="module")
def visa_reference() -> pd.DataFrame:
    """Training rows, with the generator's dirt (negative employee counts, odd units)."""
    return _features(generate(seed=1))


@pytest.fixture(scope="module")
def visa_profile(visa_reference: pd.DataFrame) -> ReferenceProfile:
    return build_profile(visa_reference)


def _parts(frame: pd.DataFrame, n: int, *, seed: int = 0) -> list[pd.DataFrame]:
    """``frame`` cut into ``n`` partitions of uneven sizes, in a shuffled order."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(frame)), size=n - 1, replace=False))
    pieces = np.split(np.arange(len(frame)), cuts)
    return [frame.iloc[pieces[i]] for i in rng.permutation(n)]


def _sketch(parts: Sequence[pd.DataFrame], **kwargs: Any) -> sk.FrameSketch:
    return sk.sketch_frames(iter(parts), **kwargs)


def _assert_same(exact: DriftResult, sketched: DriftResult, *, tolerance: float = 0.0) -> None:
    """Same verdicts, methods, counts and categories; statistics equal, or within the
    tolerance for the distances and PSI read from a KLL sketch (``tolerance`` > 0)."""
    if tolerance == 0.0:
        assert sketched.to_dict() == exact.to_dict()
        return
    assert sketched.drifted_columns == exact.drifted_columns
    assert (sketched.dataset_drift, sketched.n_current) == (exact.dataset_drift, exact.n_current)
    pairs = [*zip(exact.columns, sketched.columns, strict=True)]
    pairs += [*zip(exact.outputs, sketched.outputs, strict=True)]
    for a, b in pairs:
        assert (b.column, b.method, b.verdict) == (a.column, a.method, a.verdict)
        assert (b.n_current, b.missing_current, b.new_categories) == (
            a.n_current,
            a.missing_current,
            a.new_categories,
        )
        if a.method == "wasserstein":
            assert b.statistic == pytest.approx(a.statistic, abs=tolerance), a.column
            # the verdict is only meaningful if the exact value is not within the tolerance
            assert abs(a.statistic - a.threshold) > tolerance, a.column
        else:
            assert (b.statistic, b.p_value) == (a.statistic, a.p_value), a.column
        psi_tolerance = min(tolerance, PSI_TOL)
        assert b.psi == pytest.approx(a.psi, abs=psi_tolerance), a.column
        assert b.bins == a.bins
        assert np.allclose(b.current_share, a.current_share, atol=psi_tolerance), a.column


# --- the shared statistics --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_weighted_quantiles_and_counts_equal_numpy_on_the_expanded_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = [1, 2, 7, 999, 5000, 23_456][seed]
    values = np.sort(np.round(rng.standard_t(3, n) * 100, seed % 3))  # ties, heavy tails
    unique, counts = np.unique(values, return_counts=True)
    weighted, plain = Distribution(unique, counts), Distribution(values)
    assert weighted.n == plain.n == n
    for q in (DECILES, SAMPLE_PROBABILITIES, rng.random(11), np.array([0.0, 1.0])):
        for method in ("linear", "inverted_cdf"):
            expected = np.quantile(values, q, method=method)
            assert np.array_equal(weighted.quantiles(q, method), expected)  # bit for bit
            assert np.array_equal(plain.quantiles(q, method), expected)
    edges = np.unique(np.quantile(values, DECILES))
    assert weighted.count_below(edges).tolist() == np.searchsorted(values, edges, "left").tolist()
    assert weighted.cdf(edges).tolist() == (np.searchsorted(values, edges, "right") / n).tolist()
    assert np.array_equal(weighted.expanded(), values)


# --- merging: the same sketch whatever the partitioning ---------------------------------------


def _without_moments(profile: ReferenceProfile) -> tuple[dict[str, Any], dict[str, Any]]:
    """The profile as JSON with mean and std apart (merged moments agree to float rounding)."""
    data = json.loads(json.dumps(profile.to_dict()))
    moments = {}
    for name, column in data["columns"].items():
        if column["kind"] == "numeric":
            moments[name] = (column.pop("mean"), column.pop("std"))
    return data, moments


def test_merge_gives_the_build_profile_whatever_the_partitioning(
    visa_reference: pd.DataFrame, visa_profile: ReferenceProfile
) -> None:
    expected, expected_moments = _without_moments(visa_profile)
    for n in (1, 7, 50):
        sketch = _sketch(_parts(visa_reference, n, seed=n), options=ALL_EXACT)
        got, moments = _without_moments(sk.profile_from_sketch(sketch))
        assert got == expected, f"{n} partitions"
        for name, (mean, std) in expected_moments.items():
            assert moments[name] == pytest.approx((mean, std), rel=1e-12, abs=0), name


def test_merge_is_associative_and_commutative(visa_reference: pd.DataFrame) -> None:
    a, b, c = (sk.sketch_frame(p) for p in _parts(visa_reference, 3))
    left, right, swapped = a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(a).merge(b)
    for other in (right, swapped):
        assert other.n_rows == left.n_rows == len(visa_reference)
        for name, column in left.columns.items():
            twin = other.columns[name]
            assert (twin.rows, twin.missing) == (column.rows, column.missing)
            if isinstance(column, sk.CategoricalSketch):
                assert isinstance(twin, sk.CategoricalSketch) and twin.counts == column.counts
            else:
                assert isinstance(twin, sk.NumericSketch)
                assert twin.count == column.count
                assert twin.mean == pytest.approx(column.mean, rel=1e-12)
                assert twin.m2 == pytest.approx(column.m2, rel=1e-12)
                assert (twin.distinct is None) == (column.distinct is None)
                if column.distinct is not None and twin.distinct is not None:
                    assert np.array_equal(twin.distinct[0], column.distinct[0])
                    assert np.array_equal(twin.distinct[1], column.distinct[1])
    # inputs are left as they were
    assert a.n_rows + b.n_rows + c.n_rows == left.n_rows


def test_a_profile_from_kll_sketches_is_within_the_tolerance(
    visa_reference: pd.DataFrame, visa_profile: ReferenceProfile
) -> None:
    sketched = sk.profile_from_sketch(_sketch(_parts(visa_reference, 7)))
    approximate = set()
    for name, expected in visa_profile.columns.items():
        got = sketched.columns[name]
        if expected.kind == "numeric":
            assert (got.mean, got.std) == pytest.approx((expected.mean, expected.std), rel=1e-12)
            got.mean, got.std = expected.mean, expected.std
        if got == expected:
            continue
        approximate.add(name)
        std = expected.std or 1.0
        assert len(got.edges) == len(expected.edges)
        assert np.allclose(got.edges, expected.edges, atol=0.01 * std, rtol=0)
        assert np.allclose(got.counts, expected.counts, atol=0.005 * expected.n, rtol=0)
        # the 5,000 quantiles the drift check compares with: 1-Wasserstein apart / std
        apart = np.mean(np.abs(np.subtract(got.sample, expected.sample))) / std
        assert apart < W_TOL, name
    assert approximate == {"prevailing_wage", "no_of_employees"}  # > 5,000 distinct values


def test_kinds_absent_columns_and_empty_partitions_merge_as_pandas_concat_would() -> None:
    with_x = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.inf], "c": ["a", "b", "a", None]})
    without_x = pd.DataFrame({"c": ["b", "b"]})
    empty_x = pd.DataFrame({"x": pd.Series([None, None], dtype=object), "c": ["a", "a"]})
    sketch = _sketch([with_x, without_x, empty_x])
    whole = pd.concat([with_x, without_x, empty_x], ignore_index=True)
    whole["x"] = whole["x"].astype("float64")
    assert sk.profile_from_sketch(sketch) == build_profile(whole)
    text = pd.DataFrame({"x": ["high", "low"], "c": ["a", "a"]})
    with pytest.raises(ValueError, match="column 'x': numbers in one partition, text in"):
        sketch.merge(sk.sketch_frame(text))


def test_categories_beyond_the_cap_are_counted_as_other() -> None:
    reference = pd.DataFrame({"c": list("aaaabbbccd") * 30})
    profile = build_profile(reference)
    options = sk.SketchOptions(max_categories=2)
    current = pd.DataFrame({"c": list("aaaabbbcce") * 30})  # e: new, c and e beyond the cap
    sketch = _sketch(_parts(current, 4), options=options)
    column = sketch.columns["c"]
    assert isinstance(column, sk.CategoricalSketch)
    assert column.counts == {"a": 120, "b": 90} and column.other == 90
    result = sk.detect_from_sketch(profile, sketch)
    drift = result.columns[0]
    assert drift.bins == ["a", "b", "c", "d", OTHER] and drift.new_categories == []
    assert drift.current_share[-1] == pytest.approx(0.3)
    capped = sk.profile_from_sketch(_sketch([reference], options=options))
    assert capped.columns["c"].frequencies == {"a": 120, "b": 90, OTHER: 90}


def test_a_column_profiled_as_categories_must_be_sketched_with_the_reference() -> None:
    profile = build_profile(pd.DataFrame({"code": ["1", "2", "3"] * 100}))
    current = pd.DataFrame({"code": [1, 2, 2] * 100})  # numbers now: compared as text
    with pytest.raises(ValueError, match="profiled as categories"):
        sk.detect_from_sketch(profile, sk.sketch_frame(current))
    expected = detect(profile, current)
    _assert_same(expected, sk.detect_from_sketch(profile, _sketch([current], reference=profile)))


# --- size ------------------------------------------------------------------------------------


def _wide(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "wage": rng.lognormal(11, 0.6, n),
            "year": rng.integers(1800, 2017, n),
            "employees": rng.pareto(1.2, n).round(),
            "region": rng.choice(["N", "S", "E", "W", "Island"], n),
        }
    )


def test_the_sketch_size_does_not_grow_with_rows() -> None:
    one = sk.sketch_frame(_wide(200_000, 0))
    total = one
    for seed in range(1, 10):
        total = total.merge(sk.sketch_frame(_wide(200_000, seed)))
    assert total.n_rows == 2_000_000
    assert total.nbytes() <= 1.1 * one.nbytes()
    assert total.nbytes() < 100_000 * 3  # bytes for 2M rows: ~90 kB per numeric column
    assert pickle.loads(pickle.dumps(total)).columns["wage"].count == 2_000_000


# --- drift verdicts: equal to drift.detect ----------------------------------------------------


@pytest.mark.parametrize("drift", [False, True], ids=["same", "drifted"])
@pytest.mark.parametrize("n", [150, 1000])
def test_small_samples_get_the_same_report_as_detect(
    visa_profile: ReferenceProfile, drift: bool, n: int
) -> None:
    current = _features(generate(n, seed=40 + n, drift=drift))
    expected = detect(visa_profile, current)
    got = sk.detect_from_sketch(visa_profile, _sketch(_parts(current, 7)))
    _assert_same(expected, got)  # KS and chi-square: identical, every number
    assert ({"continent", "prevailing_wage"} <= set(got.drifted_columns)) is drift


@pytest.mark.parametrize("drift", [False, True], ids=["same", "drifted"])
def test_large_samples_get_the_same_verdicts_within_the_tolerance(
    visa_profile: ReferenceProfile, drift: bool
) -> None:
    current = _features(generate(60_000, seed=50, drift=drift))
    expected = detect(visa_profile, current)
    assert {c.method for c in expected.columns} == {"wasserstein", "jensenshannon"}
    got = sk.detect_from_sketch(visa_profile, _sketch(_parts(current, 9)))
    _assert_same(expected, got, tolerance=W_TOL)
    assert set(got.drifted_columns) == ({"continent", "prevailing_wage"} if drift else set())


def test_model_outputs_are_checked_as_in_memory(visa_reference: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    proba = rng.random(len(visa_reference))
    outputs = model_outputs(
        predictions=np.where(proba > 0.3, "Certified", "Denied"),
        probabilities=np.column_stack([proba, 1 - proba]),
        classes=["Certified", "Denied"],
        positive="Certified",
    )
    profile = build_profile(
        visa_reference,
        predictions=np.where(proba > 0.3, "Certified", "Denied"),
        probabilities=np.column_stack([proba, 1 - proba]),
        classes=["Certified", "Denied"],
        positive="Certified",
    )
    # the profile from sketches of features and outputs (all exact) is build_profile's
    sketch = sk.sketch_frame(
        visa_reference, outputs=pd.DataFrame(outputs.columns), options=ALL_EXACT
    )
    from_sketch = sk.profile_from_sketch(
        sketch, positive=outputs.positive, task=outputs.task, classes=outputs.classes
    )
    assert from_sketch.outputs == profile.outputs
    assert (from_sketch.task, from_sketch.positive, from_sketch.classes) == (
        profile.task,
        profile.positive,
        profile.classes,
    )
    current = _features(generate(800, seed=4))
    scores = rng.random(800) ** 2  # the model grew less sure: prediction drift
    frame_out = pd.DataFrame(
        {"prediction": np.where(scores > 0.3, "Certified", "Denied"), "probability": scores}
    )
    expected = detect(profile, current, outputs=frame_out)
    pieces = np.array_split(np.arange(800), 3)
    parts = [
        sk.sketch_frame(current.iloc[p], outputs=frame_out.iloc[p], reference=profile)
        for p in pieces
    ]
    got = sk.detect_from_sketch(profile, functools.reduce(sk.FrameSketch.merge, parts))
    _assert_same(expected, got)
    assert got.prediction_drift


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


@pytest.mark.parametrize(
    ("rows", "adelie_only"), [(300, False), (300, True), (30_000, False), (30_000, True)]
)
def test_penguins_small_reference_any_current_size(
    penguins: pd.DataFrame, rows: int, adelie_only: bool
) -> None:
    """344 reference rows: always the tests (KS, chi-square). A current of 30,000 rows
    (resampled: at most 344 distinct values per column, held exactly) takes the asymptotic KS
    p-value from the sketch without expanding it: the same as scipy's."""
    profile = build_profile(penguins)
    pool = penguins[penguins["species"] == "Adelie"] if adelie_only else penguins
    current = pool.sample(rows, replace=True, random_state=rows).reset_index(drop=True)
    expected = detect(profile, current)
    got = sk.detect_from_sketch(profile, _sketch(_parts(current, 5)))
    _assert_same(expected, got)
    assert {c.method for c in got.columns} == {"ks", "chi2"}
    assert ("species" in got.drifted_columns) is adelie_only


def _diabetes(rows: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """scikit-learn's diabetes table resampled with a little noise (continuous columns)."""
    from sklearn.datasets import load_diabetes

    table = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(seed)
    out = table.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    numeric = [c for c in out.columns if c != "sex"]
    out[numeric] += rng.normal(0, 0.002, (rows, len(numeric))) * table[numeric].std().to_numpy()
    out["bmi"] += shift * table["bmi"].std()
    out["sex"] = np.where(out["sex"] > 0, "m", "f")
    return out


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_diabetes_large_samples_within_the_tolerance(shift: float) -> None:
    profile = build_profile(_diabetes(20_000, 1))
    current = _diabetes(30_000, 2, shift=shift)
    expected = detect(profile, current)
    got = sk.detect_from_sketch(profile, _sketch(_parts(current, 6)))
    _assert_same(expected, got, tolerance=W_TOL)
    assert got.drifted_columns == (["bmi"] if shift else [])


# --- Dask ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_dask_path_gives_the_local_report(visa_profile: ReferenceProfile) -> None:
    distributed = require_module("distributed", "the dask extra (conveyor[dask])")
    import dask
    import dask.dataframe as dd

    current = _features(generate(24_000, seed=60, drift=True))
    local = sk.detect_from_sketch(
        visa_profile, _sketch(_parts(current, 8), reference=visa_profile, options=ALL_EXACT)
    )
    _assert_same(detect(visa_profile, current), local, tolerance=1e-9)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        frames = dd.from_pandas(current, npartitions=8)
        on_dask = sk.sketch_partitions(
            frames, reference=visa_profile, options=ALL_EXACT, split_every=3, client=client
        )
        loaders = [
            functools.partial(_visa_features, 3000, seed=70 + i, drift=True) for i in range(4)
        ]
        from_loaders = sk.sketch_partitions(loaders, reference=visa_profile, options=ALL_EXACT)
        delayed = [dask.delayed(_visa_features)(3000, seed=70 + i, drift=True) for i in range(4)]
        from_delayed = sk.sketch_partitions(delayed, reference=visa_profile, options=ALL_EXACT)
    _assert_same(local, sk.detect_from_sketch(visa_profile, on_dask), tolerance=1e-9)
    assert on_dask.n_rows == len(current)
    expected = sk.detect_from_sketch(
        visa_profile, sk.sketch_frames((f() for f in loaders), options=ALL_EXACT)
    )
    for sketched in (from_loaders, from_delayed):
        _assert_same(expected, sk.detect_from_sketch(visa_profile, sketched), tolerance=1e-9)


def _visa_features(n: int, *, seed: int, drift: bool) -> pd.DataFrame:
    return _features(generate(n, seed=seed, drift=drift))


# --- the monitoring check over partitions ----------------------------------------------------


@pytest.fixture
def stores() -> Iterator[tuple[SqlMetadataStore, Any]]:
    """An in-memory SQLite metadata store and an in-memory artifact store."""
    from conveyor.store.artifacts.memory import InMemoryArtifactStore
    from conveyor.store.metadata import open_metadata_store

    metadata = open_metadata_store("sqlite://")
    yield metadata, InMemoryArtifactStore()
    metadata.close()


def test_check_partitions_stores_the_report_check_would(
    stores: tuple[SqlMetadataStore, Any],
) -> None:
    """Small partitions: the very report (same artifact), event and verdicts as one check of
    the whole table, with prediction drift from the model's scores of each partition."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    metadata, artifacts = stores
    classifier = make_pipeline(StandardScaler(), LogisticRegression())
    classifier.fit(REFERENCE, outcome(REFERENCE))
    registered(metadata, artifacts, classifier, profile=classifier_profile(classifier))
    table = inputs(900, shift=1.0)
    expected = check(metadata, artifacts, f"{MODEL}@production", current=table, now=5.0)
    parts = [functools.partial(lambda p: table.iloc[p].copy(), p) for p in _cuts(900, 4)]
    got = partitioned.check_partitions(
        metadata, artifacts, f"{MODEL}@production", parts, source="a file", now=5.0
    )
    assert got.report == expected.report
    assert (got.report_digest, got.html_digest) == (expected.report_digest, expected.html_digest)
    assert got.drift.drifted_columns == ["x1"] and got.drift.prediction_drift
    first, second = metadata.list_events(action="monitor.check")
    assert (second.reason, second.details) == (first.reason, first.details)


def _cuts(n: int, parts: int) -> list[np.ndarray[Any, Any]]:
    return np.array_split(np.arange(n), parts)


def test_monitor_flags_that_do_not_go_together_exit_2() -> None:
    from typer.testing import CliRunner

    from conveyor.cli.main import app

    runner = CliRunner()
    for args, message in [
        (["--executor", "spark", "--current", "x"], "choose local or dask"),
        (["--address", "tcp://127.0.0.1:1", "--current", "x"], "--address goes with"),
        (["--executor", "dask"], "give --current"),
        (["--executor", "dask", "--current", "x", "--labels", "y"], "--labels needs the rows"),
    ]:
        done = runner.invoke(app, ["monitor", *args])
        assert done.exit_code == 2, (args, done.output)
        assert message in done.output


def _columns(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [*report["drift"]["columns"], *report["drift"]["outputs"]]


@pytest.mark.slow
def test_monitor_cli_checks_a_folder_of_parquet_files_as_one_table(
    trained_visa: Path, tmp_path: Path
) -> None:
    """``conveyor monitor --current FOLDER``: partition by partition, locally and on a Dask
    cluster, the same JSON as for one file of all rows (distances to float rounding)."""
    from typer.testing import CliRunner

    from conveyor.cli.main import app
    from tests.e2e.conftest import RUNNER_ENV

    distributed = require_module("distributed", "the dask extra (conveyor[dask])")
    project = Path(shutil.copytree(trained_visa, tmp_path / "p"))
    rows = generate(n_rows=2400, seed=33, drift=True, dirt=False).drop(columns=["case_status"])
    (project / "batch").mkdir()
    for i, piece in enumerate(_cuts(len(rows), 3)):
        rows.iloc[piece].to_parquet(project / "batch" / f"part-{i}.parquet", index=False)
    rows.to_parquet(project / "all.parquet", index=False)

    def monitor(*args: str) -> dict[str, Any]:  # in this process: no interpreter start-up
        done = CliRunner(env=RUNNER_ENV).invoke(
            app, ["monitor", *args, "--no-alerts", "--json", "-p", str(project)]
        )
        assert done.exit_code == 0, done.output
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    labelled = CliRunner(env=RUNNER_ENV).invoke(
        app, ["monitor", "--current", "batch", "--labels", "all.parquet", "-p", str(project)]
    )
    assert labelled.exit_code == 2 and "--labels needs the rows in memory" in labelled.output
    whole = monitor("--current", "all.parquet")
    assert set(whole["drift"]["drifted_columns"]) == {"continent", "prevailing_wage"}
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        ) as cluster,
    ):
        on_dask = monitor(
            "--current",
            "batch/*.parquet",
            "--executor",
            "dask",
            "--address",
            cluster.scheduler_address,
        )
    for report in (monitor("--current", "batch"), on_dask):
        assert set(report) == set(whole)
        assert report["prediction"] == whole["prediction"]
        assert {k: v for k, v in report["drift"].items() if k not in ("columns", "outputs")} == {
            k: v for k, v in whole["drift"].items() if k not in ("columns", "outputs")
        }
        for got, expected in zip(_columns(report), _columns(whole), strict=True):
            assert set(got) == set(expected)
            for key, value in expected.items():
                if isinstance(value, float) and value:
                    assert got[key] == pytest.approx(value, rel=1e-9), (got["column"], key)
                else:
                    assert got[key] == value, (got["column"], key)


@pytest.mark.parametrize("parts", [1, 5, 40])
def test_continuous_values_merged_from_many_partitions_keep_their_distribution(
    parts: int,
) -> None:
    """Every partition has more distinct values than are kept exactly, so only the KLL sketches
    carry the column; merged from many small ones they must still weigh every row (datasketches
    5.2 iterates such a merge with weight 1 per item: Wasserstein 0.18 instead of 0.005)."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"price": rng.lognormal(8, 1, 54_000)})
    profile = build_profile(frame)
    chunks = [frame.iloc[rows] for rows in np.array_split(np.arange(len(frame)), parts)]
    sketches = [sk.sketch_frame(chunk, reference=profile) for chunk in chunks]
    merged = functools.reduce(lambda a, b: a.merge(b), sketches)
    assert merged.columns["price"].distinct is None  # the KLL path, not the exact one
    numbers = merged.columns["price"].numbers()
    assert numbers.n == len(frame)
    got = sk.detect_from_sketch(profile, merged).columns[0]
    exact = detect(profile, frame).columns[0]
    assert got.statistic is not None and exact.statistic is not None
    assert abs(got.statistic - exact.statistic) < 0.01
    assert got.verdict == exact.verdict == "ok"
