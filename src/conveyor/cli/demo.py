"""``conveyor demo``: the visa example end to end on the embedded store."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli._output import EXIT_FAILURE, console, conveyor_errors, fmt_seconds

if TYPE_CHECKING:
    from rich.console import Console

    from conveyor.project import Project


def demo(
    directory: Annotated[
        Path, typer.Argument(help="Project folder to create (kept to inspect).")
    ] = Path("demo"),
) -> None:
    """Scaffold the visa project, train it, run it again from the cache, and serve the model."""
    import time

    from rich.markup import escape

    from conveyor.cli._progress import LiveProgress
    from conveyor.cli.init import scaffold
    from conveyor.cli.run import export_report
    from conveyor.project import Project

    out = console()
    with conveyor_errors():
        if not (directory / "conveyor.yaml").exists():
            out.rule("1. scaffold the visa project (seeded synthetic EasyVisa data)")
            for path in scaffold(directory, example="visa"):
                out.print(f"  created {path}")
        with Project.load(directory) as proj:
            out.rule("2. train: ingest -> split -> train candidates -> evaluate -> register")
            first = proj.run(hooks=LiveProgress(out))
            if not first.ok:
                out.print(f"[red]the train line failed:[/] {escape(str(first.failures))}")
                raise typer.Exit(EXIT_FAILURE)
            out.rule("3. run again: nothing changed, so every step comes from the cache")
            started = time.perf_counter()
            again = proj.run(hooks=LiveProgress(out))
            took = time.perf_counter() - started
            cached = sum(1 for s in again.steps.values() if str(s) == "cached")
            out.print(f"  {cached}/{len(again.steps)} steps cached, run took {fmt_seconds(took)}")
            out.rule("4. serve it: FastAPI on loopback, an API key, five applications scored")
            reg = proj.load_artifact(first.outputs["registration"].digest)
            _serve_a_few(proj, reg["name"], out)
            record = proj.metadata.get_run(first.run_id)
            html = proj.load_artifact(first.outputs["report_html"].digest)
            report_path = export_report(proj.root, first.run_id, html)
    out.rule("summary")
    metrics = {
        k.removeprefix("test."): v for k, v in record.metrics.items() if k.startswith("test.")
    }
    out.print(
        f"  model {reg['name']}:{reg['version']}  "
        + "  ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
    )
    out.print(
        f"  {reg['name']}@{reg['alias'] or '-'}: v{reg['version']} ({reg['status']}: "
        f"{escape(reg['reason'])})"
    )
    out.print(f"  report: {report_path}")
    out.print(f"  project folder: {directory.resolve()}")
    out.print(
        f"  next: conveyor runs list -p {directory}   conveyor runs show {first.run_id[:8]} "
        f"-p {directory}"
    )


def _serve_a_few(proj: Project, name: str, out: Console) -> None:
    """Start the real server in a thread, create a key, score five rows over HTTP, stop."""
    import httpx

    from conveyor.data import sources
    from conveyor.serving.app import ServeSettings, create_app
    from conveyor.serving.auth import create_key
    from conveyor.serving.background import BackgroundServer

    assert proj.config.data is not None and proj.config.registry is not None
    alias = proj.config.registry.promote.alias
    key = create_key(proj.metadata, f"demo-{uuid.uuid4().hex[:8]}")
    settings = ServeSettings(project=str(proj.root), model=f"{name}@{alias}")
    rows = sources.load(proj.config.data.source, proj.root).head(5)
    target = proj.config.data.target
    records = json.loads(rows.drop(columns=[target]).to_json(orient="records"))
    with BackgroundServer(create_app(settings, proj)) as server:
        response = httpx.post(
            f"{server.url}/v1/predict",
            json={"records": records},
            headers={"Authorization": f"Bearer {key.token}"},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
    out.print(
        f"  POST {server.url}/v1/predict -> {body['model']['name']}:{body['model']['version']}, "
        f"request {body['request_id'][:8]}"
    )
    for case, truth, pred, probs in zip(
        rows["case_id"], rows[target], body["predictions"], body["probabilities"], strict=True
    ):
        out.print(f"  {case:<10} actual {truth:<10} predicted {pred:<10} p={probs[pred]:.2f}")
    logged = sum(p.n_rows for p in proj.metadata.list_prediction_logs(name))
    out.print(
        f"  prediction log: {logged} rows in the artifact store. Serve it yourself: "
        f"conveyor keys create --name me -p {proj.root.name} && conveyor serve -p {proj.root.name}"
    )
