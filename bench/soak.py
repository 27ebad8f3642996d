"""Soak: `conveyor serve` under mixed good and bad traffic, with hot swaps and key rotations.

Run from the repository root::

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 4] [--rate 40] [--every 30]
    .venv/bin/python bench/soak.py --minutes 1      # a quick run (about 2 minutes in all)

One run trains two small versions of the visa model in a temporary folder, starts
`conveyor serve` (1 worker, its defaults: API keys, prediction log, 1 s alias poll) as a real
subprocess, and drives it for ``--minutes`` with a weighted mix of requests: valid predictions
and files, malformed and invalid bodies, bad and revoked keys, and the health, model and
metrics routes. Every ``--every`` seconds it moves ``production`` to the other version and
rotates the API key (create a key, switch the clients to it, revoke the old one), and measures
how long the server takes to follow.

Prints a table (measure | value | goal | ok?), the responses per request kind and every swap and
rotation. Unlike the other benchmarks it is a pass/fail soak: the exit code is 1 when a goal is
missed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from _report import Row, fmt, print_table
from serve import Server, clean_env, free_port, request_rows, run

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from conveyor.project import Project

    SendFn = Callable[[httpx.Client, str], httpx.Response]

MODEL = "visa-approval"
SWAP_GOAL_S = 5.0  # the new version answers /v1/model within this after the promote
KEY_GOAL_S = 2.0  # a revoked key is refused, a new key accepted, within this
RSS_GROWTH_GOAL = 0.10  # the last minute's RSS at most 10% above minute 1's
WAIT_LIMIT_S = 30.0  # stop waiting for a swap or a key after this (a miss)
PROBE_EVERY_S = 0.05
RSS_EVERY_S = 2.0
SAMPLES_SHOWN = 3
# Two small, fast versions with the same inputs (same data and schema). v2 is trained with
# staging as its alias: it has no champion to beat, so it is approved too.
_LOGREG = "{name: logreg, estimator: sklearn.linear_model.LogisticRegression, params: {%s}}"
VERSION_SETTINGS = (
    [f"training.candidates=[{_LOGREG % 'max_iter: 500'}]"],
    [
        f"training.candidates=[{_LOGREG % 'max_iter: 500, C: 0.05'}]",
        "registry.promote.alias=staging",
    ],
)


def say(msg: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


# -- setup ---------------------------------------------------------------------------------------


@dataclass
class Setup:
    root: Path
    project: Path
    versions: tuple[int, int]  # (production at the start, the other one)
    key: str  # called soak-0
    revoked_key: str
    seconds: float


def setup(root: Path) -> Setup:
    """A visa project with two approved versions (production = the first) and two API keys, one
    of them revoked, made with the CLI as a user would."""
    started = time.perf_counter()
    project = root / "visa"

    def cli(*args: str, what: str) -> str:
        cmd = [str(Path(sys.executable).parent / "conveyor"), *args]
        return run(cmd, cwd=root, env=clean_env(), what=what)

    say("conveyor init --example visa + two small training runs ...")
    cli("init", str(project), "--example", "visa", what="init")
    for settings in VERSION_SETTINGS:
        cli("run", "-p", str(project), *[f"--set={item}" for item in settings], what="run")
    listed = json.loads(cli("models", "list", MODEL, "--json", "-p", str(project), what="list"))
    approved = sorted(m["version"] for m in listed if m["status"] == "approved")
    production = [m["version"] for m in listed if "production" in m["aliases"]]
    if len(approved) < 2 or not production:
        raise RuntimeError(f"expected two approved versions and a production alias: {listed}")
    keys = [
        json.loads(cli("keys", "create", "-n", name, "--json", "-p", str(project), what="key"))
        for name in ("soak-0", "soak-revoked")
    ]
    cli("keys", "revoke", "soak-revoked", "-r", "soak", "-p", str(project), what="revoke")
    other = next(v for v in approved if v != production[0])
    return Setup(
        root,
        project,
        (production[0], other),
        keys[0]["key"],
        keys[1]["key"],
        time.perf_counter() - started,
    )


def start_server(s: Setup) -> Server:
    """`conveyor serve` on a free loopback port, 1 worker, ready."""
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "conveyor"), "serve", "--model", f"{MODEL}@production"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "-p", str(s.project)]
    server = Server("conveyor serve", cmd, clean_env(), s.root, port, "/ready", "/v1/predict")
    server.start()
    return server


# -- the traffic ---------------------------------------------------------------------------------

CURRENT = "current"  # send the key the clients use now (it changes at each rotation)


@dataclass
class Keys:
    """The key every client sends now (one attribute: reads and writes are atomic)."""

    current: str


@dataclass(frozen=True)
class Kind:
    """One kind of request: how to send it (client, current key) and the statuses it may get."""

    name: str
    weight: int
    expect: frozenset[int]
    send: SendFn
    timed: bool = False  # a valid single-row prediction: its latency is reported


def sender(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    media: str = "application/json",
    key: str | None = CURRENT,
    bearer: bool = False,
    upload: str | None = None,  # send ``body`` as this file name (multipart)
    chunked: bool = False,  # no Content-Length: the server must stop reading at its limit
) -> SendFn:
    """A function sending one such request with a client and the current key."""

    def chunks(data: bytes) -> Iterator[bytes]:
        for i in range(0, len(data), 1 << 20):
            yield data[i : i + (1 << 20)]

    def send(client: httpx.Client, current: str) -> httpx.Response:
        token = current if key == CURRENT else key
        headers = {}
        if token is not None:
            headers = {"Authorization": f"Bearer {token}"} if bearer else {"X-API-Key": token}
        if body is None:
            return client.request(method, path, headers=headers)
        if upload is not None:
            files = {"file": (upload, body, media)}
            return client.request(method, path, files=files, headers=headers)
        content = chunks(body) if chunked else body
        return client.request(
            method, path, content=content, headers={**headers, "Content-Type": media}
        )

    return send


def request_kinds(rows: list[dict[str, Any]], revoked_key: str) -> list[Kind]:
    """The traffic mix. Bodies are built once; the valid row is ``rows[0]`` unless said."""
    import pandas as pd

    def body(records: list[dict[str, Any]]) -> bytes:
        return json.dumps({"records": records}).encode()

    def one(drop: str | None = None, **changes: Any) -> bytes:
        return body([{**{k: v for k, v in row.items() if k != drop}, **changes}])

    def csv(records: list[dict[str, Any]]) -> bytes:
        buffer = io.StringIO()
        pd.DataFrame(records).to_csv(buffer, index=False)
        return buffer.getvalue().encode()

    def post(data: bytes, **how: Any) -> SendFn:
        return sender("POST", "/v1/predict", data, **how)

    def upload(data: bytes, name: str = "a.csv", media: str = "text/csv") -> SendFn:
        return sender("POST", "/v1/predict/file", data, media=media, upload=name)

    def get(path: str, **how: Any) -> SendFn:
        return sender("GET", path, **how)

    row, twenty = rows[0], rows[1:21]
    valid = one()
    big = valid + b" " * (9 << 20)  # over the default serving.max_body_mb (8)
    giant = valid.replace(b'"no_of_employees": ', b'"no_of_employees": ' + b"9" * 5000)
    deep = b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    fake = f"cvk_{'0' * 12}_{'x' * 43}"
    bad_csv = csv([{**r, "no_of_employees": "x"} for r in twenty])
    garbage = random.Random(1).randbytes(4096)
    ok, invalid, unreadable = frozenset({200}), frozenset({422}), frozenset({400, 422})

    def status(code: int) -> frozenset[int]:
        return frozenset({code})

    table: list[tuple[str, int, frozenset[int], SendFn]] = [
        ("predict 20 rows", 5, ok, post(body(twenty))),
        ("wrong types", 3, invalid, post(one(no_of_employees="many", prevailing_wage=[1]))),
        ("missing column", 3, invalid, post(one(drop="continent"))),
        ("unknown column", 3, invalid, post(one(colour="blue"))),
        ("unknown category", 2, invalid, post(one(continent="Atlantis"))),
        ("NaN value", 2, invalid, post(one(prevailing_wage=math.nan))),
        ("huge integers", 2, invalid, post(one(no_of_employees=10**400, yr_of_estab=-(10**30)))),
        ("5000-digit integer", 1, unreadable, post(giant)),
        ("empty records", 1, invalid, post(body([]))),
        ("1001 records", 1, invalid, post(body([row] * 1001))),
        ("not an object", 1, invalid, post(b"[1, 2, 3]")),
        ("malformed JSON", 3, status(400), post(valid[:-7])),
        ("not UTF-8", 1, status(400), post(b"\xff\xfe{}")),
        ("nested 100,000 deep", 2, unreadable, post(deep)),
        ("9 MiB body", 1, status(413), post(big)),
        ("9 MiB body, chunked", 1, status(413), post(big, chunked=True)),
        ("text/plain body", 2, status(415), post(valid, media="text/plain")),
        ("no key", 3, status(401), post(valid, key=None)),
        ("wrong key", 2, status(401), post(valid, key=fake)),
        ("revoked key", 2, status(403), post(valid, key=revoked_key, bearer=True)),
        ("CSV file, 20 rows", 3, ok, upload(csv(twenty))),
        ("CSV file, missing columns", 1, invalid, upload(csv([{"a": 1}]))),
        ("CSV file, bad value", 1, invalid, upload(bad_csv)),
        ("CSV file, binary garbage", 1, unreadable, upload(garbage)),
        ("file .xlsx", 1, status(415), upload(b"PK\x03\x04", "a.xlsx", "application/octet-stream")),
        ("GET /health", 2, ok, get("/health", key=None)),
        ("GET /ready", 2, ok, get("/ready", key=None)),
        ("GET /v1/model", 2, ok, get("/v1/model", bearer=True)),
        ("GET /metrics", 1, ok, get("/metrics")),
        ("GET /v1/model, no key", 1, status(401), get("/v1/model", key=None)),
        ("GET unknown path", 1, status(404), get("/v1/nope")),
        ("GET /v1/predict", 1, status(405), get("/v1/predict")),
    ]
    timed = Kind("predict 1 row", 40, ok, post(valid), timed=True)
    return [timed, *(Kind(*entry) for entry in table)]


@dataclass
class Recorder:
    """What the clients saw (thread-safe)."""

    started: float = field(default_factory=time.monotonic)
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status or error)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    answered_by: Counter[tuple[int, int]] = field(default_factory=Counter)  # (minute, version)
    samples: dict[str, list[str]] = field(default_factory=dict)  # first few, by what went wrong
    lock: threading.Lock = field(default_factory=threading.Lock)

    def minute(self, at: float) -> int:
        return int((at - self.started) // 60)

    def _sample(self, what: str, text: str) -> None:
        shown = self.samples.setdefault(what, [])
        if len(shown) < SAMPLES_SHOWN:
            shown.append(text)

    def answer(self, kind: Kind, resp: httpx.Response, sent: float, done: float) -> None:
        status, version = resp.status_code, None
        if kind.timed and status == 200:
            try:
                version = int(resp.json()["model"]["version"])
            except (ValueError, KeyError, TypeError):
                status = 299  # a 200 without the documented body: shown as unexpected
        with self.lock:
            self.by_kind[(kind.name, str(status))] += 1
            if version is not None:
                self.latencies.append((done, done - sent))
                self.answered_by[(self.minute(done), version)] += 1
            sample = f"{kind.name}: {status} {resp.text[:300]!r}"
            if status >= 500:
                self._sample("5xx", sample)
            elif status not in kind.expect:
                self._sample("unexpected status", sample)

    def failure(self, kind: Kind, exc: Exception) -> None:
        """A request without an answer: a connection error (or a bug in this script)."""
        with self.lock:
            self.by_kind[(kind.name, type(exc).__name__)] += 1
            self._sample("no answer", f"{kind.name}: {type(exc).__name__}: {exc}")


def client_loop(
    seed: int, url: str, kinds: list[Kind], keys: Keys, rec: Recorder, until: float, every: float
) -> None:
    """Requests of random kinds until ``until``, at most one per ``every`` s (0: flat out)."""
    rng = random.Random(seed)
    weights = [k.weight for k in kinds]
    next_at = time.monotonic()
    with httpx.Client(base_url=url, timeout=60) as client:
        while (now := time.monotonic()) < until:
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(next_at + every, time.monotonic() - every)  # late: no catch-up burst
            kind = rng.choices(kinds, weights)[0]
            sent = time.monotonic()
            try:
                resp = kind.send(client, keys.current)
            except Exception as exc:  # counted and shown; the soak goes on
                rec.failure(kind, exc)
                continue
            rec.answer(kind, resp, sent, time.monotonic())


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` from /proc/PID/status (Linux; psutil is not in the venv)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def sample_server(server: Server, until: float, out: list[tuple[float, int, float]]) -> None:
    """Every ``RSS_EVERY_S``: ``(at, rss, cpu seconds so far)`` of the server process."""
    assert server.proc is not None
    while time.monotonic() < until:
        rss, cpu = rss_bytes(server.proc.pid), server.cpu()
        if rss is not None and cpu is not None:
            out.append((time.monotonic(), rss, cpu))
        time.sleep(RSS_EVERY_S)


# -- swaps and key rotations ---------------------------------------------------------------------


@dataclass
class Event:
    at: float  # seconds since the traffic started
    what: str
    seconds: float | None  # None: not seen within WAIT_LIMIT_S
    goal: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.seconds is not None and self.seconds <= self.goal


def wait_until(check: Callable[[], bool], since: float) -> float | None:
    """Seconds from ``since`` to the answer for which ``check()`` held (polled every
    PROBE_EVERY_S); None when it still did not hold after WAIT_LIMIT_S."""
    while time.monotonic() - since < WAIT_LIMIT_S:
        try:
            if check():
                return time.monotonic() - since
        except httpx.TransportError:
            pass
        time.sleep(PROBE_EVERY_S)
    return None


class Operator:
    """What an operator does every ``--every`` seconds, and how long the server takes to follow.

    It calls what `conveyor models promote`, `keys create` and `keys revoke` call
    (``governance.promote``, ``create_key``, ``revoke_api_key``), in this process, so the clock
    starts when the change is committed. Timed from a CLI command's exit it would start late
    (the server can see the change before the interpreter has exited); from its start it would
    include the CLI's imports.
    """

    def __init__(self, s: Setup, project: Project, url: str, keys: Keys, rec: Recorder) -> None:
        self.s, self.project, self.keys, self.rec = s, project, keys, rec
        self.probe = httpx.Client(base_url=url, timeout=10)
        self.serving = s.versions[0]
        self.key_name = "soak-0"
        self.rotations = 0
        self.swap_errors: set[str] = set()

    def _status(self, key: str) -> int:
        return self.probe.get("/v1/model", headers={"X-API-Key": key}).status_code

    def _served(self) -> int | None:
        resp = self.probe.get("/v1/model", headers={"X-API-Key": self.keys.current})
        if resp.status_code != 200:
            return None
        info = resp.json()
        if info.get("swap_error"):
            self.swap_errors.add(str(info["swap_error"]))
        return int(info["version"])

    def swap(self) -> Event:
        """Promote the other version to production; time until /v1/model shows it."""
        from conveyor.registry import governance

        target = next(v for v in self.s.versions if v != self.serving)
        at = time.monotonic() - self.rec.started
        metadata = self.project.metadata
        governance.promote(metadata, MODEL, target, alias="production", reason="soak: swap")
        took = wait_until(lambda: self._served() == target, time.monotonic())
        event = Event(at, f"swap v{self.serving} -> v{target}", took, SWAP_GOAL_S)
        self.serving = target
        return event

    def rotate(self) -> list[Event]:
        """Create a key, wait until it works, switch the clients to it, revoke the old one."""
        from conveyor.serving.auth import create_key

        self.rotations += 1
        old_name, old_key, name = self.key_name, self.keys.current, f"soak-{self.rotations}"
        at = time.monotonic() - self.rec.started
        new_key = create_key(self.project.metadata, name).token
        took = wait_until(lambda: self._status(new_key) == 200, time.monotonic())
        events = [Event(at, f"new key {name} accepted", took, KEY_GOAL_S)]
        if took is None:
            return events  # keep the old key: revoking it would fail every valid request
        self.keys.current, self.key_name = new_key, name
        at = time.monotonic() - self.rec.started
        self.project.metadata.revoke_api_key(old_name, reason="soak: rotated")
        statuses: list[int] = []

        def refused() -> bool:
            statuses.append(self._status(old_key))
            return statuses[-1] in (401, 403)

        took = wait_until(refused, time.monotonic())
        detail = f"({statuses[-1]})" if statuses else ""
        events.append(Event(at, f"key {old_name} refused", took, KEY_GOAL_S, detail))
        return events


def operate(op: Operator, until: float, every: float, events: list[Event]) -> None:
    """Swap, then rotate, every ``every`` seconds until ``until`` (the main thread's loop)."""
    tick = op.rec.started + every
    while tick < until:
        time.sleep(max(0.0, tick - time.monotonic()))
        for event in [op.swap(), *op.rotate()]:
            events.append(event)
            took = "NOT SEEN" if event.seconds is None else fmt(event.seconds)
            say(f"t={event.at:5.0f} s  {event.what} {event.detail} in {took}")
        tick += every


# -- the run and its report ----------------------------------------------------------------------


@dataclass
class Soak:
    """Everything measured in one run."""

    args: argparse.Namespace
    setup: Setup
    kinds: list[Kind]
    rec: Recorder
    samples: list[tuple[float, int, float]]  # (at, server RSS, server CPU seconds)
    events: list[Event]
    start_s: float
    ready_at_end: bool
    tracebacks: list[str]
    swap_errors: set[str]


def soak(args: argparse.Namespace, root: Path) -> Soak:
    from conveyor.project import Project

    s = setup(root)
    say(f"serving {MODEL}@production = v{s.versions[0]} (the other: v{s.versions[1]}) ...")
    kinds = request_kinds(request_rows(200, seed=7), s.revoked_key)
    kinds = [k for k in kinds if not any(x.lower() in k.name.lower() for x in args.exclude)]
    keys, rec = Keys(s.key), Recorder()
    server = start_server(s)
    rec.started = time.monotonic()
    until = rec.started + args.minutes * 60
    samples: list[tuple[float, int, float]] = []
    events: list[Event] = []
    every = args.clients / args.rate if args.rate else 0.0
    threads = [
        threading.Thread(
            target=client_loop, args=(i, server.url, kinds, keys, rec, until, every), daemon=True
        )
        for i in range(args.clients)
    ]
    threads.append(threading.Thread(target=sample_server, args=(server, until, samples)))
    say(f"traffic for {args.minutes:g} min, swap + key rotation every {args.every:g} s ...")
    try:
        with Project.load(s.project) as project:
            op = Operator(s, project, server.url, keys, rec)
            for t in threads:
                t.start()
            operate(op, until, args.every, events)
            for t in threads:
                t.join()
            op.probe.close()
        ready = is_ready(server)
        tracebacks = log_tracebacks(server.tail(chars=1 << 30))
    finally:
        server.stop()
    return Soak(
        args, s, kinds, rec, samples, events, server.started_in, ready, tracebacks, op.swap_errors
    )


def is_ready(server: Server) -> bool:
    """The server process is alive and ``/ready`` answers 200."""
    if server.proc is None or server.proc.poll() is not None:
        return False
    try:
        return httpx.get(server.url + "/ready", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def log_tracebacks(log: str) -> list[str]:
    """Every traceback in the server's log, shortened: the line before, the last frames and the
    exception."""
    lines = log.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j][:1].strip()), len(lines))
            found.append(
                "\n".join([*lines[max(0, i - 1) : i + 1], "  ...", *lines[end - 4 : end + 1]])
            )
    return found


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def _ok(passed: bool) -> str:
    return "ok" if passed else "FAIL"


