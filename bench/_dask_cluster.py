"""A Dask cluster as separate OS processes on loopback, and peak-RSS polling of process trees.

:class:`DaskCluster` starts ``dask scheduler`` and N ``dask worker`` processes (each in its own
session, so it and its nanny's children are stopped by process group), waits until the
scheduler sees every worker, and stops them all on exit. :class:`RssWatch` polls the resident
set size of named process trees (a process and all its descendants, summed) every 0.2 s from a
thread and keeps each tree's peak. It also keeps the largest ``VmHWM`` seen in any process of
the tree: the kernel's own high-water mark of one process, exact between polls (the polled sum
can miss a spike shorter than the interval). Both can be reset between phases (``VmHWM`` by
writing ``5`` to ``/proc/PID/clear_refs``). A tree can be given a cap: above it, or when the
machine's available memory falls below a floor, the tree is killed (SIGKILL to its group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
GB = 1024**3
MB = 1024**2


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hwm(pid: int) -> int:
    """``VmHWM`` of one process in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``pid``: a process this script started in its own
    session (``start_new_session``), not yet reaped, so the group id is still its own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_tree(procs: list[psutil.Process]) -> None:
    """SIGKILL each process of a tree collected earlier that still runs (psutil checks that
    the pid was not reused since)."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


@dataclass
class Peak:
    """One tree's peaks since the last reset."""

    polled: int = 0  # largest sum of RSS over the tree seen by a poll
    hwm: int = 0  # largest VmHWM of one process of the tree
    killed: str | None = None  # why the watch killed the tree
    killed_after: float | None = None  # seconds after tracking started
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (epoch s, polled RSS)

    @property
    def best(self) -> int:
        return max(self.polled, self.hwm)

    def between(self, start: float, end: float) -> int:
        """The largest polled RSS between two epoch times (0 when no poll fell in)."""
        return max((rss for t, rss in self.timeline if start <= t <= end), default=0)


@dataclass
class _Tracked:
    pid: int
    peak: Peak = field(default_factory=Peak)
    cap: int | None = None
    started: float = field(default_factory=time.monotonic)


class RssWatch:
    """Polls named process trees (see the module docstring); use as a context manager."""

    def __init__(self, interval: float = 0.2, *, floor: int = 2 * GB) -> None:
        self.interval = interval
        self.floor = floor
        self._trees: dict[str, _Tracked] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-watch", daemon=True)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def track(self, name: str, pid: int, *, cap: int | None = None) -> None:
        """Start watching ``pid`` and its descendants as ``name`` (a cap kills the tree)."""
        with self._lock:
            self._trees[name] = _Tracked(pid, cap=cap)

    def untrack(self, name: str) -> Peak:
        """Stop watching ``name``; its peaks."""
        self._poll_one(name)
        with self._lock:
            tracked = self._trees.pop(name, None)
        return tracked.peak if tracked else Peak()

    def peak(self, name: str) -> Peak:
        """``name``'s peaks so far (polled once more now)."""
        self._poll_one(name)
        with self._lock:
            tracked = self._trees.get(name)
            if tracked is None:
                return Peak()
            return Peak(**{**vars(tracked.peak), "timeline": list(tracked.peak.timeline)})

    def reset(self) -> None:
        """Forget every tree's peaks and reset each process's ``VmHWM`` to its current RSS."""
        with self._lock:
            trees = list(self._trees.values())
        for tracked in trees:
            for proc in _tree(tracked.pid):
                with contextlib.suppress(OSError):
                    Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            tracked.peak = Peak()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                names = list(self._trees)
            for name in names:
                self._poll_one(name)

    def _poll_one(self, name: str) -> None:
        with self._lock:
            tracked = self._trees.get(name)
        if tracked is None or tracked.peak.killed:
            return
        total, hwm = 0, 0
        for proc in _tree(tracked.pid):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
            hwm = max(hwm, _hwm(proc.pid))
        peak = tracked.peak
        peak.timeline.append((time.time(), total))
        peak.polled = max(peak.polled, total)
        peak.hwm = max(peak.hwm, hwm)
        reason = None
        if tracked.cap is not None and total > tracked.cap:
            reason = f"RSS {total / GB:.2f} GB above the cap {tracked.cap / GB:.1f} GB"
        elif tracked.cap is not None and psutil.virtual_memory().available < self.floor:
            reason = f"machine's available memory below {self.floor / GB:.1f} GB"
        if reason:
            peak.killed = reason
            peak.killed_after = time.monotonic() - tracked.started
            kill_group(tracked.pid)


