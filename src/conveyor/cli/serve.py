"""``conveyor serve`` (the model server) and ``conveyor predict`` (batch scoring)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import EXIT_USAGE, console, conveyor_errors, print_json
from conveyor.serving.batch import DEFAULT_CHUNK_ROWS

if TYPE_CHECKING:
    from conveyor.project import Project
    from conveyor.serving.app import ServeSettings

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="NAME@ALIAS (followed: the server swaps when the alias moves) or NAME:VERSION "
        "(pinned). Default: registry.model@registry.promote.alias.",
    ),
]


def serve(
    model: ModelOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (serving.host).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (serving.port).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (serving.workers).")
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve WITHOUT API keys (local experiments only).")
    ] = False,
    public_docs: Annotated[
        bool,
        typer.Option("--public-docs", help="Let /docs and /openapi.json be read without a key."),
    ] = False,
    unknown_categories: Annotated[
        str | None,
        typer.Option(help="reject (422) or unknown (passed on as unseen) for unknown categories."),
    ] = None,
    no_log: Annotated[
        bool, typer.Option("--no-log-predictions", help="Do not keep the prediction log.")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Serve a registered model over HTTP (FastAPI + uvicorn) with API keys and health checks."""
    import uvicorn

    from conveyor.project import Project
    from conveyor.serving.app import SETTINGS_ENV, create_app

    err = console(stderr=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    with conveyor_errors():
        proj = Project.load(project)
        if unknown_categories not in (None, "reject", "unknown"):
            err.print(
                f"[red]error:[/] --unknown-categories {unknown_categories!r}: "
                "choose reject or unknown"
            )
            raise typer.Exit(EXIT_USAGE)
        flags: dict[str, Any] = {
            "host": host,
            "port": port,
            "workers": workers,
            "unknown_categories": unknown_categories,
            "auth": "none" if no_auth else None,
            "public_docs": True if public_docs else None,
            "log_predictions": False if no_log else None,
        }
        settings = serve_settings(proj, model, flags)
        app = create_app(settings, proj)
    _warn_about_auth(proj, settings.auth_required)
    current = app.state.conveyor.watcher.current
    bind_host, bind_port, n = settings.host, settings.port, settings.workers
    err.print(
        f"serving [bold]{current.ref}[/] ({escape(settings.model)}) on "
        f"http://{bind_host}:{bind_port}  (docs: /docs, health: /health, {n} worker(s))"
    )
    common = {"host": bind_host, "port": bind_port, "access_log": access_log, "log_level": "info"}
    if n == 1:
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    os.environ[SETTINGS_ENV] = settings.to_env()
    proj.close()
    uvicorn.run(
        "conveyor.serving.app:app_from_env",
        factory=True,
        workers=n,
        **common,  # type: ignore[arg-type]
    )


def serve_settings(
    proj: Project, model: str | None, flags: dict[str, Any] | None = None
) -> ServeSettings:
    """The server's settings: ``serving:`` of conveyor.yaml, overridden by the flags given
    (a None flag was not given).

    Raises:
        ConfigError: a flag value out of the bounds conveyor.yaml would have.
    """
    from conveyor.serving.app import ServeSettings

    settings = ServeSettings.from_config(
        proj.config.serving, project=str(proj.root), model=proj.model_ref(model)
    )
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    return settings.override(**given)


def predict(
    input_: Annotated[
        str, typer.Option("--input", "-i", help="CSV or Parquet file, or an fsspec URI.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the scores.")],
    model: ModelOpt = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from --output).")
    ] = None,
    chunk_rows: Annotated[
        int,
        typer.Option("--chunk-rows", min=1, max=10_000_000, help="Rows per chunk (bounds memory)."),
    ] = DEFAULT_CHUNK_ROWS,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Score a table in chunks: input columns + prediction, probabilities and model version."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from conveyor.config import SourceConfig
    from conveyor.data import sources
    from conveyor.project import Project
    from conveyor.serving import batch
    from conveyor.serving.model import load_version

    with conveyor_errors(), Project.load(project) as proj:
        ref = proj.model_ref(model)
        loaded = load_version(
            proj.metadata,
            proj.artifacts,
            ref,
            unknown=proj.config.serving.unknown_categories,
            max_records=proj.config.serving.max_records,
        )
        in_fmt = batch.format_of(input_)
        out_fmt = batch.format_of(str(output), given=output_format)
        source = SourceConfig(
            type=in_fmt,
            path=input_,
            options={"storage_options": proj.config.store.storage_options}
            if "://" in input_
            else {},
        )
        total, chunks = sources.iter_chunks(source, proj.root, rows=chunk_rows)
        chunks = batch.in_background(chunks, depth=1)  # the next chunk is read meanwhile
        start = time.perf_counter()
        scored = batch.in_background(  # read, validate and predict while the last chunk is written
            out for _, out, _ in batch.score_chunks(loaded, chunks, source=input_)
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(stderr=True),
            transient=True,
            disable=json_,
        ) as bar:
            task = bar.add_task(f"scoring with {loaded.ref}", total=total)
            rows = batch.write_table(
                scored, output, fmt=out_fmt, on_chunk=lambda n: bar.advance(task, n)
            )
        seconds = time.perf_counter() - start
    summary = {
        "model": loaded.record.name,
        "version": loaded.record.version,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds) if seconds else None,
        "output": str(output),
    }
    if json_:
        print_json(summary)
        return
    console().print(
        f"scored {rows:,} rows with {loaded.ref} in {seconds:.2f} s "
        f"({summary['rows_per_second'] or 0:,} rows/s) -> {output}"
    )


def _warn_about_auth(proj: Project, auth: bool) -> None:
    err = console(stderr=True)
    if not auth:
        err.print(
            "[bold yellow]warning:[/] authentication is OFF: anyone who can reach this port "
            "can use the model"
        )
    elif not any(not k.revoked for k in proj.metadata.list_api_keys()):
        err.print(
            "[yellow]warning:[/] no active API keys: every /v1 request will get 401. "
            "Create one: conveyor keys create --name NAME"
        )
