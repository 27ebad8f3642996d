"""Issue 17 at scale: the partitioned line on a Dask cluster of OS processes vs the in-memory path.

Partitioned ingest and validation, LightGBM-on-Dask training, batch scoring and drift checks on
a real Dask cluster, measured for 1 and 2 workers, against the in-memory path.

Run from the repository root::

    .venv/bin/python bench/scale.py --quick                 # 2M rows, about 10-15 minutes
    .venv/bin/python bench/scale.py                         # 20M rows (the issue's size)
    .venv/bin/python bench/scale.py --quick --sections gen,equal

Sections (``--sections``, all by default): ``gen`` (the dataset), ``train``, ``score`` and
``drift`` (each on a cluster of N workers, for every N of ``--workers``), ``memory`` (the
in-memory path: the same line on a slice, in one process) and ``equal`` (the partitioned path
gives what the in-memory path gives, on the slice). A section whose feature is not in the code
yet says "not available" and the others still run.

The dataset is generated once per (rows, seed) into ``bench/.data/`` (git-ignored) and reused.
Everything else happens in a workspace folder under it, deleted at the end (``--keep`` keeps
it). Every conveyor command is a subprocess of the venv's ``conveyor`` CLI, with ``CONVEYOR_*``
store variables cleared. The cluster is ``dask scheduler`` + N ``dask worker`` processes on
127.0.0.1 (one thread, ``--worker-memory`` each), started fresh for every measured command so
each one's peak RSS is its own. Prints one table at the end; the exit code is always 0 (a missed
goal shows FAIL). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dask_cluster import GB, MB, DaskCluster, Peak, RssWatch, kill_group
from _report import Row, fmt, print_table
from _scale_data import MANIFEST, Dataset, Slice, Spec, ensure, ensure_slice, parquet_rows
from _scale_projects import last_run_steps, make_project, step_windows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
CONVEYOR = Path(sys.executable).parent / "conveyor"
_ENV = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI")
SECTIONS = ("gen", "train", "score", "drift", "memory", "equal")
RSS_GOAL = 2 * GB  # peak RSS per worker at 20M rows
VALUE_WIDTH = 120  # longer values are cut in the table (the log on stderr has them whole)
RATIO_GOAL = 1.6  # 2 workers / 1 worker, validation and scoring rates
LGBM_PARAMS = {"n_estimators": 100, "verbose": -1, "deterministic": True, "force_row_wise": True}
DASK_CANDIDATE = {
    "name": "lgbm",
    "estimator": "lightgbm.dask.DaskLGBMClassifier",
    "params": LGBM_PARAMS,
}
LOCAL_CANDIDATE = {
    "name": "lgbm",
    "estimator": "lightgbm.LGBMClassifier",
    "params": {**LGBM_PARAMS, "n_jobs": 1},
}
VALIDATION_METRICS = (
    "data.rows",
    "validation.rows_out",
    "validation.dropped",
    "validation.fixed",
    "validation.warnings",
    "validation.errors",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def gb(n: float) -> str:
    return f"{n / GB:.2f} GB" if n >= GB else f"{n / MB:.0f} MB"


def rate(rows: float, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "-"


# --- what is in the code yet --------------------------------------------------------------------


@cache
def _help(command: str) -> str:
    proc = subprocess.run(
        [str(CONVEYOR), command, "--help"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=False,
    )
    return proc.stdout + proc.stderr


def has_partitioned() -> bool:
    """``data.partitioned`` is a setting of conveyor.yaml (the train line's partitioned path)."""
    from conveyor.config import DataConfig

    return "partitioned" in DataConfig.model_fields


def has_executor(command: str) -> bool:
    """``conveyor COMMAND`` takes ``--executor`` (dask scoring / monitoring)."""
    return "--executor" in _help(command)


# --- running conveyor ---------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Cmd:
    """One conveyor command: its time, exit, JSON output and peak RSS."""

    name: str
    seconds: float
    code: int
    out: Any
    err: str
    peak: Peak
    note: str | None = None  # timeout / killed

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.note is None

    @property
    def rss(self) -> int:
        # not ru_maxrss: on Linux a child's starts at the RSS of the process that forked it
        return self.peak.best

    def why(self) -> str:
        """A one-line reason for a failure (the last error line of stderr)."""
        if self.note:
            return self.note
        failed = [s for s in (self.out or {}).get("steps") or [] if s.get("status") == "failed"]
        if failed:
            return f"step {failed[0]['name']} failed: {failed[0].get('error') or '?'}"
        lines = [ln for ln in self.err.strip().splitlines() if ln.strip()]
        tail = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")
        return f"exit {self.code}: {tail.strip()[:160]}"


@dataclass
class Bench:
    """State shared by the sections."""

    args: argparse.Namespace
    ws: Path
    watch: RssWatch
    rows: list[Row] = field(default_factory=list)
    dataset: Dataset | None = None
    current: Dataset | None = None  # the drifted window: scored and monitored
    slices: dict[str, Slice] = field(default_factory=dict)
    models: dict[int, Path] = field(default_factory=dict)  # workers -> project with a model
    memory_run: tuple[Path, Cmd] | None = None
    results: dict[str, dict[int, float]] = field(default_factory=dict)  # what -> workers -> s
    cmd_count: int = 0

    def add(self, measure: str, value: str, goal: str = "-", ok: str = "-") -> None:
        shown = value if len(value) <= VALUE_WIDTH else value[: VALUE_WIDTH - 3] + "..."
        self.rows.append(Row(measure, shown, goal, ok))
        log(f"  {measure}: {value}" + (f"  [{goal}: {ok}]" if goal != "-" else ""))

    def conveyor(self, *args: str | Path, name: str, cap: int | None = None) -> Cmd:
        """Run ``conveyor ARGS --json`` in the workspace, its tree's RSS watched (and killed
        above ``cap``), at most ``--timeout`` seconds."""
        self.cmd_count += 1
        tag = f"{self.cmd_count:02d}-{name}"
        logs = self.ws / "logs"
        logs.mkdir(exist_ok=True)
        out_path, err_path = logs / f"{tag}.json", logs / f"{tag}.err"
        argv = [str(CONVEYOR), *map(str, args), "--json"]
        log(f"$ conveyor {' '.join(map(str, args))}")
        with out_path.open("wb") as out, err_path.open("wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                argv, stdout=out, stderr=err, cwd=self.ws, env=_clean_env(), start_new_session=True
            )
            self.watch.track(tag, proc.pid, cap=cap)
            note = None
            deadline = time.monotonic() + self.args.timeout
            try:
                while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                    if time.monotonic() > deadline:
                        note = f"timed out after {self.args.timeout:.0f} s"
                        kill_group(proc.pid)
                        break
                    time.sleep(0.1)
            except BaseException:  # Ctrl-C: the child is in its own session, stop it too
                kill_group(proc.pid)
                os.waitpid(proc.pid, 0)
                raise
            peak = self.watch.untrack(tag)
            _, status = os.waitpid(proc.pid, 0)
            seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if peak.killed:
            note = f"killed after {peak.killed_after:.0f} s: {peak.killed}"
        text = out_path.read_text(errors="replace")
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return Cmd(
            name,
            seconds,
            code,
            parsed,
            err_path.read_text(errors="replace"),
            peak,
            note,
        )

    @contextlib.contextmanager
    def cluster(self, workers: int, label: str) -> Iterator[DaskCluster]:
        with DaskCluster(
            workers,
            logdir=self.ws / "dask" / label,
            watch=self.watch,
            env=_clean_env(),
            memory_limit=self.args.worker_memory,
        ) as cl:
            self.watch.reset()
            yield cl

    def worker_peaks(self, cl: DaskCluster, what: str, workers: int) -> None:
        """One row per worker of ``cl``: its tree's peak RSS since the cluster started."""
        for name in cl.worker_names():
            p = self.watch.peak(name)
            ok = "ok" if p.best < RSS_GOAL else "FAIL"
            self.add(
                f"  {what} [{workers}w]: peak RSS {name} (polled / VmHWM)",
                f"{gb(p.polled)} / {gb(p.hwm)}",
                "< 2 GB at 20M rows",
                ok,
            )
        if not cl.alive():
            self.add(f"  {what} [{workers}w]: cluster", "a process died: see dask logs", "-", "!")
        events = cl.events()
        if events:
            self.add(f"  {what} [{workers}w]: worker restarts / memory events", events, "none", "!")

    def step_peaks(self, cl: DaskCluster, what: str, proj: Path, cmd: Cmd) -> None:
        """The workers' largest polled RSS during each step of the run (from the steps' start
        and end times in the project's SQLite store)."""
        run_id = (cmd.out or {}).get("run_id")
        windows = step_windows(proj, run_id) if run_id else []
        peaks = [self.watch.peak(name) for name in cl.worker_names()]
        shown = []
        for name, start, end in windows:
            rss = max((p.between(start, end) for p in peaks), default=0)
            if rss:
                shown.append(f"{name} {rss / GB:.2f}")
        if shown:
            self.add(f"  {what}: workers' peak RSS by step, GB", ", ".join(shown))


# --- projects -----------------------------------------------------------------------------------


def step_times(cmd: Cmd) -> dict[str, float]:
    """Step name -> duration (s) from ``conveyor run --json``."""
    steps = (cmd.out or {}).get("steps") or []
    return {s["name"]: float(s.get("duration") or 0.0) for s in steps}


def ingest_validate(times: dict[str, float]) -> float | None:
    if "ingest" not in times or "validate" not in times:
        return None
    return times["ingest"] + times["validate"]


def train_time(times: dict[str, float]) -> float | None:
    found = [t for name, t in times.items() if name.startswith(("train_", "tune_"))]
    return sum(found) if found else None


def report_run(b: Bench, what: str, cmd: Cmd, rows: int) -> dict[str, float]:
    """Rows for one ``conveyor run``: status, ingest+validate, training, whole run, driver RSS."""
    times = step_times(cmd)
    status = (cmd.out or {}).get("status", "-")
    b.add(
        f"{what}: run",
        f"{status}, {fmt(cmd.seconds)} wall" + ("" if cmd.ok else f" ({cmd.why()})"),
        "succeeded",
        "ok" if status == "succeeded" else "FAIL",
    )
    iv, tr = ingest_validate(times), train_time(times)
    if iv is not None:
        b.add(f"{what}: ingest+validate", f"{fmt(iv)} ({rate(rows, iv)})")
    elif times:
        b.add(f"{what}: steps", ", ".join(f"{n} {fmt(t)}" for n, t in times.items())[:200])
    if tr is not None:
        b.add(f"{what}: training (LightGBM)", fmt(tr))
    ran = {s["name"] for s in (cmd.out or {}).get("steps") or [] if s.get("status") != "skipped"}
    rest = {n: t for n, t in times.items() if n in ran and n not in ("ingest", "validate")}
    rest = {n: t for n, t in rest.items() if not n.startswith(("train_", "tune_"))}
    if rest:
        b.add(f"{what}: other steps", ", ".join(f"{n} {fmt(t)}" for n, t in rest.items()))
    metrics = (cmd.out or {}).get("metrics") or {}
    if "test.f1" in metrics:
        test_rows = metrics.get("split.test_rows", 0)
        b.add(
            f"{what}: model on the test split",
            f"f1 {metrics['test.f1']:.3f}, roc_auc {metrics.get('test.roc_auc', 0):.3f} "
            f"({test_rows:,.0f} rows)",
        )
    b.add(f"{what}: driver peak RSS (conveyor run)", gb(cmd.rss))
    return {"iv": iv or 0.0, "train": tr or 0.0}


def memory_model(b: Bench) -> tuple[Path, Cmd]:
    """The in-memory path on the slice (``partitioned`` off, local executor, LGBMClassifier):
    trained once per invocation; its model also scores and monitors when no train section ran."""
    if b.memory_run is None:
        sl = b.slices["data"]
        proj = make_project(
            b.ws / "memory",
            source=sl.file,
            partitioned=False,
            executor={"type": "local"},
            candidate=LOCAL_CANDIDATE,
        )
        b.memory_run = (proj, b.conveyor("run", "-p", proj, name="memory-run"))
    return b.memory_run


def scoring_model(b: Bench) -> tuple[Path, str]:
    """The project whose model scores and monitors: the first train section's, else the
    in-memory slice model."""
    if b.models:
        n = min(b.models)
        return b.models[n], f"LightGBM-on-Dask model of the {n}-worker train run"
    proj, cmd = memory_model(b)
    if not cmd.ok:
        raise RuntimeError(f"no model to score with: the in-memory run failed ({cmd.why()})")
    return proj, f"LGBMClassifier trained in memory on {b.slices['data'].rows:,} rows"


# --- sections -----------------------------------------------------------------------------------


def section_gen(b: Bench, show: bool) -> None:
    a = b.args
    need_current = bool({"score", "drift", "memory", "equal"} & set(a.sections))
    b.dataset = ensure(DATA, Spec(a.rows, a.seed, a.partition_rows), log=log)
    sets = [("training data", b.dataset)]
    if need_current:
        # the batch that is scored and monitored: drifted, and without the dirt, because
        # `conveyor predict` refuses a table with rows that break the contract
        spec = Spec(a.current_rows or a.rows, a.seed + 1, a.partition_rows, drift=True, dirt=False)
        b.current = ensure(DATA, spec, log=log)
        sets.append(("current window (drifted, no dirt)", b.current))
        b.slices["data"] = ensure_slice(b.dataset, a.slice_rows)
        b.slices["current"] = ensure_slice(b.current, a.slice_rows)
    if not show:
        return
    for label, ds in sets:
        b.add(
            f"gen: {label}",
            f"{ds.rows:,} rows, {len(ds.files)} partitions, {gb(ds.bytes)} ({ds.path.name})",
        )
        if ds.reused:
            took = json.loads((ds.path / MANIFEST).read_text()).get("seconds", 0)
            b.add(f"gen: {label} time", f"reused (generated earlier in {fmt(took)})")
        else:
            b.add(f"gen: {label} time", f"{fmt(ds.seconds)} ({rate(ds.rows, ds.seconds)})")


def section_train(b: Bench, workers: int) -> None:
    what = f"train [{workers}w]"
    if not has_partitioned():
        b.add(what, "not available: conveyor.yaml has no data.partitioned yet", "-", "n/a")
        return
    assert b.dataset is not None
    with b.cluster(workers, f"train-{workers}") as cl:
        proj = make_project(
            b.ws / f"train-{workers}w",
            source=b.dataset.path,
            partitioned=True,
            executor={"type": "dask", "address": cl.address},
            candidate=DASK_CANDIDATE,
        )
        cmd = b.conveyor("run", "-p", proj, name=f"train-{workers}w")
        got = report_run(b, what, cmd, b.dataset.rows)
        b.worker_peaks(cl, "train", workers)
        b.step_peaks(cl, what, proj, cmd)
    if got["iv"]:
        b.results.setdefault("validation", {})[workers] = got["iv"]
    if cmd.ok and (cmd.out or {}).get("model"):
        b.models[workers] = proj


def section_score(b: Bench, workers: int) -> None:
    what = f"score [{workers}w]"
    if not has_executor("predict"):
        b.add(what, "not available: `conveyor predict` has no --executor yet", "-", "n/a")
        return
    assert b.current is not None
    proj, which = scoring_model(b)
    out = b.ws / f"scored-{workers}w"
    with b.cluster(workers, f"score-{workers}") as cl:
        cmd = b.conveyor(
            "predict",
            "-p",
            proj,
            "--executor",
            "dask",
            "--address",
            cl.address,
            "-i",
            b.current.path,
            "-o",
            out,
            name=f"score-{workers}w",
        )
        if not cmd.ok:
            b.add(what, f"failed: {cmd.why()}", "-", "FAIL")
        else:
            rows = parquet_rows(out) if out.exists() else 0
            inner = float((cmd.out or {}).get("seconds") or cmd.seconds)
            b.add(f"{what}: model", which)
            b.add(
                f"{what}: rows scored",
                f"{rows:,}",
                f"{b.current.rows:,}",
                "ok" if rows == b.current.rows else "FAIL",
            )
            b.add(
                f"{what}: scoring rate",
                f"{rate(rows, inner)} ({fmt(inner)}; {fmt(cmd.seconds)} with start-up)",
            )
            b.results.setdefault("scoring", {})[workers] = inner
        b.add(f"{what}: driver peak RSS (conveyor predict)", gb(cmd.rss))
        b.worker_peaks(cl, "score", workers)
    shutil.rmtree(out, ignore_errors=True)


def drift_summary(out: Any) -> str:
    drift = (out or {}).get("drift") or {}
    cols = drift.get("drifted_columns") or []
    return (
        f"dataset drift: {drift.get('dataset_drift')}, drifted: {', '.join(cols) or 'none'}, "
        f"{drift.get('n_current', 0):,} rows"
    )


def section_drift(b: Bench, workers: int) -> None:
    what = f"drift [{workers}w]"
    if not has_executor("monitor"):
        b.add(what, "not available: `conveyor monitor` has no --executor yet", "-", "n/a")
        return
    assert b.current is not None
    proj, which = scoring_model(b)
    b.add(f"{what}: model", which)
    with b.cluster(workers, f"drift-{workers}") as cl:
        cmd = b.conveyor(
            "monitor",
            "-p",
            proj,
            "--current",
            b.current.path,
            "--no-alerts",
            "--executor",
            "dask",
            "--address",
            cl.address,
            name=f"drift-{workers}w",
        )
        if cmd.ok:
            took = f"{fmt(cmd.seconds)} ({rate(b.current.rows, cmd.seconds)}, with start-up)"
            b.add(f"{what}: check time", took)
            b.add(f"{what}: verdict", drift_summary(cmd.out))
            b.results.setdefault("drift", {})[workers] = cmd.seconds
        else:
            b.add(what, f"failed: {cmd.why()}", "-", "FAIL")
        b.add(f"{what}: driver peak RSS (conveyor monitor)", gb(cmd.rss))
        b.worker_peaks(cl, "drift", workers)


def section_ratios(b: Bench) -> None:
    for what in ("validation", "scoring", "drift"):
        got = b.results.get(what, {})
        if 1 in got and 2 in got:
            ratio = got[1] / got[2]
            goal = f">= {RATIO_GOAL}x" if what != "drift" else "-"
            ok = ("ok" if ratio >= RATIO_GOAL else "FAIL") if what != "drift" else "-"
            b.add(f"{what} rate, 2 workers / 1 worker", f"{ratio:.2f}x", goal, ok)


def section_memory(b: Bench) -> None:
    """The in-memory path on the slice: the line (local executor, one process), scoring and a
    drift check, each with its peak RSS; the line's peak RSS extrapolated to ``--rows`` from
    a second, smaller run; then (``--memory-cap``) a capped attempt at the whole dataset."""
    a = b.args
    sl, cur = b.slices["data"], b.slices["current"]
    proj, cmd = memory_model(b)
    what = f"in memory [{sl.rows / 1e6:g}M]"
    report_run(b, what, cmd, sl.rows)
    assert b.dataset is not None
    small = ensure_slice(b.dataset, a.slice_rows // 4)
    if small.rows < sl.rows:
        sp = make_project(
            b.ws / "memory-small",
            source=small.file,
            partitioned=False,
            executor={"type": "local"},
            candidate=LOCAL_CANDIDATE,
        )
        sc = b.conveyor("run", "-p", sp, name="memory-small-run")
        b.add(
            f"in memory [{small.rows / 1e6:g}M]: driver peak RSS (conveyor run)",
            gb(sc.rss) if sc.ok else f"failed: {sc.why()}",
        )
        if sc.ok and cmd.ok:
            slope = (cmd.rss - sc.rss) / (sl.rows - small.rows)
            est = cmd.rss + slope * (a.rows - sl.rows)
            b.add(
                f"in memory: peak RSS extrapolated to {a.rows / 1e6:g}M rows",
                f"{gb(est)} (+{gb(slope * 1e6)} per 1M rows, straight line)",
            )
    pred = b.ws / "memory-scored.parquet"
    pc = b.conveyor("predict", "-p", proj, "-i", cur.file, "-o", pred, name="memory-predict")
    if pc.ok:
        inner = float((pc.out or {}).get("seconds") or pc.seconds)
        b.add(
            f"{what}: scoring (one process, chunked)",
            f"{rate(cur.rows, inner)}, peak RSS {gb(pc.rss)}",
        )
    else:
        b.add(f"{what}: scoring", f"failed: {pc.why()}", "-", "FAIL")
    pred.unlink(missing_ok=True)
    mc = b.conveyor(
        "monitor", "-p", proj, "--current", cur.file, "--no-alerts", name="memory-monitor"
    )
    b.add(
        f"{what}: drift check",
        f"{fmt(mc.seconds)}, peak RSS {gb(mc.rss)}; {drift_summary(mc.out)}"
        if mc.ok
        else f"failed: {mc.why()}",
    )
    if a.memory_cap > 0 and b.dataset.rows > sl.rows:
        section_memory_full(b)


def section_memory_full(b: Bench) -> None:
    """The in-memory line over the whole dataset, killed above ``--memory-cap`` GB (or when the
    machine's available memory gets low): where it fails, or what it takes."""
    a = b.args
    assert b.dataset is not None
    what = f"in memory [{b.dataset.rows / 1e6:g}M], cap {a.memory_cap:g} GB"
    proj = make_project(
        b.ws / "memory-full",
        source=b.dataset.path,
        partitioned=False,
        executor={"type": "local"},
        candidate=LOCAL_CANDIDATE,
    )
    cmd = b.conveyor("run", "-p", proj, name="memory-full-run", cap=int(a.memory_cap * GB))
    if cmd.ok:
        report_run(b, what, cmd, b.dataset.rows)
        return
    steps = [(s["name"], s.get("status")) for s in (cmd.out or {}).get("steps") or []]
    steps = steps or last_run_steps(proj)  # killed: no JSON, the store still tells
    done = ", ".join(n for n, st in steps if st == "succeeded") or "none"
    at = next((n for n, st in steps if st in ("running", "failed")), "-")
    b.add(f"{what}: run", f"did not finish ({cmd.why()}) in step {at}; done: {done}", "-", "-")
    b.add(f"{what}: peak RSS before it stopped", gb(cmd.rss))


def section_equal(b: Bench) -> None:
    """On the slice: the partitioned path's validation counts, fingerprint, predictions and
    drift verdicts against the in-memory path's."""
    sl = b.slices["data"]
    mproj, mcmd = memory_model(b)
    tag = f"equal [{sl.rows / 1e6:g}M]"
    if not mcmd.ok:
        b.add(tag, f"in-memory run failed: {mcmd.why()}", "-", "FAIL")
        return
    workers = max(b.args.workers)
    with b.cluster(workers, "equal") as cl:
        dask = ("--executor", "dask", "--address", cl.address)
        if has_partitioned():
            pproj = make_project(
                b.ws / "equal-partitioned",
                source=sl.folder,
                partitioned=True,
                executor={"type": "dask", "address": cl.address},
                candidate=DASK_CANDIDATE,
            )
            pcmd = b.conveyor("run", "-p", pproj, name="equal-partitioned-run")
            if pcmd.out and pcmd.out.get("metrics"):
                m_mem, m_par = mcmd.out.get("metrics", {}), pcmd.out["metrics"]
                same(b, f"{tag}: validation counts", counts(m_mem), counts(m_par))
            else:
                b.add(
                    f"{tag}: validation counts",
                    f"partitioned run failed: {pcmd.why()}",
                    "equal",
                    "FAIL",
                )
            same(b, f"{tag}: dataset fingerprint", fingerprints(b, mproj), fingerprints(b, pproj))
        else:
            b.add(
                f"{tag}: validation counts, fingerprint",
                "not available: no data.partitioned",
                "-",
                "n/a",
            )
        if has_executor("predict"):
            equal_predictions(b, tag, mproj, b.slices["current"], dask)
        else:
            b.add(f"{tag}: predictions", "not available: no `predict --executor`", "-", "n/a")
        if has_executor("monitor") and "current" in b.slices:
            dsl = b.slices["current"]
            a = b.conveyor(
                "monitor",
                "-p",
                mproj,
                "--current",
                dsl.file,
                "--no-alerts",
                name="equal-monitor-memory",
            )
            d = b.conveyor(
                "monitor",
                "-p",
                mproj,
                "--current",
                dsl.folder,
                "--no-alerts",
                *dask,
                name="equal-monitor-dask",
            )
            same(b, f"{tag}: drift verdicts", verdicts(a), verdicts(d))
            stat_gap(b, f"{tag}: drift statistics, largest difference", a, d)
        else:
            b.add(f"{tag}: drift verdicts", "not available: no `monitor --executor`", "-", "n/a")


def same(b: Bench, measure: str, mine: Any, theirs: Any) -> None:
    """A yes/no row: the in-memory value against the partitioned one (for two dicts, only the
    keys that differ are shown)."""
    ok = mine == theirs and mine not in (None, {}, [])
    if ok:
        value = f"yes: {short(mine)}"
    elif isinstance(mine, dict) and isinstance(theirs, dict):
        keys = [k for k in {**mine, **theirs} if mine.get(k) != theirs.get(k)]
        value = "NO: " + "; ".join(f"{k} {mine.get(k)} vs {theirs.get(k)}" for k in keys)
    else:
        value = f"NO: in memory {short(mine)} / partitioned {short(theirs)}"
    b.add(measure, value, "equal", "ok" if ok else "FAIL")


def counts(metrics: dict[str, float]) -> str:
    """The validation counts of a run's metrics, as ``rows 1,000, rows_out 999, ...``."""
    shown = []
    for key in VALIDATION_METRICS:
        value = metrics.get(key)
        shown.append(f"{key.rpartition('.')[2]} " + ("-" if value is None else f"{value:,.0f}"))
    return ", ".join(shown)


def short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 160 else text[:157] + "..."


def fingerprints(b: Bench, proj: Path) -> Any:
    cmd = b.conveyor("data", "versions", "-p", proj, name="versions")
    if not cmd.ok or not isinstance(cmd.out, list):
        return f"(cannot list: {cmd.why()})"
    return sorted({d["fingerprint"][:16] + f" ({d['rows']:,} rows)" for d in cmd.out})


def verdicts(cmd: Cmd) -> Any:
    if not cmd.ok:
        return f"(failed: {cmd.why()})"
    drift = cmd.out.get("drift") or {}
    cols = {
        c["column"]: c["verdict"] for c in [*drift.get("columns", []), *drift.get("outputs", [])]
    }
    return {"dataset_drift": drift.get("dataset_drift"), **cols}


def stat_gap(b: Bench, measure: str, a: Cmd, d: Cmd) -> None:
    if not (a.ok and d.ok):
        return

    def stats(cmd: Cmd) -> dict[str, float]:
        drift = cmd.out.get("drift") or {}
        return {
            c["column"]: c["statistic"]
            for c in [*drift.get("columns", []), *drift.get("outputs", [])]
            if c.get("statistic") is not None
        }

    sa, sd = stats(a), stats(d)
    gaps = {k: abs(sa[k] - sd[k]) for k in sa.keys() & sd.keys()}
    if gaps:
        worst = max(gaps, key=gaps.__getitem__)
        b.add(measure, f"{gaps[worst]:.3g} ({worst}: {sa[worst]:.4g} vs {sd[worst]:.4g})")


def equal_predictions(b: Bench, tag: str, proj: Path, sl: Slice, dask: Sequence[str]) -> None:
    """The same model scores the slice in one process and on the cluster: same rows out?"""
    import pandas as pd
    import pyarrow.parquet as pq

    one, many = b.ws / "equal-memory.parquet", b.ws / "equal-dask"
    a = b.conveyor("predict", "-p", proj, "-i", sl.file, "-o", one, name="equal-predict-memory")
    d = b.conveyor(
        "predict", "-p", proj, "-i", sl.folder, "-o", many, *dask, name="equal-predict-dask"
    )
    if not (a.ok and d.ok):
        b.add(
            f"{tag}: predictions",
            f"in memory: {'ok' if a.ok else a.why()}; dask: {'ok' if d.ok else d.why()}",
            "equal",
            "FAIL",
        )
        return
    left = pd.read_parquet(one).sort_values("case_id").reset_index(drop=True)
    right = pd.read_parquet(many).sort_values("case_id").reset_index(drop=True)
    inputs = set(pq.read_schema(sl.file).names)
    outputs = [c for c in left.columns if c not in inputs]
    missing = [c for c in outputs if c not in right.columns]
    if len(left) != len(right) or missing:
        b.add(
            f"{tag}: predictions",
            f"NO: {len(left):,} vs {len(right):,} rows, missing columns {missing}",
            "equal",
            "FAIL",
        )
        return
    differ = {c: int((left[c] != right[c]).sum()) for c in outputs}
    bad = {c: n for c, n in differ.items() if n}
    value = (
        f"yes: {len(left):,} rows, columns {', '.join(outputs)}"
        if not bad
        else f"NO: rows differing per column {bad}"
    )
    b.add(f"{tag}: predictions", value, "equal", "ok" if not bad else "FAIL")
    shutil.rmtree(many, ignore_errors=True)
    one.unlink(missing_ok=True)


# --- main ---------------------------------------------------------------------------------------


def run_section(b: Bench, name: str, fn: Callable[[], None]) -> None:
    """One section; an error becomes a FAIL row (the traceback goes to stderr)."""
    log(f"section {name}")
    try:
        fn()
    except Exception as exc:
        traceback.print_exc()
        b.add(name, f"error: {type(exc).__name__}: {str(exc)[:150]}", "-", "FAIL")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, help="rows of the dataset (default 20,000,000)")
    p.add_argument("--partition-rows", type=int, help="rows per file (default 500,000)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", default="1,2", help="cluster sizes, comma-separated (1,2)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=",".join(SECTIONS))
    p.add_argument("--quick", action="store_true", help="2M rows in 250k partitions")
    p.add_argument(
        "--slice-rows",
        type=int,
        default=1_000_000,
        help="rows of the in-memory / equality slice (whole partitions)",
    )
    p.add_argument(
        "--current-rows", type=int, help="rows of the window scored and monitored (--rows)"
    )
    p.add_argument(
        "--memory-cap",
        type=float,
        default=6.0,
        help="GB: the in-memory line on the whole dataset is killed above this (0: do not try it)",
    )
    p.add_argument("--worker-memory", default="4GB", help="dask worker --memory-limit")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per conveyor command")
    p.add_argument("--keep", action="store_true", help="keep the workspace (logs, projects)")
    a = p.parse_args(argv)
    a.rows = a.rows or (2_000_000 if a.quick else 20_000_000)
    a.partition_rows = a.partition_rows or (250_000 if a.quick else 500_000)
    a.workers = sorted({int(w) for w in a.workers.split(",") if w.strip()})
    a.sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = set(a.sections) - set(SECTIONS)
    if unknown or not a.workers or min(a.workers) < 1:
        p.error(
            f"unknown sections {sorted(unknown)} (known: {SECTIONS})"
            if unknown
            else "--workers: positive integers"
        )
    return a


def remove_stale_workspaces() -> None:
    """Delete the workspaces of earlier runs that were killed (their process is gone)."""
    for folder in DATA.glob("work-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    for var in _ENV:
        os.environ.pop(var, None)
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / ".gitignore").write_text("*\n")  # the cache never shows up in git status
    load_before = os.getloadavg()
    started = time.perf_counter()
    remove_stale_workspaces()
    ws = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=DATA))
    with RssWatch() as watch:
        b = Bench(a, ws, watch)
        try:
            run_section(b, "gen", partial(section_gen, b, "gen" in a.sections))
            if b.dataset is not None:
                for n in a.workers:
                    for name, fn in (
                        ("train", section_train),
                        ("score", section_score),
                        ("drift", section_drift),
                    ):
                        if name in a.sections:
                            run_section(b, f"{name} [{n}w]", partial(fn, b, n))
                section_ratios(b)
                for name, whole in (("memory", section_memory), ("equal", section_equal)):
                    if name in a.sections:
                        run_section(b, name, partial(whole, b))
        finally:
            if a.keep:
                log(f"workspace kept: {ws}")
            else:
                shutil.rmtree(ws, ignore_errors=True)
    total = time.perf_counter() - started
    load = f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}"
    print(
        f"\nscale: {a.rows:,} rows in {a.partition_rows:,}-row partitions, workers "
        f"{','.join(map(str, a.workers))} ({a.worker_memory}, 1 thread each), python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores, load average {load}, "
        f"took {fmt(total)}\n"
    )
    print_table(b.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
