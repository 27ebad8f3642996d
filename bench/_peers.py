"""The benchmark-only environment of peer tools (MLflow), kept out of conveyor's dependencies.

``bench/.venv-peers`` is created with ``python -m venv`` (the Python running the benchmark, so
both sides use the same interpreter version) and the pinned peers are pip-installed into it on
first use. Later runs reuse it. Delete the folder to rebuild it. It is in .gitignore.

Run it on its own to create or check the environment::

    .venv/bin/python bench/_peers.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / ".venv-peers"
PEERS = ("mlflow>=3,<4", "lightgbm")  # lightgbm: bench/serve.py loads the visa model (LGBM)
# Written after a successful install; holds the requirements it was made with.
_MARKER = PEERS_DIR / "conveyor-bench-peers.txt"
_INSTALL_TIMEOUT_S = 1800


class PeerEnvError(RuntimeError):
    """The peer environment could not be created or installed."""


def peer_python(*, log: bool = True) -> Path:
    """The peer venv's python, creating the venv and installing :data:`PEERS` if needed.

    Raises:
        PeerEnvError: venv creation or pip install failed (the message says what to try).
    """
    return bench_venv(PEERS_DIR, PEERS, marker=_MARKER, label="peers", log=log)


def bench_venv(
    directory: Path,
    requirements: tuple[str, ...],
    *,
    marker: Path,
    label: str,
    log: bool = True,
) -> Path:
    """The python of a benchmark-only venv at ``directory``, created with the Python running
    the benchmark and pip-installed with ``requirements`` on first use (``marker`` records
    what it was made with; a change of requirements reinstalls). Progress goes to stderr, so
    the benchmark's table on stdout stays clean.

    Raises:
        PeerEnvError: venv creation or pip install failed (the message says what to try).
    """
    wanted = "\n".join(requirements) + "\n"
    python = directory / "bin" / "python"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python

    def say(msg: str) -> None:
        if log:
            print(f"[{label}] {msg}", file=sys.stderr, flush=True)

    if not python.exists():
        say(f"creating {directory} ({sys.executable} -m venv)")
        done = subprocess.run(
            [sys.executable, "-m", "venv", str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PeerEnvError(
                f"could not create the venv {directory}: {done.stderr.strip()[-1000:]}"
                " (on Debian/Ubuntu: apt-get install python3-venv)"
            )
    reqs = " ".join(requirements)
    say(f"installing {reqs} into {directory} (first use; a minute or two)")
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar"]
    cmd += ["off", *requirements]
    try:
        # pip's own lines ("Collecting ...") stream to stderr as progress.
        installed = subprocess.run(
            cmd, stdout=sys.stderr, stderr=sys.stderr, check=False, timeout=_INSTALL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise PeerEnvError(f"pip install {reqs} did not finish in {_INSTALL_TIMEOUT_S} s") from None
    if installed.returncode != 0:
        raise PeerEnvError(
            f"pip install {reqs} into {directory} failed (exit {installed.returncode}; its "
            "output is above). Check that PyPI is reachable, then delete that folder and run "
            "again."
        )
    marker.write_text(wanted)
    say(f"{label} environment ready")
    return python


def main() -> int:
    try:
        python = peer_python()
    except PeerEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    done = subprocess.run(
        [str(python), "-c", "import mlflow; print('mlflow', mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"{python}: {(done.stdout or done.stderr).strip()}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