def traffic_rows(r: Soak) -> list[Row]:
    expect = {k.name: k.expect for k in r.kinds}
    by_status: Counter[str] = Counter()
    unexpected = 0
    for (kind, status), n in r.rec.by_kind.items():
        by_status[status if status.isdigit() else "none"] += n
        unexpected += n if status.isdigit() and int(status) not in expect[kind] else 0
    total, minutes = sum(by_status.values()), r.args.minutes
    fours = sorted((s, n) for s, n in by_status.items() if s.startswith("4"))
    fives = sum(n for s, n in by_status.items() if s.startswith("5"))
    lost = by_status["none"]
    return [
        Row(f"requests, {r.args.clients} clients", f"{total:,} ({total / (minutes * 60):.1f}/s)"),
        Row("  2xx", f"{sum(n for s, n in by_status.items() if s.startswith('2')):,}"),
        Row("  4xx", ", ".join(f"{s}: {n:,}" for s, n in fours) or "0"),
        Row("  5xx", f"{fives:,}", "0", _ok(fives == 0)),
        Row("  no answer (connection errors)", f"{lost:,}", "0", _ok(lost == 0)),
        Row("  a status its kind should not get", f"{unexpected:,}", "0", _ok(unexpected == 0)),
    ]


def minute_rows(r: Soak) -> list[Row]:
    """Per minute: valid single-row predictions (latency, versions), server RSS and CPU; then
    the RSS growth goal."""
    rows: list[Row] = []
    rss: dict[int, float] = {}
    minutes = math.ceil(r.args.minutes)
    for m in range(minutes):
        lat = [s for at, s in r.rec.latencies if r.rec.minute(at) == m]
        versions = sorted((v, n) for (mm, v), n in r.rec.answered_by.items() if mm == m)
        text = "no answers"
        if lat:
            text = f"p50 {fmt(_percentile(lat, 0.5))}, p99 {fmt(_percentile(lat, 0.99))}, "
            text += f"n={len(lat):,} (" + ", ".join(f"v{v}: {n:,}" for v, n in versions) + ")"
        rows.append(Row(f"minute {m + 1}: valid 1-row predictions", text))
        here = [x for x in r.samples if r.rec.minute(x[0]) == m]
        if len(here) >= 2:
            rss[m] = statistics.median(x[1] for x in here)
            cores = (here[-1][2] - here[0][2]) / (here[-1][0] - here[0][0])
            peak = max(x[1] for x in here)
            value = f"{_mib(rss[m])} ({_mib(peak)}), {cores:.2f} cores"
            rows.append(Row("  server RSS median (max), CPU", value))
    label, goal = f"server RSS growth, minute {minutes} vs minute 1", f"<= +{RSS_GROWTH_GOAL:.0%}"
    if minutes < 2:
        rows.append(Row(label, "n/a (needs --minutes >= 2)", goal))
    elif 0 not in rss or minutes - 1 not in rss:
        rows.append(Row(label, "not sampled", goal, "FAIL"))
    else:
        growth = rss[minutes - 1] / rss[0] - 1
        value = f"{growth:+.1%} ({_mib(rss[0])} -> {_mib(rss[minutes - 1])}, medians)"
        rows.append(Row(label, value, goal, _ok(growth <= RSS_GROWTH_GOAL)))
    return rows


