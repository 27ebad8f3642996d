"""Model serving: `conveyor serve` vs `mlflow models serve` on one visa model, and batch scoring.

Run from the repository root::

    .venv/bin/python bench/serve.py [--duration 8] [--warmup 2] [--clients 1,8] [--rounds 1]
                                    [--batch-rows 500000] [--batch-repeat 3]

One run trains the visa example in a temporary folder (`conveyor init --example visa` +
`conveyor run`), saves the production model a second time with `mlflow.sklearn.save_model` in
the peer venv (bench/.venv-peers, see bench/_peers.py), then serves it with each server in turn,
one server process alive at a time, and drives both with the same single-row requests from a
separate load-generator process. conveyor runs with its production defaults (API keys, the
prediction log), and once more with ``--no-log-predictions`` for information. Batch scoring
(`conveyor predict`) is compared with a bare in-process `model.predict` on the same rows.
The image `conveyor init` writes is built with podman (`conveyor build-image`, from a wheel of
this checkout) and its registry-mode server is driven like the others: its throughput against
`conveyor serve` on the host, and the image's size (skipped, with the reason, without podman).

Prints one table (measure | value | goal | ok?). It is a report, not a test: the exit code is
always 0 and a missed goal shows as FAIL in the ok? column. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _container
from _report import Row, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MODEL_REF = "visa-approval@production"
THROUGHPUT_GOAL = 3.0  # conveyor req/s >= 3x MLflow's at the highest client count
P99_GOAL = 1 / 3  # conveyor p99 <= 1/3 of MLflow's at the highest client count
BATCH_GOAL = 0.8  # conveyor predict rows/s >= 0.8x in-process model.predict
CONTAINER_GOAL = 0.9  # the image's server req/s >= 0.9x `conveyor serve` on the host
IMAGE_MB_GOAL = 600  # the image with the visa model, uncompressed (podman's size)
CHECK_ROWS = 200  # rows whose labels must agree everywhere
POOL_ROWS = 2000  # distinct request bodies the load generator cycles through
NOISY_CORES = 0.1  # other processes' CPU during a load level above which the run is flagged
START_TIMEOUT_S = 180
CHILD_TIMEOUT_S = 900
# Settings that would point either side at someone else's store.
_ENV_OVERRIDES = (
    "CONVEYOR_PROJECT",
    "CONVEYOR_METADATA_URL",
    "CONVEYOR_ARTIFACTS_URI",
    "CONVEYOR_SERVE_SETTINGS",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
)


def say(msg: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[serve] {msg}", file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    from _peers import NO_TELEMETRY

    env = {k: v for k, v in os.environ.items() if k not in _ENV_OVERRIDES}
    env.update(NO_TELEMETRY, **extra)  # MLflow's server must not phone home either
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], what: str) -> str:
    """Run a command to completion; its stdout.

    Raises:
        RuntimeError: it failed (the message has its output tail).
    """
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
        timeout=CHILD_TIMEOUT_S,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-3000:]
        raise RuntimeError(f"{what} exited {proc.returncode}:\n{tail}")
    return proc.stdout


# -- the load generator (a separate process: `serve.py --loadgen SPEC.json`) ---------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """``(status, body, server_closes)`` of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        return status, b"".join(parts), close
    if length is None:
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop load: ``clients`` keep-alive connections, each sending one request at a time."""
    host, port, clients = spec["host"], spec["port"], spec["clients"]
    extra = "".join(f"{k}: {v}\r\n" for k, v in spec["headers"].items())
    requests = []
    for body in spec["bodies"]:
        raw = body.encode()
        requests.append(
            (
                f"POST {spec['path']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n{extra}\r\n"
            ).encode()
            + raw
        )
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    samples: list[str] = []
    total = 0
    start = time.perf_counter()
    measure_from = start + spec["warmup"]
    end = measure_from + spec["duration"]

    async def client(i: int) -> None:
        nonlocal total
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        k = i * (len(requests) // clients)
        while time.perf_counter() < end:
            request = requests[k % len(requests)]
            k += 1
            sent = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                reader, writer = conn
                writer.write(request)
                status, body, close = await asyncio.wait_for(_read_response(reader), 60)
                if close:
                    writer.close()
                    conn = None
                key = str(status)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                status, body, key = 0, str(exc).encode(), type(exc).__name__
                if conn is not None:
                    conn[1].close()
                    conn = None
            done = time.perf_counter()
            total += 1
            if measure_from <= done <= end:
                latencies.append(done - sent)
                statuses[key] = statuses.get(key, 0) + 1
                if status != 200 and len(samples) < 3:
                    samples.append(f"{key}: {body[:300].decode(errors='replace')}")
        if conn is not None:
            conn[1].close()

    cpu = time.process_time()
    await asyncio.gather(*(client(i) for i in range(clients)))
    cpu = time.process_time() - cpu
    ordered = sorted(latencies)
    ok = statuses.get("200", 0)
    return {
        "clients": clients,
        "requests": len(ordered),
        "total_requests": total,
        "ok": ok,
        "errors": len(ordered) - ok,
        "statuses": statuses,
        "error_samples": samples,
        "rps": len(ordered) / spec["duration"],
        "p50": _percentile(ordered, 0.50) if ordered else float("nan"),
        "p99": _percentile(ordered, 0.99) if ordered else float("nan"),
        "wall": time.perf_counter() - start,
        "cpu": cpu,
    }


def loadgen_main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    print(json.dumps(asyncio.run(_load(spec))))
    return 0


# -- servers -------------------------------------------------------------------------------------


def _tree_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of ``pid`` and its descendants, from /proc (Linux only)."""
    tick = os.sysconf("SC_CLK_TCK")
    seen, todo, total = set(), [pid], 0.0
    try:
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
    except (OSError, ValueError):
        return None if p == pid else total
    return total


