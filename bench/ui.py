"""conveyor ui's server time on a big PostgreSQL store, with MLflow's runs search as the anchor.

Fills a fresh PostgreSQL schema (``$CONVEYOR_BENCH_POSTGRES_URL``, default the tests' database on
127.0.0.1:5432) in two stages, 1/10 of the sizes then all of them (default 10,000 runs, each with
5 steps, 10 params and 20 metrics; 1,000 model versions; 100,000 audit events), written with bulk
INSERTs through conveyor's own table definitions, after conveyor's migrations made the schema.
At each stage it serves the UI in this process (uvicorn on loopback, ``--no-auth``) and times
``--requests`` GETs of the runs list, a run page, the models page and the audit page from a client
on loopback: p50 and p95 of the round trip (what the server takes, plus well under a millisecond of
loopback). Goal: p95 under 150 ms, and flat from the small to the large store.

Beside it, MLflow's tracking server (its own venv, ``bench/.venv-ui-peers``, never conveyor's
dependencies) on a PostgreSQL schema of its own holding the same number of runs (10 params and 20
metrics each, logged with ``log_batch``) answers ``runs/search`` for one page of 50 runs, timed
the same way. ``--skip-mlflow`` leaves it out (filling MLflow takes a few minutes). Both schemas
are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import NO_TELEMETRY, bench_venv
from _report import Row, fmt, print_table

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

POSTGRES_URL = os.environ.get(
    "CONVEYOR_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
UI_PEERS_DIR = Path(__file__).resolve().parent / ".venv-ui-peers"
UI_PEERS = ("mlflow==3.17.2", "psycopg2-binary==2.9.13", "sqlalchemy==2.1.9")
GOAL_S = 0.150
STEPS = ("ingest", "validate", "split", "train", "evaluate")
DIGEST = "0" * 64


def gate_report() -> Any:
    """The gate report every benchmark run's evaluate step outputs (one artifact, stored in the
    served artifact store too, so pages read and parse it as they would a real one)."""
    from conveyor.contracts import GateCheck, GateReport

    checks = [GateCheck(metric="f1", rule=">= 0.7", value=0.82, passed=True)]
    return GateReport(passed=True, results=checks, failed=[])


def stored_gates() -> Any:
    """The gate report's digest, kind and size, as the artifact store would record them."""
    from conveyor.store.artifacts import open_artifact_store

    return open_artifact_store("memory://").put(gate_report())


# -- the store --------------------------------------------------------------------------------


def schema_url(schema: str) -> str:
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"


def admin(sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def fill(url: str, start: int, stop: int, *, versions: int, events: int) -> None:
    """Runs ``start..stop`` (with steps, params, metrics), ``versions`` model versions and
    ``events`` audit events, by bulk INSERT into conveyor's tables."""
    import sqlalchemy as sa

    from conveyor.store.metadata import tables as t

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    now = time.time()
    with engine.begin() as conn:
        if start == 0:
            gates = stored_gates()
            conn.execute(
                sa.insert(t.artifacts),
                [
                    {"digest": DIGEST, "kind": "joblib", "size": 1, "created_at": now},
                    {"digest": gates.digest, "kind": gates.kind, "size": gates.size,
                     "created_at": now},
                ],
            )  # fmt: skip
        for chunk in range(start, stop, 1000):
            ids = [f"{i:032x}" for i in range(chunk, min(chunk + 1000, stop))]
            _insert_runs(conn, ids, now)
        first_version = start // 10
        conn.execute(
            sa.insert(t.model_versions),
            [_version_row(v, now) for v in range(first_version, first_version + versions)],
        )
        for chunk in range(0, events, 10_000):
            conn.execute(
                sa.insert(t.events),
                [
                    _event_row(start * 10 + e, now)
                    for e in range(chunk, min(chunk + 10_000, events))
                ],
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))  # as autovacuum soon would after a bulk load
    engine.dispose()


