"""The benchmark-only environments of peer tools, kept out of conveyor's dependencies.

``bench/.venv-peers`` (MLflow) is created with ``python -m venv`` (the Python running the
benchmark, so both sides use the same interpreter version) and the peers are pip-installed into
it on first use. Every peer is pinned to an exact version (``name==version``). Each run checks
the versions installed in the venv: when one differs from its pin (an older venv, or a manual
``pip install``), pip installs the pinned version over it. Delete the folder to rebuild it from
scratch. It is in .gitignore. bench/drift.py keeps Evidently in a venv of its own the same way.

Run it on its own to create or check the environment::

    .venv/bin/python bench/_peers.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / ".venv-peers"
# The benchmarks talk to loopback only: no peer may phone home. Set for this process, so every
# peer subprocess a benchmark starts inherits it (MLflow's and Evidently's usage reports).
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
os.environ.update(NO_TELEMETRY)
# Exact pins. lightgbm: bench/serve.py loads the visa model (LGBM) in MLflow's server; it is the
# version in conveyor's own venv. sqlalchemy: the layer both tools' SQLite writes go through in
# bench/tracking.py, pinned to conveyor's version so that layer is the same on both sides.
PEERS = ("mlflow==3.17.2", "lightgbm==4.7.0", "sqlalchemy==2.1.9")
_INSTALL_TIMEOUT_S = 1800

# Prints {distribution: version or null} for the names given as JSON in argv[1].
_VERSIONS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from importlib import metadata

    out = {}
    for name in json.loads(sys.argv[1]):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    print(json.dumps(out))
    """
)


class PeerEnvError(RuntimeError):
    """The peer environment could not be created or installed."""


def pins(requirements: tuple[str, ...]) -> dict[str, str]:
    """``{name: version}`` of ``name==version`` requirements.

    Raises:
        ValueError: a requirement is not pinned to one exact version.
    """
    out = {}
    for req in requirements:
        name, sep, version = req.partition("==")
        if (
            not sep
            or not name.strip()
            or not version.strip()
            or any(c in version for c in ",;<>=!~*")
        ):
            raise ValueError(f"peer requirement {req!r} is not an exact pin (name==version)")
        out[name.strip()] = version.strip()
    return out


def installed_versions(python: Path, names: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """The versions of the distributions ``names`` installed for ``python`` (None: missing)."""
    done = subprocess.run(
        [str(python), "-c", _VERSIONS_SCRIPT, json.dumps(list(names))],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return dict.fromkeys(names)
    found: dict[str, str | None] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def peer_python(*, log: bool = True) -> Path:
    """The peer venv's python, creating the venv and installing :data:`PEERS` if needed.

    Raises:
        PeerEnvError: venv creation or pip install failed (the message says what to try).
    """
    return bench_venv(PEERS_DIR, PEERS, label="peers", log=log)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def bench_venv(
    directory: Path,
    requirements: tuple[str, ...],
    *,
    label: str,
    log: bool = True,
) -> Path:
    """The python of a benchmark-only venv at ``directory``, created with the Python running
    the benchmark, with every ``name==version`` of ``requirements`` installed. A venv that has
    another version of any of them (or lacks one) gets ``pip install`` of the pins, which
    upgrades or downgrades what differs. Progress goes to stderr, so the benchmark's table on
    stdout stays clean.

    Raises:
        PeerEnvError: venv creation or pip install failed, or the versions still differ after
            the install (the message says what to try).
    """
    wanted = pins(requirements)
    python = directory / "bin" / "python"

    def say(msg: str) -> None:
        if log:
            print(f"[{label}] {msg}", file=sys.stderr, flush=True)

    def differences() -> list[str]:
        have = installed_versions(python, list(wanted))
        return [
            f"{name} {have.get(name) or 'missing'} (pinned {version})"
            for name, version in wanted.items()
            if have.get(name) is None or _normal(str(have.get(name))) != _normal(version)
        ]

    if python.exists():
        differ = differences()
        if not differ:
            return python
        say(f"{directory}: {', '.join(differ)}; installing the pins")
    else:
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
    say(f"installing {reqs} into {directory} (a minute or two)")
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
    differ = differences()
    if differ:
        raise PeerEnvError(
            f"{directory} still has {', '.join(differ)} after pip install; delete that folder "
            "and run again"
        )
    say(f"{label} environment ready")
    return python


def describe(python: Path, requirements: tuple[str, ...], also: tuple[str, ...] = ()) -> str:
    """``mlflow 3.18.0, sqlalchemy 2.1.9`` for the pinned peers (and ``also``) as installed."""
    names = [*pins(requirements), *also]
    have = installed_versions(python, names)
    return ", ".join(f"{name} {have.get(name) or 'missing'}" for name in names)


def main() -> int:
    try:
        python = peer_python()
    except PeerEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{python}: {describe(python, PEERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
