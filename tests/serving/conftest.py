"""Serving fixtures: a copy of the trained visa project (``trained_visa``, tests/conftest.py)
and a real uvicorn server on a loopback port, run in a thread of the test process."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conveyor.project import Project
from conveyor.serving.app import ServeSettings, create_app
from conveyor.serving.auth import create_key
from conveyor.serving.background import BackgroundServer, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

MODEL = "visa-approval"


class LiveServer(BackgroundServer):
    """The product's background server, with the app's state at hand for tests."""

    @property
    def state(self) -> Any:
        return self.app.state.conveyor


@pytest.fixture
def visa_project(trained_visa: Path, tmp_path: Path) -> Path:
    """A private copy of the trained project (tests may move aliases and write logs)."""
    target = tmp_path / "visa"
    shutil.copytree(trained_visa, target)
    return target


@pytest.fixture
def api_key(visa_project: Path) -> str:
    """A fresh API key of ``visa_project``."""
    with Project.load(visa_project) as proj:
        return create_key(proj.metadata, "tests").token


def settings_for(project: Path, **overrides: Any) -> ServeSettings:
    """Server settings for tests: fast polling and log flushing."""
    base: dict[str, Any] = {
        "project": str(project),
        "model": f"{MODEL}@production",
        "poll_seconds": 0.2,
        "log_flush_seconds": 0.2,
    }
    return ServeSettings(**{**base, **overrides})


@pytest.fixture
def live(visa_project: Path, api_key: str) -> Iterator[LiveServer]:
    """The server for ``visa_project`` with auth on (use the ``api_key`` fixture)."""
    with LiveServer(create_app(settings_for(visa_project))) as server:
        yield server


@pytest.fixture
def client(live: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    """An HTTP client to ``live`` sending ``api_key``."""
    with httpx.Client(base_url=live.url, headers={"X-API-Key": api_key}, timeout=30) as c:
        yield c


def visa_records(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` valid records from the generator (without the target), as JSON-ready dicts."""
    import json

    from conveyor.examples.visa.generate import generate

    frame = generate(n_rows=n, seed=seed, dirt=False).drop(columns=["case_status"])
    return list(json.loads(frame.to_json(orient="records")))


__all__ = [
    "MODEL",
    "LiveServer",
    "free_port",
    "in_process_labels",
    "settings_for",
    "visa_records",
]


@pytest.fixture(scope="session")
def visa_bundle(trained_visa: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``conveyor export model visa-approval@production`` of the trained project, once per
    session (a folder; ``<folder>.tar.gz`` sits next to it). Copy it before changing it."""
    from conveyor.registry.bundle import export_model

    root = tmp_path_factory.mktemp("visa-bundle")
    project = Path(shutil.copytree(trained_visa, root / "project"))
    with Project.load(project) as proj:
        export_model(proj.metadata, proj.artifacts, f"{MODEL}@production", root / "bundle")
    return root / "bundle"


def in_process_labels(bundle: Path, records: list[dict[str, Any]]) -> list[Any]:
    """What the bundle's model says for ``records`` when called in this process."""
    import pandas as pd

    from conveyor.registry.bundle import open_bundle

    model = open_bundle(bundle).load_model()
    return [v.item() if hasattr(v, "item") else v for v in model.predict(pd.DataFrame(records))]