def _insert_runs(conn: Any, ids: list[str], now: float) -> None:
    import sqlalchemy as sa

    from conveyor.store.metadata import tables as t

    conn.execute(
        sa.insert(t.runs),
        [
            {"id": r, "pipeline": "train", "status": "succeeded", "started_at": now - i,
             "ended_at": now - i + 30, "executor": "local", "git_commit": "abc123",
             "config_hash": "f" * 64, "host": "bench", "pid": 1, "error": None}
            for i, r in enumerate(ids)
        ],
    )  # fmt: skip
    conn.execute(
        sa.insert(t.run_params),
        [{"run_id": r, "key": f"param_{k}", "value": k * 1.5} for r in ids for k in range(10)],
    )
    steps = conn.execute(
        sa.insert(t.steps).returning(t.steps.c.id, t.steps.c.run_id),
        [
            {"run_id": r, "name": name, "position": p, "status": "succeeded",
             "started_at": now, "ended_at": now + 5}
            for r in ids
            for p, name in enumerate(STEPS)
        ],
    ).all()  # fmt: skip
    evaluate = {run_id: step_id for step_id, run_id in steps[4::5]}
    gates = stored_gates()
    conn.execute(
        sa.insert(t.step_artifacts),
        [{"step_id": s, "direction": "out", "name": "gates", "digest": gates.digest}
         for s in evaluate.values()],
    )  # fmt: skip
    conn.execute(
        sa.insert(t.metrics),
        [
            {"run_id": r, "step_id": evaluate[r], "key": f"test.metric_{k}", "value": k / 20,
             "iteration": 0, "logged_at": now}
            for r in ids
            for k in range(20)
        ],
    )  # fmt: skip


def _version_row(v: int, now: float) -> dict[str, Any]:
    name = f"model-{v % 20}"
    return {
        "name": name, "version": v // 20 + 1, "digest": DIGEST, "run_id": f"{v * 10:032x}",
        "dataset": None, "status": "approved" if v % 3 else "rejected",
        "metrics": {f"test.metric_{k}": k / 20 for k in range(20)}, "signature": None,
        "tags": {}, "git_commit": "abc123", "config_hash": "f" * 64,
        "reason": "benchmark version", "created_at": now - v,
    }  # fmt: skip


def _event_row(e: int, now: float) -> dict[str, Any]:
    return {
        "at": now - e, "actor": f"user{e % 7}", "action": ("register", "approve", "promote")[e % 3],
        "entity": f"model-{e % 20}:{e % 50 + 1}", "reason": "benchmark event",
        "details": {"n": e},
    }  # fmt: skip


# -- timing -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_gets(url: str, n: int, *, method: str = "GET", body: Any = None) -> list[float]:
    import httpx

    times = []
    with httpx.Client(timeout=60) as client:
        for i in range(n + 3):  # three warm-ups
            start = time.perf_counter()
            response = client.request(method, url, json=body)
            took = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"{method} {url}: HTTP {response.status_code}")
            if i >= 3:
                times.append(took)
    return times


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def serve_ui(url: str) -> tuple[str, Callable[[], None]]:
    """The UI over the store at ``url`` on a free loopback port; returns (base URL, stop)."""
    import uvicorn

    from conveyor.store.artifacts import open_artifact_store
    from conveyor.store.metadata import open_metadata_store
    from conveyor.ui.app import UiState, create_app

    metadata = open_metadata_store(url)
    artifacts = open_artifact_store("memory://")
    artifacts.put(gate_report())  # what the runs' gates outputs point at
    state = UiState(metadata, artifacts, "bench", auth=False, secret=b"b" * 32)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        metadata.close()

    return f"http://127.0.0.1:{port}", stop


def ui_rows(url: str, runs: int, n: int) -> dict[str, list[float] | str]:
    base, stop = serve_ui(url)
    pages = {
        "runs list": "/runs",
        "run page": f"/runs/{runs // 2:032x}",
        "models page": "/models",
        "audit page": "/audit",
    }
    found: dict[str, list[float] | str] = {}
    try:
        for label, path in pages.items():
            try:
                found[label] = timed_gets(base + path, n)
            except RuntimeError as exc:
                found[label] = str(exc)
    finally:
        stop()
    return found


# -- MLflow -----------------------------------------------------------------------------------

_MLFLOW_FILL = textwrap.dedent(
    """
    import sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    client = MlflowClient(sys.argv[1])
    exp = client.create_experiment("bench")
    now = int(time.time() * 1000)
    for i in range(int(sys.argv[2])):
        run = client.create_run(exp)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"test.metric_{k}", k / 20, now, 0) for k in range(20)],
            params=[Param(f"param_{k}", str(k * 1.5)) for k in range(10)],
        )
        client.set_terminated(run.info.run_id)
    print(exp)
    """
)