def event_rows(r: Soak) -> list[Row]:
    seconds = r.args.minutes * 60
    expected = math.ceil(seconds / r.args.every) - 1  # one per tick before the end
    rows = []
    for prefix, label, goal in (
        ("swap", "hot swap seen on /v1/model", SWAP_GOAL_S),
        ("new key", "new key accepted (200)", KEY_GOAL_S),
        ("key", "revoked key refused", KEY_GOAL_S),
    ):
        mine = [e for e in r.events if e.what.startswith(prefix)]
        seen = [e.seconds for e in mine if e.seconds is not None]
        value = f"{len(seen)}/{len(mine)} seen"
        if seen:
            value += f", median {fmt(statistics.median(seen))}, max {fmt(max(seen))}"
        codes = Counter(e.detail for e in mine if e.detail)
        value += "".join(f", {c} x{n}" for c, n in codes.items())
        passed = len(mine) >= expected and all(e.ok for e in mine)
        rows.append(Row(label, value, f"all <= {goal:g} s", _ok(passed)))
    for error in sorted(r.swap_errors):
        rows.append(Row("  swap_error seen on /v1/model", error[:100]))
    return rows


def kind_rows(r: Soak) -> list[Row]:
    rows = []
    for kind in r.kinds:
        got = sorted((s, n) for (k, s), n in r.rec.by_kind.items() if k == kind.name)
        passed = all(s.isdigit() and int(s) in kind.expect for s, _ in got)
        value = ", ".join(f"{s}: {n:,}" for s, n in got) or "not sent"
        expect = "/".join(str(c) for c in sorted(kind.expect))
        rows.append(Row(kind.name, value, expect, _ok(passed) if got else "-"))
    return rows


