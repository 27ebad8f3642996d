"""The closed loop of ``conveyor demo``: serve, normal then drifted traffic, detect, alert,
retrain on fresh data, decide, hot swap, lineage, rollback."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

    from conveyor.contracts import Registration
    from conveyor.project import Project

NORMAL_ROWS, DRIFTED_ROWS, BATCH = 600, 2000, 50
NORMAL_SEED = 7  # the same normal traffic every run (a random batch has ~5% false-alarm odds)
SWAP_WAIT_S = 10.0


@dataclass
class LoopSummary:
    """What the loop did, for the demo's summary."""

    served: list[str] = field(default_factory=list)
    calm: str = ""
    drift: str = ""
    alerts: list[str] = field(default_factory=list)
    cause: str = ""
    decision: Registration | None = None
    rollback: str = ""
    reports: list[str] = field(default_factory=list)


def run_loop(proj: Project, name: str, out: Console) -> LoopSummary:
    """Serve ``name@alias`` in a background thread and take it around the loop."""
    import httpx

    from conveyor.cli.monitor import export_report
    from conveyor.examples.visa.generate import generate, write_csv
    from conveyor.monitoring.monitor import summary
    from conveyor.registry import governance
    from conveyor.serving.app import ServeSettings, create_app
    from conveyor.serving.auth import create_key
    from conveyor.serving.background import BackgroundServer
    from conveyor.watch import cycle, run_check

    assert proj.config.data is not None and proj.config.registry is not None
    alias = proj.config.registry.promote.alias
    target = proj.config.data.target
    key = create_key(proj.metadata, f"demo-{uuid.uuid4().hex[:8]}")
    settings = ServeSettings.from_config(
        proj.config.serving, project=str(proj.root), model=f"{name}@{alias}", log_flush_seconds=0.5
    )
    result = LoopSummary()
    headers = {"Authorization": f"Bearer {key.token}"}
    run_seed = 1000 + len(proj.metadata.list_model_versions(name))  # fresh data every demo

    with (
        BackgroundServer(create_app(settings, proj)) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=60) as client,
    ):

        def send(frame: Any) -> str:
            records = json.loads(frame.drop(columns=[target]).to_json(orient="records"))
            version = ""
            for start in range(0, len(records), BATCH):
                response = client.post(
                    "/v1/predict", json={"records": records[start : start + BATCH]}
                )
                response.raise_for_status()
                body = response.json()["model"]
                version = f"{body['name']}:{body['version']}"
            return version

        def flushed() -> None:
            time.sleep(settings.log_flush_seconds * 3)  # the log writer runs every 0.5 s here

        out.rule("4. serve: FastAPI on loopback with an API key; normal traffic")
        began = time.time()  # checks read this run's traffic only (a rerun's log holds more)

        def window() -> float:
            return time.time() - began + 1.0

        served = send(generate(n_rows=NORMAL_ROWS, seed=NORMAL_SEED, dirt=False))
        result.served.append(served)
        out.print(
            f"  {NORMAL_ROWS} applications POSTed to {server.url}/v1/predict, answered by {served}"
        )
        flushed()
        calm = run_check(proj, f"{name}@{alias}", window_seconds=window(), channels=[])
        result.calm = summary(calm)
        result.reports.append(str(export_report(proj.root, calm)))
        out.print(f"  monitor: {escape(result.calm)}")

        out.rule("5. the world changes: drifted traffic (higher wages, another continent mix)")
        send(generate(n_rows=DRIFTED_ROWS, seed=run_seed + 1, drift=True, dirt=False))
        flushed()
        first = cycle(proj, model=f"{name}@{alias}", window_seconds=window())
        assert first.check is not None
        result.drift = summary(first.check)
        result.alerts = first.check.alerts
        result.reports.append(str(export_report(proj.root, first.check)))
        out.print(f"  watch cycle 1: {escape(result.drift)}")
        out.print(f"  alerts sent: {', '.join(first.check.alerts) or 'none (cooldown)'}")
        out.print(f"  report: {result.reports[-1]}")

        out.rule("6. fresh data, decided under new rules, and the drift persists: retrain, decide")
        # New rules (job experience over education) make the champion clearly worse on fresh
        # data; a covariate shift alone leaves it about as good as a retrained model.
        write_csv(
            proj.root / "data" / "visa.csv", seed=run_seed + 2, drift=True, concept_drift=True
        )
        out.print(
            "  data/visa.csv: fresh applications, decided under new rules "
            "(job experience counts far more, education no longer)"
        )
        second = cycle(
            proj,
            model=f"{name}@{alias}",
            window_seconds=window(),
            on_retrain=lambda cause: out.print(f"  retraining because {escape(cause)} ..."),
        )
        result.cause = second.cause
        result.decision = d = second.decision
        out.print(
            f"  decision: {name}:{d.version if d else '?'} "
            f"[bold]{d.status if d else second.run_status}[/]: {escape(d.reason if d else '')}"
        )
        if d is not None and d.promoted:
            swapped = _wait_for(client, d.version)
            out.print(f"  the running server swapped to {name}:{swapped} without a restart")
        result.served.append(
            send(generate(n_rows=BATCH, seed=run_seed + 3, drift=True, dirt=False))
        )

        out.rule("7. lineage of the model serving now")
        current = proj.metadata.get_alias(name, alias)
        _print_lineage(proj, f"{name}:{current}", out)

        out.rule("8. rollback: production goes back one promotion")
        if d is not None and d.promoted:
            move = governance.rollback(
                proj.metadata, name, alias=alias, reason="demo: show a rollback"
            )
            back = _wait_for(client, move.current)
            result.rollback = f"{name}@{alias}: v{move.previous} -> v{move.current}"
            out.print(f"  {result.rollback}; the server answers with {name}:{back} again")
        else:
            result.rollback = "nothing to roll back: the challenger was not promoted"
            out.print(f"  {result.rollback}")
        result.served.append(send(generate(n_rows=BATCH, seed=run_seed + 4, dirt=False)))
    return result


def _wait_for(client: Any, version: int) -> int:
    deadline = time.monotonic() + SWAP_WAIT_S
    while time.monotonic() < deadline:
        seen = int(client.get("/v1/model").json()["version"])
        if seen == version:
            return seen
        time.sleep(0.1)
    return int(client.get("/v1/model").json()["version"])


def _print_lineage(proj: Project, ref: str, out: Console) -> None:
    from conveyor.registry.lineage import model_lineage

    lineage = model_lineage(proj.metadata, proj.artifacts, ref)
    model, run, data = lineage.model, lineage.run, lineage.dataset
    out.print(f"  model    {ref}  ({model.status}: {escape(model.reason or '')})")
    out.print(f"  run      {run.id[:8] if run else '-'}  commit {model.git_commit or '-'}")
    if data is None:
        out.print("  data     -")
    else:
        out.print(
            f"  data     {data.fingerprint[:12]}  {data.n_rows} rows from {escape(data.source)}"
        )
    out.print(f"  config   {(model.config_hash or '-')[:12]}")
