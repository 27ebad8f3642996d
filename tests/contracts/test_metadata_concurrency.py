"""Model versions stay unique when several OS processes register the same model at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from conveyor.store.metadata import RunStatus, open_metadata_store
from conveyor.store.metadata.records import ArtifactRef
from tests._processes import die_with_parent

if TYPE_CHECKING:
    from pathlib import Path

PROCESSES = 8
VERSIONS_EACH = 5
MODEL = "shared-model"
DIGEST = "ab" * 32

# Each child opens the store, says it is ready, waits for "go" on stdin (so all of them start
# registering at the same moment), then prints one version number per line.
_REGISTER = textwrap.dedent(
    """
    import sys
    from conveyor.store.metadata import open_metadata_store

    url, name, digest, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = open_metadata_store(url)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(count):
            version = store.register_model_version(name, digest=digest, run_id=None)
            print(version.version, flush=True)
    finally:
        store.close()
    """
)


@pytest.fixture(params=["sqlite-file", pytest.param("postgresql", marks=pytest.mark.service)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _register_concurrently(url: str, tmp_path: Path) -> list[int]:
    procs: list[subprocess.Popen[str]] = []
    errors: list[Path] = []
    try:
        for i in range(PROCESSES):
            err = tmp_path / f"child-{i}.err"
            errors.append(err)
            with err.open("w") as stderr:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _REGISTER, url, MODEL, DIGEST, str(VERSIONS_EACH)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        text=True,
                        preexec_fn=die_with_parent,
                    )
                )
        for proc, err in zip(procs, errors, strict=True):
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", err.read_text()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.close()
        versions: list[int] = []
        for proc, err in zip(procs, errors, strict=True):
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.stdout.close()
            assert proc.wait(timeout=120) == 0, err.read_text()
            versions.extend(int(line) for line in out.split())
        return versions
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()


@pytest.mark.slow
def test_concurrent_registrations_get_unique_consecutive_versions(url: str, tmp_path: Path) -> None:
    store = open_metadata_store(url)  # migrates once, before the children race
    try:
        run_id, ids = store.create_run("train", ["fit"], executor="local")
        store.start_step(ids["fit"], cache_key="k")
        model = ArtifactRef(name="model", digest=DIGEST, kind="joblib", size=1)
        store.complete_step(ids["fit"], inputs=[], outputs=[model])
        store.finish_run(run_id, RunStatus.SUCCEEDED)

        versions = _register_concurrently(url, tmp_path)

        total = PROCESSES * VERSIONS_EACH
        assert sorted(versions) == list(range(1, total + 1))
        stored = [m.version for m in store.list_model_versions(MODEL)]
        assert stored == list(range(total, 0, -1))
        events = [e for e in store.list_events() if e.action == "register"]
        assert len(events) == total
        assert sorted(e.entity for e in events) == sorted(f"{MODEL}:{v}" for v in versions)
        assert store.get_model_version(MODEL).version == total
    finally:
        store.close()
