"""``conveyor predict --executor dask``: input files scored as tasks on a LocalCluster of two
worker processes give exactly what the in-process command gives on the same rows, the output
folder appears only when every partition succeeded, and a re-run resumes."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app as cli
from conveyor.examples.visa.generate import generate
from conveyor.project import Project
from conveyor.serving import batch_dask
from tests.conftest import require_module
from tests.e2e.conftest import RUNNER_ENV
from tests.serving.conftest import MODEL

if TYPE_CHECKING:
    from collections.abc import Iterator

    from click.testing import Result


distributed = require_module("distributed", "the dask extra (conveyor[dask])")

ROWS, PARTS = 1800, 6


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes shared by the module's tests (passed as ``--address``)."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Valid applications without the target."""
    return generate(n_rows=ROWS, seed=11, dirt=False).drop(columns=["case_status"])


def split(frame: pd.DataFrame, folder: Path, fmt: str, parts: int = PARTS) -> list[Path]:
    """``frame`` as ``parts`` files p0..p<parts-1> of ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // parts)
    paths = []
    for i in range(parts):
        piece = frame.iloc[i * size : (i + 1) * size]
        path = folder / f"p{i}.{fmt}"
        if fmt == "parquet":
            piece.to_parquet(path, index=False)
        else:
            piece.to_csv(path, index=False)
        paths.append(path)
    return paths


def predict(project: Path, *args: str | Path) -> Result:
    """``conveyor predict ARGS`` in this process."""
    argv = ["predict", *map(str, args), "-p", str(project)]
    return CliRunner(env=RUNNER_ENV).invoke(cli, argv, catch_exceptions=False)


def predict_json(project: Path, *args: str | Path) -> dict[str, Any]:
    done = predict(project, *args, "--json")
    assert done.exit_code == 0, done.output
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def scored_in_process(project: Path, frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """What the default (local) ``conveyor predict`` writes for ``frame`` as one file."""
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    summary = predict_json(
        project, "-i", tmp_path / "whole.parquet", "-o", tmp_path / "whole-scored.parquet"
    )
    assert summary["rows"] == len(frame) and "partitions" not in summary  # the local path
    return pd.read_parquet(tmp_path / "whole-scored.parquet")


def assert_same_scores(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    assert [c for c in got.columns if c.startswith("proba_")], "a classifier's probabilities"
    assert got["prediction"].tolist() == expected["prediction"].tolist()
    assert got["case_id"].tolist() == expected["case_id"].tolist()  # the input's row order
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected, check_exact=False, rtol=1e-12, check_dtype=False
    )


def loads_and_parts(client: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Per worker process: model loads, and partitions scored (all models)."""
    stats = client.run(batch_dask.worker_stats).values()
    loads = {str(s["pid"]): sum(s["loads"].values()) for s in stats}
    parts = {str(s["pid"]): sum(s["partitions"].values()) for s in stats}
    return loads, parts


def digest_of(project: Path) -> str:
    with Project.load(project) as proj:
        return proj.metadata.get_model_version(MODEL, 1).digest


@pytest.mark.slow
def test_a_folder_of_parquet_files_scores_as_the_in_process_command_does(
    visa_project: Path, rows: pd.DataFrame, cluster: Any, tmp_path: Path
) -> None:
    files = split(rows, tmp_path / "in", "parquet")
    out = tmp_path / "scored"
    address = cluster.scheduler.address
    done = predict(
        visa_project, "-i", tmp_path / "in", "-o", out, "--executor", "dask", "--address", address
    )
    assert done.exit_code == 0, done.output
    # A CI log (no terminal): one line per partition, then the summary.
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == PARTS and all("rows in" in line for line in lines)
    assert f"scored {ROWS:,} rows in {PARTS} partitions" in done.stdout

    assert_same_scores(pd.read_parquet(out), scored_in_process(visa_project, rows, tmp_path))
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS",
        *(f"part-{i:05d}.parquet" for i in range(PARTS)),
    ]
    assert not list(tmp_path.glob(".scored*"))  # the staging folder became the output

    manifest = json.loads((out / "_SUCCESS").read_text())
    assert manifest["model"] == {"name": MODEL, "version": 1, "digest": digest_of(visa_project)}
    assert manifest["rows"] == ROWS
    for i, (entry, path) in enumerate(zip(manifest["partitions"], files, strict=True)):
        part = out / f"part-{i:05d}.parquet"
        assert entry["input"] == {"path": str(path), "size": path.stat().st_size}
        assert entry["rows"] == len(pd.read_parquet(path)) == len(pd.read_parquet(part))
        assert entry["sha256"] == hashlib.sha256(part.read_bytes()).hexdigest()

    # Replaced like an output file is: a second run over the previous output succeeds.
    assert (
        predict_json(
            visa_project,
            "-i",
            tmp_path / "in",
            "-o",
            out,
            "--executor",
            "dask",
            "--address",
            address,
        )["resumed"]
        == 0
    )
    assert_same_scores(pd.read_parquet(out), pd.read_parquet(tmp_path / "whole-scored.parquet"))


