"""SIGKILL of a conveyor process leaves no process it started behind.

A killed ``conveyor run`` used to leave its tuning pool (forkserver, resource tracker and the
trial workers, ~250 MB each) re-parented to init, forever: in a container or under cron every
killed run leaked them. Each test here records every descendant while the command works, kills
the command with SIGKILL, and requires all of them gone within 5 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import make_visa_project, spawn_conveyor

pytestmark = pytest.mark.slow

GRACE = 5.0  # seconds the descendants get to notice their parent died


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time in clock ticks) of a live process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    if fields[0] == "Z":  # a zombie has exited; only its parent's wait() is missing
        return None
    return int(fields[1]), fields[19]


def _descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root``: pid -> start time (so a reused pid is not confused)."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def _alive(pids: dict[int, str]) -> dict[int, str]:
    left = {}
    for pid, started in pids.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            proc = Path(f"/proc/{pid}")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            threads = len(list((proc / "task").iterdir()))
            wchan = (proc / "wchan").read_text(encoding="utf-8", errors="replace")
            left[pid] = f"{threads} thread(s), waiting in {wchan or '-'}: {cmdline[:160]}"
    return left


def _kill_when(
    args: tuple[str | Path, ...], ready: Callable[[dict[int, str]], bool], timeout: float, log: Path
) -> dict[int, str]:
    """Start ``conveyor ARGS``, watch its descendants until ``ready(them)``, SIGKILL it; return
    every descendant ever seen."""
    with log.open("wb") as out:
        proc = spawn_conveyor(*args, stdout=out, stderr=subprocess.STDOUT)
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = log.read_text(encoding="utf-8", errors="replace")
            pytest.fail(f"the command ended (exit {proc.returncode}) before the kill:\n{output}")
        now = _descendants(proc.pid)
        seen.update(now)
        if ready(now):
            time.sleep(0.5)  # let the workers get into their work
            seen.update(_descendants(proc.pid))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            return seen
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=10)
    pytest.fail(f"not ready to kill after {timeout:.0f} s; descendants seen: {seen}")


def _assert_all_gone(seen: dict[int, str]) -> None:
    deadline = time.monotonic() + GRACE
    left = _alive(seen)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _alive(seen)
    for pid in left:  # don't leak them into the rest of the session either
        os.kill(pid, signal.SIGKILL)
    assert not left, (
        f"{len(left)} of {len(seen)} descendants outlived the SIGKILL by {GRACE} s:\n"
        + ("\n".join(f"  {pid}: {cmd}" for pid, cmd in left.items()))
    )


def _tuning_project(root: Path, metadata_url: str | None) -> Path:
    """One candidate tuned by two worker processes for long enough to be killed mid-search."""
    project = make_visa_project(root)
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    hgb = next(c for c in config["training"]["candidates"] if c["name"] == "hgb")
    config["training"]["candidates"] = [hgb]
    config["training"]["tuning"] = {"trials": 200, "cv": 3, "workers": 2}
    if metadata_url is not None:
        config["store"]["metadata"] = metadata_url
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return project


def _kill_mid_tuning(project: Path) -> None:
    def two_workers(now: dict[int, str]) -> bool:  # forkserver + tracker + 2 trial workers
        return len(now) >= 4

    seen = _kill_when(("run", "-p", project), two_workers, 180, project.parent / "run.log")
    _assert_all_gone(seen)


def test_sigkill_mid_tuning_leaves_no_process_sqlite(tmp_path: Path) -> None:
    _kill_mid_tuning(_tuning_project(tmp_path / "proj", None))


def test_sigkill_mid_tuning_leaves_no_process_postgres(tmp_path: Path, postgres_url: str) -> None:
    _kill_mid_tuning(_tuning_project(tmp_path / "proj", postgres_url))


def test_sigkill_of_a_multi_worker_server_leaves_no_worker(
    trained_visa: Path, tmp_path: Path
) -> None:
    import shutil

    from tests.serving.conftest import free_port

    project = Path(shutil.copytree(trained_visa, tmp_path / "served"))
    args = ("serve", "-p", project, "--port", str(free_port()), "--workers", "2", "--no-auth")

    def serving(now: dict[int, str]) -> bool:  # the resource tracker + 2 uvicorn workers
        return len(now) >= 3 and "Application startup complete" in log.read_text(encoding="utf-8")

    log = tmp_path / "serve.log"
    seen = _kill_when(args, serving, 120, log)
    _assert_all_gone(seen)