def _machine_busy() -> float | None:
    """CPU seconds all processes have used since boot (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server subprocess in its own process group (killed as a group)."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str
    path: str  # the prediction route
    headers: dict[str, str] = field(default_factory=dict)
    has_metrics: bool = False  # conveyor's /metrics (Prometheus text)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until ``ready_path`` answers 200.

        Raises:
            RuntimeError: the process exited or did not get ready (its output tail is in the
                message).
        """
        import httpx

        self.log = self.cwd / f"{self.name.split()[0].lower()}-{self.port}.log"
        started = time.perf_counter()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited {self.proc.returncode} before it was ready:\n{self.tail()}"
                )
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} not ready after {START_TIMEOUT_S} s:\n{self.tail()}"
                )
            time.sleep(0.1)
        self.started_in = time.perf_counter() - started

    def tail(self, chars: int = 3000) -> str:
        if self.log is None or not self.log.exists():
            return "(no output)"
        return self.log.read_text(errors="replace").strip()[-chars:] or "(no output)"

    def cpu(self) -> float | None:
        return None if self.proc is None else _tree_cpu(self.proc.pid)

    def model_calls(self) -> tuple[float, float, float] | None:
        """conveyor's ``(model calls, rows, seconds in the predict stage)`` so far."""
        if not self.has_metrics:
            return None
        import httpx

        text = httpx.get(self.url + "/metrics", headers=self.headers, timeout=10).text
        wanted = {
            "conveyor_batch_rows_count": 0.0,
            "conveyor_batch_rows_sum": 0.0,
            'conveyor_stage_seconds_sum{stage="predict"}': 0.0,
        }
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name in wanted:
                wanted[name] = float(value)
        calls, rows, seconds = wanted.values()
        return calls, rows, seconds

    def stop(self) -> None:
        """Terminate the whole process group (uvicorn may be a child), then kill if needed."""
        if self.proc is None:
            return
        group = self.proc.pid
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _group_alive(group, self.proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _group_alive(group, self.proc):
                break
        self.proc = None


def _group_alive(group: int, leader: subprocess.Popen[bytes]) -> bool:
    """Whether a process of ``group`` is still running (zombies do not count: an orphaned child
    may never be reaped in a container whose PID 1 does not reap)."""
    leader.poll()
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


@dataclass
class Level:
    """One load level's result."""

    rps: float
    p50: float
    p99: float
    requests: int
    errors: int
    cpu_per_request: float | None
    loadgen_cpu: float
    other_cpu: float | None  # cores used by processes other than the server and load generator
    samples: list[str]
    rows_per_call: float | None = None  # conveyor's micro-batches (whole run, warm-up included)
    seconds_per_call: float | None = None


def drive(server: Server, bodies: list[str], clients: int, warmup: float, duration: float) -> Level:
    """Run the load generator against ``server`` in its own process."""
    assert server.log is not None
    spec_file = server.cwd / f"loadgen-{server.port}-{clients}.json"
    spec = {
        "host": "127.0.0.1",
        "port": server.port,
        "path": server.path,
        "headers": server.headers,
        "bodies": bodies,
        "clients": clients,
        "warmup": warmup,
        "duration": duration,
    }
    spec_file.write_text(json.dumps(spec))
    calls_before, cpu_before = server.model_calls(), server.cpu()
    busy_before, own_before, started = _machine_busy(), time.process_time(), time.perf_counter()
    out = run(
        [sys.executable, str(Path(__file__).resolve()), "--loadgen", str(spec_file)],
        cwd=server.cwd,
        env=clean_env(),
        what="load generator",
    )
    busy_after, own_after, wall = (
        _machine_busy(),
        time.process_time(),
        time.perf_counter() - started,
    )
    cpu_after, calls_after = server.cpu(), server.model_calls()
    result = json.loads(out.strip().splitlines()[-1])
    other = None
    if None not in (busy_before, busy_after, cpu_before, cpu_after):
        assert busy_before is not None and busy_after is not None
        assert cpu_before is not None and cpu_after is not None
        used = busy_after - busy_before - (cpu_after - cpu_before) - (own_after - own_before)
        # the load generator's start-up and its own CPU are not someone else's
        other = max(0.0, used - result["cpu"] - 0.15) / wall
    per_request = rows_per_call = seconds_per_call = None
    if cpu_before is not None and cpu_after is not None and result["total_requests"]:
        per_request = (cpu_after - cpu_before) / result["total_requests"]
    if calls_before is not None and calls_after is not None:
        calls, rows, seconds = (a - b for a, b in zip(calls_after, calls_before, strict=True))
        if calls:
            rows_per_call, seconds_per_call = rows / calls, seconds / calls
    return Level(
        rps=result["rps"],
        p50=result["p50"],
        p99=result["p99"],
        requests=result["requests"],
        errors=result["errors"],
        cpu_per_request=per_request,
        loadgen_cpu=result["cpu"] / result["wall"],
        other_cpu=other,
        samples=result["error_samples"],
        rows_per_call=rows_per_call,
        seconds_per_call=seconds_per_call,
    )


def labels_over_http(server: Server, bodies: list[str]) -> list[Any]:
    """One single-row request per body; the label of each (a non-200 raises)."""
    import httpx

    got: list[Any] = []
    headers = {"Content-Type": "application/json", **server.headers}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        for body in bodies:
            resp = client.post(server.path, content=body)
            if resp.status_code != 200:
                raise RuntimeError(f"{server.name}: {resp.status_code} {resp.text[:500]}")
            got.extend(resp.json()["predictions"])  # the same key on both servers
    return got


# -- setup ---------------------------------------------------------------------------------------


MLFLOW_SAVE = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.filterwarnings("ignore")
    import joblib, pandas as pd, sklearn, lightgbm, mlflow, mlflow.sklearn
    from mlflow.models import infer_signature

    model_file, records_file, out_dir = sys.argv[1:4]
    model = joblib.load(model_file)
    frame = pd.DataFrame(json.loads(open(records_file).read()))
    started = time.perf_counter()
    signature = infer_signature(frame, model.predict(frame))
    # cloudpickle: MLflow 3's default (skops) refuses LightGBM's types unless they are listed.
    mlflow.sklearn.save_model(
        model, out_dir, serialization_format="cloudpickle", signature=signature
    )
    print(json.dumps({
        "save_s": time.perf_counter() - started,
        "mlflow": mlflow.__version__,
        "scikit-learn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
        "pandas": pd.__version__,
    }))
    """
)


def request_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` valid visa rows without the target, as JSON-ready dicts (Python scalars)."""
    from conveyor.examples.visa.generate import generate

    frame = generate(n_rows=n, seed=seed, dirt=False).drop(columns=["case_status"])
    return [
        {str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


@dataclass
class Setup:
    root: Path
    project: Path
    model: Any
    version: str
    estimator: str
    train_s: float
    api_key: str
    mlflow_dir: Path | None
    mlflow_info: dict[str, Any]
    mlflow_error: str | None
    records: list[dict[str, Any]]
    image: _container.Image | None = None
    image_error: str | None = None  # why there is no container column


def setup(root: Path, conveyor_bin: Path) -> Setup:
    import joblib
    import lightgbm
    import pandas as pd
    import sklearn

    from _peers import PeerEnvError, peer_python
    from conveyor.project import Project
    from conveyor.registry import versions

    project = root / "visa"
    env = clean_env()
    say("conveyor init --example visa + conveyor run (trains: about a minute) ...")
    started = time.perf_counter()
    run(
        [str(conveyor_bin), "init", str(project), "--example", "visa"],
        cwd=root,
        env=env,
        what="init",
    )
    run([str(conveyor_bin), "run", "-p", str(project)], cwd=root, env=env, what="conveyor run")
    train_s = time.perf_counter() - started
    with Project.load(project) as proj:
        model = proj.load_model(MODEL_REF)
        record = versions.resolve(proj.metadata, MODEL_REF)
        version = f"{record.name}:{record.version}"
    estimator = type(model.steps[-1][1]).__name__ if hasattr(model, "steps") else type(model)
    key = json.loads(
        run(
            [str(conveyor_bin), "keys", "create", "--name", "bench", "--json", "-p", str(project)],
            cwd=root,
            env=env,
            what="keys create",
        )
    )["key"]
    records = request_rows(POOL_ROWS, seed=7)
    model_file, records_file = root / "model.joblib", root / "records.json"
    joblib.dump(model, model_file)
    records_file.write_text(json.dumps(records[:CHECK_ROWS]))

    mlflow_dir: Path | None = root / "mlflow-model"
    info: dict[str, Any] = {}
    error = None
    try:
        python = peer_python()
        script = root / "mlflow_save.py"
        script.write_text(MLFLOW_SAVE)
        say("mlflow.sklearn.save_model in the peer venv ...")
        out = run(
            [str(python), str(script), str(model_file), str(records_file), str(mlflow_dir)],
            cwd=root,
            env=clean_env(PYTHONPATH=str(REPO / "src")),
            what="mlflow save_model",
        )
        info = json.loads(out.strip().splitlines()[-1])
        ours = {"scikit-learn": sklearn.__version__, "lightgbm": lightgbm.__version__}
        ours["pandas"] = pd.__version__
        info["differs"] = [f"{k} {info[k]} vs {v}" for k, v in ours.items() if info[k] != v]
    except (PeerEnvError, RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"MLflow side not available: {error}", file=sys.stderr)
        mlflow_dir = None
    return Setup(
        root,
        project,
        model,
        version,
        str(estimator),
        train_s,
        key,
        mlflow_dir,
        info,
        error,
        records,
    )


def conveyor_server(s: Setup, conveyor_bin: Path, *, log_predictions: bool = True) -> Server:
    port = free_port()
    cmd = [str(conveyor_bin), "serve", "--model", MODEL_REF, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "-p", str(s.project)]
    if not log_predictions:
        cmd.append("--no-log-predictions")
    headers = {"X-API-Key": s.api_key}
    return Server(
        "conveyor serve", cmd, clean_env(), s.root, port, "/ready", "/v1/predict", headers, True
    )


@dataclass
class ContainerServer(Server):
    """The image in registry mode under podman: ``proc`` is the attached ``podman run``; CPU is
    the container's own (its PID 1's tree), and the container is removed on stop."""

    container: str = ""
    podman: str = "podman"

    def cpu(self) -> float | None:
        pid = _container.container_pid(self.podman, self.container)
        return None if pid is None else _tree_cpu(pid)

    def stop(self) -> None:
        super().stop()
        _container.remove(self.podman, self.container)


def container_server(s: Setup) -> Server:
    assert s.image is not None
    port = free_port()
    _container.open_store(s.project)
    name, cmd = _container.run_command(s.image, s.project, port)
    headers = {"X-API-Key": s.api_key}
    return ContainerServer(
        "container (podman)",
        cmd,
        clean_env(),
        s.root,
        port,
        "/ready",
        "/v1/predict",
        headers,
        True,
        container=name,
        podman=s.image.podman,
    )


def mlflow_server(s: Setup) -> Server:
    from _peers import PEERS_DIR

    assert s.mlflow_dir is not None
    port = free_port()
    peer_bin = PEERS_DIR / "bin"
    cmd = [str(peer_bin / "mlflow"), "models", "serve", "-m", str(s.mlflow_dir)]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    env = clean_env(
        PATH=f"{peer_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # it runs `uvicorn` from PATH
        PYTHONPATH=str(REPO / "src"),  # the pipeline's derive step imports conveyor
    )
    return Server("mlflow models serve", cmd, env, s.root, port, "/ping", "/invocations")


@dataclass(frozen=True)
class Side:
    """One server configuration measured under load."""

    key: str
    label: str  # in the table
    body_key: str  # the request's list of records
    check_labels: bool


SIDES = {
    "conveyor": Side("conveyor", "conveyor /v1/predict", "records", True),
    "mlflow": Side("mlflow", "MLflow /invocations", "dataframe_records", True),
    "conveyor-nolog": Side(
        "conveyor-nolog", "conveyor, --no-log-predictions (info)", "records", False
    ),
    "container": Side(
        "container", "container (podman, registry mode) /v1/predict", "records", True
    ),
}


def make_server(side: str, s: Setup, conveyor_bin: Path) -> Server:
    if side == "mlflow":
        return mlflow_server(s)
    if side == "container":
        return container_server(s)
    return conveyor_server(s, conveyor_bin, log_predictions=side == "conveyor")


# -- the report ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def level_text(levels: list[Level]) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    text = (
        f"{med([x.rps for x in levels]):,.0f} req/s, p50 {ms(med([x.p50 for x in levels]))}, "
        f"p99 {ms(med([x.p99 for x in levels]))}, {sum(x.errors for x in levels)} errors "
        f"/ {sum(x.requests for x in levels):,}"
    )
    if len(levels) > 1:
        text += f" (median of {len(levels)} rounds)"
    return text


@dataclass
class Online:
    start_s: dict[str, list[float]] = field(default_factory=dict)
    levels: dict[tuple[str, int], list[Level]] = field(default_factory=dict)
    labels: dict[str, list[Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def measure_online(s: Setup, args: argparse.Namespace, conveyor_bin: Path) -> Online:
    """Each side in turn (one server alive at a time), every client level; ``--rounds`` times."""
    result = Online()
    sides = ["conveyor"]
    if s.mlflow_dir is not None:
        sides.append("mlflow")
    if not args.skip_log_off:
        sides.append("conveyor-nolog")
    if s.image is not None:
        sides.append("container")
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for key in order:
            if key in result.errors:
                continue
            side = SIDES[key]
            bodies = [json.dumps({side.body_key: [row]}) for row in s.records]
            server = make_server(key, s, conveyor_bin)
            say(f"round {r + 1}/{args.rounds}: {side.label}: starting on port {server.port} ...")
            try:
                server.start()
                result.start_s.setdefault(key, []).append(server.started_in)
                if side.check_labels and key not in result.labels:
                    result.labels[key] = labels_over_http(server, bodies[:CHECK_ROWS])
                for clients in args.clients:
                    say(f"  {clients} client(s), {args.warmup:g}+{args.duration:g} s")
                    level = drive(server, bodies, clients, args.warmup, args.duration)
                    if level.samples:
                        print(f"{side.label} errors: {level.samples}", file=sys.stderr)
                    result.levels.setdefault((key, clients), []).append(level)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                result.errors[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
                print(f"{server.name} failed: {exc}", file=sys.stderr)
            finally:
                server.stop()
    return result


def in_process_labels(model: Any, rows: list[dict[str, Any]]) -> list[Any]:
    import pandas as pd

    return [v.item() if hasattr(v, "item") else v for v in model.predict(pd.DataFrame(rows))]


def one_row_predict(model: Any, rows: list[dict[str, Any]]) -> float:
    """Median seconds of ``model.predict`` on a one-row frame (the floor of a request)."""
    import pandas as pd

    frames = [pd.DataFrame([r]) for r in rows[:50]]
    for f in frames[:5]:
        model.predict(f)
    times = []
    for f in frames:
        started = time.perf_counter()
        model.predict(f)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def online_rows(s: Setup, online: Online, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    measured = [k for k in SIDES if any(key == k for key, _ in online.levels)]
    for key, label in (
        ("conveyor", "conveyor serve"),
        ("mlflow", "mlflow models serve"),
        ("container", "container (podman run)"),
    ):
        if key in online.start_s:
            rows.append(Row(f"{label}: start to ready, 1 worker", fmt_s(online.start_s[key])))
    for clients in args.clients:
        cpu, calls = [], []
        for key in measured:
            levels = online.levels.get((key, clients), [])
            if not levels:
                continue
            info = key == "conveyor-nolog"
            errors = sum(x.errors for x in levels)
            rows.append(
                Row(
                    f"{SIDES[key].label}, 1 row, {clients} client(s)",
                    level_text(levels),
                    "-" if info else "0 errors",
                    "-" if info else ("ok" if errors == 0 else "FAIL"),
                )
            )
            per = [x.cpu_per_request for x in levels if x.cpu_per_request is not None]
            if per:
                cpu.append(f"{key} {ms(statistics.median(per))}")
            batches = [x for x in levels if x.rows_per_call is not None]
            if batches:
                calls.append(
                    f"{key} {statistics.median([x.rows_per_call or 0 for x in batches]):.1f} rows"
                    f" in {ms(statistics.median([x.seconds_per_call or 0 for x in batches]))}"
                )
        if cpu:
            here = [x for k, v in online.levels.items() if k[1] == clients for x in v]
            gen = statistics.median([x.loadgen_cpu for x in here])
            rows.append(
                Row(
                    f"  server CPU per request, {clients} client(s) (load generator: "
                    f"{gen:.0%} of a core)",
                    ", ".join(cpu),
                )
            )
        if calls:
            rows.append(
                Row(
                    f"  conveyor per model call (micro-batch), {clients} client(s)",
                    ", ".join(calls),
                )
            )
    top = max(args.clients)
    theirs = online.levels.get(("mlflow", top))
    goal_t, goal_p = f">= {THROUGHPUT_GOAL:.0f}x", f"<= 1/{1 / P99_GOAL:.0f} (x{P99_GOAL:.2f})"
    for key in ("conveyor", "conveyor-nolog"):
        ours = online.levels.get((key, top))
        info = key == "conveyor-nolog"
        if info and not ours:
            continue
        what = " (--no-log-predictions, info)" if info else ""
        if ours and theirs:
            t = statistics.median([x.rps for x in ours]) / statistics.median(
                [x.rps for x in theirs]
            )
            p = statistics.median([x.p99 for x in ours]) / statistics.median(
                [x.p99 for x in theirs]
            )
            rows.append(
                Row(
                    f"throughput conveyor / MLflow, {top} clients{what}",
                    f"{t:.2f}x",
                    "-" if info else goal_t,
                    "-" if info else ("ok" if t >= THROUGHPUT_GOAL else "FAIL"),
                )
            )
            rows.append(
                Row(
                    f"p99 latency conveyor / MLflow, {top} clients{what}",
                    f"x{p:.2f} ({1 / p:.1f}x lower)" if p < 1 else f"x{p:.2f}",
                    "-" if info else goal_p,
                    "-" if info else ("ok" if p <= P99_GOAL else "FAIL"),
                )
            )
        elif not info:
            for side, why in online.errors.items():
                rows.append(Row(f"{side}: not measured (reason on stderr)", why, "-", "FAIL"))
            if s.mlflow_error:
                rows.append(
                    Row("MLflow: not measured (reason on stderr)", s.mlflow_error[:80], "-", "FAIL")
                )
            rows.append(Row(f"throughput conveyor / MLflow, {top} clients", "n/a", goal_t, "FAIL"))
            rows.append(Row(f"p99 latency conveyor / MLflow, {top} clients", "n/a", goal_p, "FAIL"))
    rows.append(
        Row(
            "  in-process model.predict, 1-row frame (the floor of a request)",
            fmt(one_row_predict(s.model, s.records)),
        )
    )
    # The same labels everywhere.
    expected = in_process_labels(s.model, s.records[:CHECK_ROWS])
    parts, ok = [], True
    for key in ("conveyor", "mlflow", *(["container"] if s.image else [])):
        labels = online.labels.get(key)
        if labels is None:
            parts.append(f"{key} n/a")
            ok = False
            continue
        same = sum(a == b for a, b in zip(labels, expected, strict=False))
        ok = ok and same == len(expected) == len(labels)
        parts.append(f"{key} {same}/{len(expected)}")
    rows.append(
        Row(
            f"same labels as in-process model.predict, {CHECK_ROWS} single-row requests",
            ", ".join(parts),
            "all",
            "ok" if ok else "FAIL",
        )
    )
    rows += container_rows(s, online, top)
    noise = [
        (x.other_cpu, f"{key}, {clients} client(s)")
        for (key, clients), levels in online.levels.items()
        for x in levels
        if x.other_cpu is not None
    ]
    if noise:
        worst, where = max(noise)
        text = (
            f"max {worst:.2f} cores ({where}), median {statistics.median(n for n, _ in noise):.2f}"
        )
        if worst > NOISY_CORES:
            text += ": DISTURBED, numbers not reliable"
            say(f"other processes used up to {worst:.2f} cores during the load levels")
        rows.append(Row("other processes' CPU during the load levels (noise)", text))
    return rows


def container_rows(s: Setup, online: Online, top: int) -> list[Row]:
    """The image: its size and build time, and its server's throughput against the host's."""
    goal_t, goal_mb = f">= {CONTAINER_GOAL}x", f"< {IMAGE_MB_GOAL} MB"
    if s.image is None:
        why = s.image_error or "not measured"
        return [Row("container: skipped", why[:100])]
    mb = s.image.size_bytes / 1e6
    rows = [
        Row(
            f"image build (conveyor build-image, podman, FROM {s.image.base})", fmt(s.image.build_s)
        ),
        Row(
            "image size (visa model served from the mounted store)",
            f"{mb:,.0f} MB",
            goal_mb,
            "ok" if mb < IMAGE_MB_GOAL else "FAIL",
        ),
    ]
    ours, host = online.levels.get(("container", top)), online.levels.get(("conveyor", top))
    if ours and host:
        ratio = statistics.median([x.rps for x in ours]) / statistics.median([x.rps for x in host])
        rows.append(
            Row(
                f"throughput container / conveyor serve on the host, {top} clients",
                f"{ratio:.2f}x",
                goal_t,
                "ok" if ratio >= CONTAINER_GOAL else "FAIL",
            )
        )
    else:
        why = online.errors.get("container", "not measured")
        rows.append(
            Row(f"throughput container / conveyor serve, {top} clients", why[:80], goal_t, "FAIL")
        )
    return rows


def batch_rows(s: Setup, args: argparse.Namespace, conveyor_bin: Path) -> list[Row]:
    import numpy as np
    import pandas as pd

    from conveyor.examples.visa.generate import generate

    n = args.batch_rows
    big, out = s.root / "big.parquet", s.root / "out.parquet"
    say(f"batch: {n:,} rows ...")
    generate(n_rows=n, seed=11, dirt=False).drop(columns=["case_status"]).to_parquet(big)
    cli, walls = [], []
    for i in range(args.batch_repeat):
        say(f"  conveyor predict {i + 1}/{args.batch_repeat}")
        cmd = [str(conveyor_bin), "predict", "--model", MODEL_REF, "--input", str(big)]
        cmd += ["--output", str(out), "--json", "-p", str(s.project)]
        started = time.perf_counter()
        summary = json.loads(run(cmd, cwd=s.root, env=clean_env(), what="conveyor predict"))
        walls.append(time.perf_counter() - started)
        if summary["rows"] != n:
            raise RuntimeError(f"conveyor predict scored {summary['rows']} rows, not {n}")
        cli.append(summary["seconds"])
    frame: pd.DataFrame = pd.read_parquet(big)
    inproc, labels = [], None
    for _ in range(args.batch_repeat):
        started = time.perf_counter()
        labels = s.model.predict(frame)
        inproc.append(time.perf_counter() - started)
    scored = pd.read_parquet(out, columns=["prediction"])["prediction"].to_numpy()
    same = int(np.sum(scored.astype(object) == np.asarray(labels, dtype=object)))
    t_cli, t_in = statistics.median(cli), statistics.median(inproc)
    ratio = t_in / t_cli
    return [
        Row(
            f"conveyor predict, {n:,} rows parquet -> parquet (scoring, from --json)",
            f"{fmt_s(cli)}, {n / t_cli:,.0f} rows/s",
        ),
        Row("  same, whole command (start-up, imports, model load)", fmt_s(walls)),
        Row(
            f"in-process model.predict(frame), same {n:,} rows",
            f"{fmt_s(inproc)}, {n / t_in:,.0f} rows/s",
        ),
        Row(
            "batch rows/s: conveyor predict / in-process predict",
            f"{ratio:.2f}x",
            f">= {BATCH_GOAL}x",
            "ok" if ratio >= BATCH_GOAL else "FAIL",
        ),
        Row(
            "conveyor predict labels == in-process labels",
            f"{same:,}/{n:,}",
            "all",
            "ok" if same == n else "FAIL",
        ),
    ]


def fmt_s(values: Sequence[float]) -> str:
    if len(values) == 1:
        return fmt(values[0])
    return (
        f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))}, n={len(values)})"
    )


def bench(args: argparse.Namespace, root: Path) -> list[Row]:
    conveyor_bin = Path(sys.executable).parent / "conveyor"
    s = setup(root, conveyor_bin)
    info = s.mlflow_info
    if info:
        peer = ", ".join(f"{k} {info[k]}" for k in ("mlflow", "scikit-learn", "lightgbm", "pandas"))
        differs = "; ".join(info["differs"])
        peer += f" (DIFFERS: {differs})" if differs else " (same as conveyor's venv)"
    else:
        peer = f"n/a: {s.mlflow_error}"
    rows = [
        Row("visa project: conveyor init --example visa + conveyor run", fmt(s.train_s)),
        Row("  model served", f"{s.version} ({s.estimator} in an sklearn Pipeline)"),
        Row("  peer venv", peer),
    ]
    if info:
        rows.append(
            Row("  mlflow.sklearn.save_model (cloudpickle + signature)", fmt(info["save_s"]))
        )
    if args.skip_container:
        s.image_error = "--skip-container"
    else:
        try:
            s.image = _container.build(s.project, conveyor_bin, base=args.container_base, say=say)
        except (
            _container.ContainerUnavailableError,
            RuntimeError,
            subprocess.TimeoutExpired,
        ) as exc:
            s.image_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            say(f"container column skipped: {exc}")
    online = measure_online(s, args, conveyor_bin)
    rows += online_rows(s, online, args)
    rows += section("batch scoring", f">= {BATCH_GOAL}x", lambda: batch_rows(s, args, conveyor_bin))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument(
        "--clients",
        type=lambda v: sorted({int(c) for c in v.split(",")}),
        default=[1, 8],
        help="concurrent clients per level, comma-separated (default 1,8)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="start each server this many times, alternating"
    )
    parser.add_argument("--batch-rows", type=int, default=500_000, help="rows for batch scoring")
    parser.add_argument("--batch-repeat", type=int, default=3, help="batch measurements")
    parser.add_argument(
        "--skip-log-off",
        action="store_true",
        help="do not measure conveyor with --no-log-predictions as well (info rows)",
    )
    parser.add_argument(
        "--skip-container", action="store_true", help="do not build and measure the image"
    )
    parser.add_argument(
        "--container-base",
        help=f"the image's BASE (default: {_container.DEBIAN_BASE} when podman has it, else "
        "python:3.11-slim)",
    )
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        return loadgen_main(args.loadgen)
    if min(args.clients) < 1 or args.rounds < 1 or args.batch_repeat < 1 or args.duration <= 0:
        parser.error("--clients, --rounds and --batch-repeat must be >= 1, --duration > 0")
    for var in _ENV_OVERRIDES:
        os.environ.pop(var, None)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serve-") as tmp:
        rows = section(
            "model serving",
            f">= {THROUGHPUT_GOAL:.0f}x",
            lambda: bench(args, Path(tmp)),
        )
    print(
        f"\nmodel serving: conveyor serve vs mlflow models serve, 1 worker each, single-row "
        f"requests, {args.warmup:g}+{args.duration:g} s per level (python "
        f"{sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} cpus)\n"
    )
    print_table(rows)
    print(
        "\nconveyor runs as `conveyor serve` with its defaults: API-key auth (X-API-Key) and the "
        "prediction log on. MLflow runs as `mlflow models serve --env-manager local` with its "
        "defaults (uvicorn access log on, schema enforcement from the saved signature). "
        "Latencies are measured by the client, end to end over loopback."
    )
    print(f"benchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