def report(r: Soak) -> list[Row]:
    n, ready = len(r.tracebacks), r.ready_at_end
    return [
        Row("setup: init + 2 small training runs + keys", fmt(r.setup.seconds)),
        Row("conveyor serve, 1 worker: start to ready", fmt(r.start_s)),
        *traffic_rows(r),
        *minute_rows(r),
        *event_rows(r),
        Row("server alive and ready at the end", "yes" if ready else "NO", "yes", _ok(ready)),
        Row("tracebacks in the server's log", str(n), "0", _ok(n == 0)),
    ]


def print_report(r: Soak, rows: list[Row], by_kind: list[Row]) -> None:
    print_table(rows)
    print("\nresponses by request kind (goal: the statuses listed)\n")
    print_table(by_kind)
    print("\nswaps and key rotations (seconds from the commit until the server shows it)\n")
    for e in r.events:
        took = "NOT SEEN" if e.seconds is None else fmt(e.seconds)
        print(f"  t={e.at:6.1f} s  {e.what} {e.detail} in {took}" + ("" if e.ok else "  FAIL"))
    for what, shown in r.rec.samples.items():
        print(f"\nfirst responses, {what}:", *shown, sep="\n  ")
    if r.tracebacks:
        print(f"\nfirst traceback in the server's log (of {len(r.tracebacks)}):\n{r.tracebacks[0]}")