def mlflow_rows(runs: int, n: int, tmp: Path) -> tuple[list[float], str]:
    """MLflow's runs/search p50/p95 for one page of 50 runs, over ``runs`` runs on PostgreSQL."""
    python = bench_venv(UI_PEERS_DIR, UI_PEERS, label="ui-peers")
    schema = f"bench_mlflow_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE SCHEMA "{schema}"')
    db = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql+psycopg2://")
    db += ("&" if "?" in db else "?") + f"options=-csearch_path%3D{schema}"
    env = {**os.environ, **NO_TELEMETRY}
    proc = None
    try:
        print(f"[mlflow] logging {runs:,} runs ...", file=sys.stderr, flush=True)
        script = tmp / "fill.py"
        script.write_text(_MLFLOW_FILL, encoding="utf-8")
        done = subprocess.run(
            [str(python), str(script), db, str(runs)], env=env, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        experiment = done.stdout.strip().splitlines()[-1]
        port = free_port()
        proc = subprocess.Popen(
            [str(python), "-m", "mlflow", "server", "--backend-store-uri", db,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/health")
        body = {"experiment_ids": [experiment], "max_results": 50}
        times = timed_gets(base + "/api/2.0/mlflow/runs/search", n, method="POST", body=body)
        return times, "mlflow 3.17.2 (PostgreSQL backend)"
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        admin(f'DROP SCHEMA "{schema}" CASCADE')


def _wait(url: str, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


# -- report -----------------------------------------------------------------------------------


def rows_for(label: str, small: list[float] | str, large: list[float] | str, runs: int) -> Row:
    if isinstance(small, str) or isinstance(large, str):
        return Row(label, f"error: {large if isinstance(large, str) else small}", "-", "FAIL")
    growth = statistics.median(large) / statistics.median(small)
    value = (
        f"p50 {fmt(statistics.median(large))}, p95 {fmt(p95(large))} at {runs:,} runs "
        f"(p95 {fmt(p95(small))} at {runs // 10:,}; x{growth:.2f} p50)"
    )
    ok = p95(large) <= GOAL_S
    return Row(label, value, f"p95 <= {fmt(GOAL_S)}", "ok" if ok else "FAIL")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="timed GETs per page")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args(argv)
    from conveyor.store.metadata import open_metadata_store

    schema = f"bench_ui_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE SCHEMA "{schema}"')
    url = schema_url(schema)
    try:
        open_metadata_store(url).close()  # conveyor's migrations make the schema
        small = args.runs // 10
        print(f"[conveyor] filling {small:,} runs ...", file=sys.stderr, flush=True)
        fill(url, 0, small, versions=args.versions // 10, events=args.events // 10)
        at_small = ui_rows(url, small, args.requests)
        print(f"[conveyor] filling up to {args.runs:,} runs ...", file=sys.stderr, flush=True)
        fill(url, small, args.runs, versions=args.versions - args.versions // 10,
             events=args.events - args.events // 10)  # fmt: skip
        at_large = ui_rows(url, args.runs, args.requests)
    finally:
        admin(f'DROP SCHEMA "{schema}" CASCADE')
    rows = [rows_for(label, at_small[label], at_large[label], args.runs) for label in at_large]
    if not args.skip_mlflow:
        with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
            try:
                times, peer = mlflow_rows(args.runs, args.requests, Path(tmp))
                rows.append(
                    Row(f"MLflow runs/search, 50 of {args.runs:,} runs ({peer})",
                        f"p50 {fmt(statistics.median(times))}, p95 {fmt(p95(times))}")
                )  # fmt: skip
            except Exception as exc:  # the anchor failing must not hide conveyor's figures
                rows.append(Row("MLflow runs/search", f"error: {type(exc).__name__}: {exc}"))
    print(
        f"conveyor ui server time (PostgreSQL, {args.runs:,} runs, {args.versions:,} model "
        f"versions, {args.events:,} events; {args.requests} requests per page)\n"
    )
    print_table(rows)
    print(json.dumps({"note": "round trips on loopback; p95 over the timed requests"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