@pytest.mark.slow
def test_a_csv_glob_on_a_cluster_started_for_the_command(
    visa_project: Path, rows: pd.DataFrame, tmp_path: Path
) -> None:
    folder = visa_project / "data" / "batch"
    split(rows, folder, "csv")
    rows.iloc[:0].to_csv(folder / "p9-empty.csv", index=False)  # a partition without rows
    (folder / "notes.txt").write_text("not a partition")
    out = tmp_path / "scored"
    summary = predict_json(
        visa_project, "-i", "data/batch/*.csv", "-o", out, "--executor", "dask", "--workers", "2"
    )
    assert summary["partitions"] == PARTS + 1 and summary["rows"] == ROWS
    assert summary["resumed"] == 0 and 1 <= summary["model_loads"] <= 2

    assert_same_scores(pd.read_parquet(out), scored_in_process(visa_project, rows, tmp_path))
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert manifest["partitions"][-1]["part"] is None and manifest["partitions"][-1]["rows"] == 0
    assert len(list(out.glob("part-*.parquet"))) == PARTS


@pytest.mark.slow
def test_a_bad_row_fails_the_run_with_no_output_and_a_rerun_scores_only_the_rest(
    visa_project: Path, rows: pd.DataFrame, cluster: Any, tmp_path: Path
) -> None:
    files = split(rows, tmp_path / "in", "parquet")
    bad = pd.read_parquet(files[4])
    bad.loc[6, "yr_of_estab"] = 1200  # row 7 of the fifth file
    bad.to_parquet(files[4], index=False)
    out = tmp_path / "scored"
    args = (
        "-i",
        tmp_path / "in",
        "-o",
        out,
        "--executor",
        "dask",
        "--address",
        cluster.scheduler.address,
    )

    failed = predict(visa_project, *args)
    assert failed.exit_code == 1
    assert "p4.parquet" in failed.stderr and "yr_of_estab" in failed.stderr
    assert "rows 7;" in failed.stderr and "Traceback" not in failed.output
    assert not out.exists()
    staging = tmp_path / ".scored.conveyor-staging"
    scored = sorted(p.name for p in staging.glob("part-*.parquet"))
    # The first four were sent before the fifth; the run waits for those in flight.
    assert scored[:4] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert "part-00004.parquet" not in scored
    assert f"{len(scored)}/{PARTS} partitions scored are kept" in failed.stderr

    # Fix the row; also change the first file (its part is stale) and corrupt a kept part.
    bad.loc[6, "yr_of_estab"] = 1990
    bad.to_parquet(files[4], index=False)
    pd.read_parquet(files[0]).iloc[:-1].to_parquet(files[0], index=False)
    corrupt = staging / "part-00001.parquet"
    corrupt.write_bytes(corrupt.read_bytes()[::-1])
    kept = {
        i: (staging / f"part-{i:05d}.parquet").stat().st_ino
        for i in {int(name[5:10]) for name in scored} - {0, 1}
    }
    before = loads_and_parts(cluster)[1]

    again = predict(visa_project, *args)
    assert again.exit_code == 0, again.output
    resumed = len(kept)
    assert f"resumed: {resumed}/{PARTS} partitions already scored" in again.stderr
    assert f"(resumed: {resumed}/{PARTS} partitions already scored)" in again.stdout
    after = loads_and_parts(cluster)[1]
    assert sum(after.values()) - sum(before.values()) == PARTS - resumed  # tasks run
    for i, inode in kept.items():  # renamed into place, never rewritten
        assert (out / f"part-{i:05d}.parquet").stat().st_ino == inode

    fixed = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert_same_scores(pd.read_parquet(out), scored_in_process(visa_project, fixed, tmp_path))
    assert not staging.exists()