# -- main ----------------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic duration (10)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    parser.add_argument(
        "--rate", type=float, default=40.0, help="requests/s, all clients; 0: flat out (40)"
    )
    parser.add_argument(
        "--every", type=float, default=30.0, help="seconds between swaps + rotations (30)"
    )
    parser.add_argument(
        "--exclude",
        type=lambda v: [x.strip() for x in v.split(",") if x.strip()],
        default=[],
        help="leave out the request kinds whose name contains one of these (comma-separated)",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.clients < 1 or args.rate < 0 or args.every <= 0:
        parser.error("--minutes and --every must be > 0, --clients >= 1, --rate >= 0")
    for var in [v for v in os.environ if v.startswith(("CONVEYOR_", "MLFLOW_"))]:
        os.environ.pop(var)

    started, load_before = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-soak-") as tmp:
        result = soak(args, Path(tmp))
    rate = f"{args.rate:g} req/s" if args.rate else "flat out"
    rate += f", without: {', '.join(args.exclude)}" if args.exclude else ""
    print(
        f"\nsoak: conveyor serve, 1 worker, {args.minutes:g} min of mixed traffic from "
        f"{args.clients} clients ({rate}), swap + key rotation every {args.every:g} s "
        f"(python {sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} cpus)\n"
    )
    rows, by_kind = report(result), kind_rows(result)
    print_report(result, rows, by_kind)
    failed = [r.measure.strip() for r in rows if r.ok == "FAIL"]
    if kinds_failed := sum(r.ok == "FAIL" for r in by_kind):
        failed.append(f"{kinds_failed} request kind(s) got other statuses")
    print(f"\nload average (1, 5, 15 min): before {load_before}, after {load_average()}")
    verdict = "FAIL: " + "; ".join(failed) if failed else "PASS"
    print(f"soak took {time.perf_counter() - started:.0f} s: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
