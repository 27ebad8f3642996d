"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` as separate OS processes
on loopback, so a test can SIGKILL one worker in the middle of a step.

Workers run from their own scratch folder, not the project's, with only the environment the
test gives them (plus the caller's, minus anything pointing conveyor at another store): what a
project needs on a worker must reach it the way it would in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests._processes import die_with_parent
from tests.conftest import require_module, require_service

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

DASK = Path(sys.executable).parent / "dask"
START_TIMEOUT = 60.0  # seconds for the scheduler and every worker to come up on a busy machine
_LEAKY_ENV = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI", "PYTHONPATH")


@dataclass
class DaskWorker:
    """One ``dask worker`` process and what the scheduler knows of it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    address: str | None = None  # tcp://127.0.0.1:PORT, once registered
    pid: int | None = None  # the process that runs tasks (== process.pid without a nanny)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class DaskCluster:
    """A running scheduler and its workers; see :func:`dask_cluster`."""

    address: str
    directory: Path
    scheduler: subprocess.Popen[bytes]
    scheduler_log: Path
    env: dict[str, str]
    nanny: bool
    memory_limit: str
    workers: list[DaskWorker] = field(default_factory=list)
    _client: Any = None

    @property
    def client(self) -> Any:
        """A ``distributed.Client`` on the scheduler, opened on first use (closed at teardown)."""
        if self._client is None:
            from distributed import Client

            self._client = Client(self.address, timeout=START_TIMEOUT)
        return self._client

    def add_worker(self, *, wait: bool = True) -> DaskWorker:
        """Start one more worker; with ``wait``, return once the scheduler has registered it."""
        name = f"w{len(self.workers)}"
        log = self.directory / f"{name}.log"
        command = [str(DASK), "worker", "--scheduler-file", str(self._scheduler_file)]
        command += ["--name", name, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1"]
        command += ["--no-dashboard", "--memory-limit", self.memory_limit, "--death-timeout", "60"]
        command += ["--local-directory", str(self.directory / name)]
        command += ["--nanny" if self.nanny else "--no-nanny"]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=self.directory,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        worker = DaskWorker(name, process, log)
        self.workers.append(worker)
        if wait:
            self.wait_for_workers()
        return worker

    def wait_for_workers(self, timeout: float = START_TIMEOUT) -> None:
        """Block until every live worker process is registered; fail showing the logs if not."""
        deadline = time.monotonic() + timeout
        while True:
            registered = self._registered()
            pending = [w for w in self.workers if w.alive and w.name not in registered]
            for w in self.workers:
                if w.name in registered and w.address != registered[w.name]:
                    w.address = registered[w.name]
                    w.pid = self._pid(w.address)
            dead = [w for w in self.workers if not w.alive and w.address is None]
            if dead or self.scheduler.poll() is not None:
                raise RuntimeError(f"a Dask process exited while starting\n{self.logs()}")
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(w.name for w in pending)
                raise RuntimeError(
                    f"Dask workers {names} did not register within {timeout:.0f} s\n{self.logs()}"
                )
            time.sleep(0.2)

    def kill_worker(self, i: int, *, wait: bool = True) -> DaskWorker:
        """SIGKILL worker ``i``'s task-running process (no clean shutdown, no goodbye to the
        scheduler); with ``wait``, return once the scheduler has noticed."""
        worker = self.workers[i]
        if worker.pid is None:
            raise RuntimeError(f"worker {worker.name} never registered")
        os.kill(worker.pid, signal.SIGKILL)
        if not self.nanny:
            worker.process.wait(timeout=10)
        if wait:
            deadline = time.monotonic() + START_TIMEOUT
            while worker.address in self._registered().values():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the scheduler still lists killed worker {worker.name}")
                time.sleep(0.1)
        return worker

    def worker_by_pid(self, pid: int) -> int:
        """The index of the worker whose task-running process is ``pid``."""
        for i, w in enumerate(self.workers):
            if w.pid == pid:
                return i
        raise LookupError(f"no worker of this cluster runs as pid {pid}")

    def logs(self) -> str:
        """The tail of every process's output, for failure messages."""
        parts = [_tail("scheduler", self.scheduler_log, self.scheduler)]
        parts += [_tail(f"worker {w.name}", w.log, w.process) for w in self.workers]
        return "\n".join(parts)

    @property
    def _scheduler_file(self) -> Path:
        return self.directory / "scheduler.json"

    def _registered(self) -> dict[str, str]:
        """Worker name -> address, as the scheduler sees them now."""
        info = self.client.scheduler_info(n_workers=-1)
        return {str(w["name"]): addr for addr, w in info["workers"].items()}

    def _pid(self, address: str) -> int:
        """The pid of the process behind worker ``address`` (the scheduler does not know it)."""
        pid: int = self.client.run(os.getpid, workers=[address])[address]
        return pid

    def close(self) -> None:
        """Stop the client, the workers, then the scheduler (SIGTERM, then SIGKILL)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        _stop([w.process for w in self.workers])  # all at once: each takes a second or two
        _stop([self.scheduler])


@contextmanager
def dask_cluster(
    workers: int = 2,
    *,
    directory: Path,
    env: Mapping[str, str] | None = None,
    nanny: bool = False,
    memory_limit: str = "2GiB",
) -> Iterator[DaskCluster]:
    """A Dask scheduler and ``workers`` single-threaded workers on 127.0.0.1, as OS processes.

    Args:
        workers: how many workers to start (wait until all are registered).
        directory: scratch folder: the processes' working directory, logs, scheduler file.
        env: extra environment variables for every process (e.g. store credentials).
        nanny: run each worker under a nanny (which restarts it when it is killed); without one
            (the default) a killed worker stays dead and ``workers[i].process`` is the process
            that runs tasks.
        memory_limit: each worker's ``--memory-limit``.

    Yields:
        The running cluster; everything is stopped when the context exits.
    """
    require_module("distributed", "the dask extra (conveyor[dask])")
    if not DASK.is_file():
        require_service("Dask CLI", f"{DASK} is missing (the dask extra installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    full_env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})})
    scheduler_file = directory / "scheduler.json"
    scheduler_log = directory / "scheduler.log"
    command = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    # its HTTP endpoints (/health, /metrics) would otherwise take *:8787, or warn it is taken
    command += ["--dashboard-address", "127.0.0.1:0"]
    command += ["--scheduler-file", str(scheduler_file)]
    with scheduler_log.open("wb") as out:
        scheduler = subprocess.Popen(
            command,
            cwd=directory,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    cluster = DaskCluster("", directory, scheduler, scheduler_log, full_env, nanny, memory_limit)
    try:
        cluster.address = _wait_for_address(scheduler_file, scheduler, scheduler_log)
        for _ in range(workers):
            cluster.add_worker(wait=False)
        cluster.wait_for_workers()
        yield cluster
    finally:
        cluster.close()


def _wait_for_address(path: Path, scheduler: subprocess.Popen[bytes], log: Path) -> str:
    """The scheduler's address, read from its scheduler file once it has written it."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if scheduler.poll() is not None or time.monotonic() > deadline:
            state = "exited" if scheduler.poll() is not None else "wrote no scheduler file"
            raise RuntimeError(f"dask scheduler {state}\n{_tail('scheduler', log, scheduler)}")
        try:
            address: str = json.loads(path.read_text(encoding="utf-8"))["address"]
            return address
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)


def _tail(what: str, log: Path, process: subprocess.Popen[bytes]) -> str:
    code = process.poll()
    state = "running" if code is None else f"exited {code}"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return f"--- {what} (pid {process.pid}, {state})\n{text[-3000:]}"


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then SIGKILL those still running after 10 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