@pytest.mark.slow
def test_each_worker_loads_the_model_once(
    visa_project: Path, rows: pd.DataFrame, cluster: Any, tmp_path: Path
) -> None:
    split(rows, tmp_path / "in", "parquet", parts=8)
    args = ("-i", tmp_path / "in", "--executor", "dask")
    before = sum(loads_and_parts(cluster)[1].values())
    first = predict_json(visa_project, *args, "--address", cluster.scheduler.address,
                         "-o", tmp_path / "one")  # fmt: skip
    # The second run finds the scheduler in conveyor.yaml (executor.address).
    config = yaml.safe_load((visa_project / "conveyor.yaml").read_text())
    config["executor"] = {"type": "dask", "address": cluster.scheduler.address}
    (visa_project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    second = predict_json(visa_project, *args, "-o", tmp_path / "two")
    assert first["partitions"] == second["partitions"] == 8
    assert second["model_loads"] == 0  # the workers kept it from the first run
    loads, parts = loads_and_parts(cluster)
    assert sum(parts.values()) - before == 16  # both runs went to this cluster
    busy = [pid for pid, n in parts.items() if n]
    assert busy and all(loads[pid] == 1 for pid in busy), (loads, parts)
    assert sum(loads.values()) <= 2


def test_usage_errors_exit_2(visa_project: Path, tmp_path: Path) -> None:
    base = ("-i", tmp_path / "in.parquet")
    cases = [
        ((*base, "-o", tmp_path / "o.csv", "--executor", "dask"), "Parquet parts"),
        ((*base, "-o", tmp_path / "o", "--executor", "dask", "--format", "csv"), "Parquet"),
        ((*base, "-o", tmp_path / "o.csv", "--workers", "2"), "--executor dask"),
        (
            (
                *base,
                "-o",
                tmp_path / "o",
                "--executor",
                "dask",
                "--address",
                "tcp://127.0.0.1:1",
                "--workers",
                "2",
            ),
            "its own",
        ),
        ((*base, "-o", tmp_path / "o", "--executor", "spark"), "local or dask"),
    ]
    for args, words in cases:
        done = predict(visa_project, *args)
        assert done.exit_code == 2, (args, done.output)
        assert words in done.stderr


def test_an_existing_folder_of_other_files_is_never_replaced(
    visa_project: Path, rows: pd.DataFrame, tmp_path: Path
) -> None:
    split(rows.head(60), tmp_path / "in", "parquet", parts=2)
    out = tmp_path / "results"
    out.mkdir()
    (out / "mine.csv").write_text("keep me")
    done = predict(visa_project, "-i", tmp_path / "in", "-o", out, "--executor", "dask")
    assert done.exit_code == 1
    assert "holds files conveyor predict did not write ('mine.csv')" in done.stderr
    assert (out / "mine.csv").read_text() == "keep me"


# conveyor.yaml's store.storage_options per object store; the values stay in the environment.
STORE_OPTIONS = {
    "s3": {
        "endpoint_url": "${CONVEYOR_TEST_ENDPOINT}",
        "key": "${AWS_ACCESS_KEY_ID}",
        "secret": "${AWS_SECRET_ACCESS_KEY}",
    },
    "gs": {"endpoint_url": "${CONVEYOR_TEST_ENDPOINT}", "token": "anon"},
}


@pytest.mark.slow
@pytest.mark.service
@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_an_object_store_output_is_published_with_success_last(
    scheme: str,
    visa_project: Path,
    rows: pd.DataFrame,
    cluster: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conveyor.store.artifacts._filesystems import open_filesystem

    location = request.getfixturevalue({"s3": "s3_bucket_uri", "gs": "gcs_bucket_uri"}[scheme])
    monkeypatch.setenv("CONVEYOR_TEST_ENDPOINT", location.storage_options["endpoint_url"])
    config_path = visa_project / "conveyor.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["store"] = {**config.get("store", {}), "storage_options": STORE_OPTIONS[scheme]}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    bucket = location.uri.split("://", 1)[1].split("/", 1)[0]
    # As conveyor opens it (gcsfs's stable filesystem: no 60 s bucket-type probe).
    fs, _ = open_filesystem(f"{scheme}://{bucket}", location.storage_options)

    files = split(rows, tmp_path / "in", "parquet")
    bad = pd.read_parquet(files[2])
    bad.loc[3, "yr_of_estab"] = 1200
    bad.to_parquet(files[2], index=False)
    args = ("-i", tmp_path / "in", "-o", f"{scheme}://{bucket}/batch/scored",
            "--executor", "dask", "--address", cluster.scheduler.address)  # fmt: skip

    def keys() -> list[str]:
        return sorted(k.removeprefix(f"{bucket}/") for k in fs.find(bucket))

    failed = predict(visa_project, *args)
    assert failed.exit_code == 1 and "p2.parquet" in failed.stderr, failed.output
    staged = keys()
    assert staged and all(k.startswith("batch/.scored.conveyor-staging/") for k in staged)

    bad.loc[3, "yr_of_estab"] = 1990
    bad.to_parquet(files[2], index=False)
    summary = predict_json(visa_project, *args)
    assert summary["resumed"] >= 2 and summary["rows"] == ROWS
    assert keys() == [
        "batch/scored/_SUCCESS",
        *(f"batch/scored/part-{i:05d}.parquet" for i in range(PARTS)),
    ]  # the staging prefix is gone
    manifest = json.loads(fs.cat_file(f"{bucket}/batch/scored/_SUCCESS"))
    parts = []
    for i, entry in enumerate(manifest["partitions"]):
        data = fs.cat_file(f"{bucket}/batch/scored/part-{i:05d}.parquet")
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        parts.append(pd.read_parquet(io.BytesIO(data)))
    whole = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    expected = scored_in_process(visa_project, whole, tmp_path)
    assert_same_scores(pd.concat(parts, ignore_index=True), expected)