class DaskCluster:
    """``dask scheduler`` + ``workers`` x ``dask worker`` on 127.0.0.1, watched by ``watch``
    (trees named ``worker-0`` ... and ``scheduler``). Logs go to ``logdir``."""

    def __init__(
        self,
        workers: int,
        *,
        logdir: Path,
        watch: RssWatch,
        env: dict[str, str],
        memory_limit: str = "4GB",
        nthreads: int = 1,
        start_timeout: float = 90.0,
    ) -> None:
        self.workers = workers
        self.logdir = logdir
        self.watch = watch
        self.env = env
        self.memory_limit = memory_limit
        self.nthreads = nthreads
        self.start_timeout = start_timeout
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _start(self, name: str, args: list[str]) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
            cwd=self.logdir,
        )
        log.close()
        self._procs.append((name, proc))
        self.watch.track(name, proc.pid)

    def __enter__(self) -> DaskCluster:
        dask = str(BIN / "dask")
        try:
            self._start(
                "scheduler",
                [
                    dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-dashboard",
                    "--dashboard-address",  # its HTTP routes still start: loopback only
                    "127.0.0.1:0",
                ],
            )
            for i in range(self.workers):
                self._start(
                    f"worker-{i}",
                    [
                        dask,
                        "worker",
                        self.address,
                        "--name",
                        f"w{i}",
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        str(self.nthreads),
                        "--nworkers",
                        "1",
                        "--memory-limit",
                        self.memory_limit,
                        "--no-dashboard",
                        "--death-timeout",
                        "60",
                        "--local-directory",
                        str(self.logdir / f"w{i}"),
                    ],
                )
            self._wait()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait(self) -> None:
        from distributed import Client

        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}): see {self.logdir}")
            try:
                with Client(self.address, timeout=5) as client:
                    client.wait_for_workers(
                        self.workers, timeout=max(1, deadline - time.monotonic())
                    )
                    return
            except Exception as exc:  # not up yet: OSError, TimeoutError
                last = exc
                time.sleep(0.5)
        raise RuntimeError(f"cluster not up after {self.start_timeout:.0f} s: {last!r}")

    def worker_names(self) -> list[str]:
        return [name for name, _ in self._procs if name.startswith("worker-")]

    def events(self) -> str:
        """What the cluster's logs say of worker restarts (the nanny's memory kills above all) and
        of memory pressure (workers paused), counted, with the first restart's reason."""
        restarts, paused, first = 0, 0, ""
        for log_file in sorted(self.logdir.glob("*.log")):
            for line in log_file.read_text(errors="replace").splitlines():
                if "exceeded" in line and "memory budget" in line:
                    restarts += 1
                    first = first or line.split(" - ", 3)[-1].strip()
                elif "Pausing worker" in line:
                    paused += 1
        if not (restarts or paused):
            return ""
        text = f"{restarts} memory kills, {paused} pauses"
        return f"{text}; first: {first}" if first else text

    def alive(self) -> bool:
        return all(proc.poll() is None for _, proc in self._procs)

    def __exit__(self, *exc: object) -> None:
        trees = []
        for name, proc in reversed(self._procs):
            self.watch.untrack(name)
            if proc.poll() is None:
                trees.append(_tree(proc.pid))
                kill_group(proc.pid, signal.SIGTERM)
        for _, proc in self._procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                proc.wait(timeout=15)
        for tree in trees:
            kill_tree(tree)  # a nanny's child left behind, if any
        self._procs.clear()
