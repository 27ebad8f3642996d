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
    from collections.abc import Callable

    from fastapi import FastAPI

    from conveyor.project import Project
    from conveyor.serving.app import ServeSettings
    from conveyor.serving.batch_dask import ScoreSummary

GRACEFUL_SECONDS = 8  # SIGTERM to exit: within 10 s (SageMaker kills 30 s after SIGTERM)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="NAME@ALIAS (followed: the server swaps when the alias moves) or NAME:VERSION "
        "(pinned). Default: registry.model@registry.promote.alias.",
    ),
]


BundleOpt = Annotated[
    str | None,
    typer.Option(
        "--bundle",
        help="Serve this model bundle (folder, .tar.gz or URI from `conveyor export model`) "
        "with no metadata store and no project.",
    ),
]
PlatformOpt = Annotated[
    str | None,
    typer.Option(
        "--platform",
        help="sagemaker | vertex | azureml: that platform's routes, port, payloads and limits "
        "(the model from --bundle or the platform's model folder; no API keys).",
    ),
]
LogDirOpt = Annotated[
    str | None,
    typer.Option(
        "--log-dir",
        envvar="CONVEYOR_LOG_DIR",
        help="Bundle/platform modes: write the prediction log as Parquet under this folder or "
        "fsspec URI (default: no log).",
    ),
]


def serve(
    model: ModelOpt = None,
    bundle: BundleOpt = None,
    platform: PlatformOpt = None,
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
    log_dir: LogDirOpt = None,
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Serve a registered model (or a bundle) over HTTP with API keys and health checks."""
    err = console(stderr=True)
    if unknown_categories not in (None, "reject", "unknown"):
        err.print(
            f"[red]error:[/] --unknown-categories {unknown_categories!r}: choose reject or unknown"
        )
        raise typer.Exit(EXIT_USAGE)
    if model is not None and (bundle is not None or platform is not None):
        err.print("[red]error:[/] --model serves from the registry; a bundle holds one model")
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
    if bundle is not None or platform is not None:
        run_bundle(bundle, platform, flags | {"log_dir": log_dir}, access_log=access_log)
    else:
        run_registry(project, model, flags, access_log=access_log)


def run_registry(
    project: Path, model: str | None, flags: dict[str, Any], *, access_log: bool = False
) -> None:
    """Serve ``model`` of ``project`` until SIGTERM / Ctrl-C (``flags``: None = not given)."""
    from conveyor.project import Project
    from conveyor.serving.app import create_app

    _log_setup()
    with conveyor_errors():
        proj = Project.load(project)
        settings = serve_settings(proj, model, flags)
        app = create_app(settings, proj)
    _warn_about_auth(proj, settings.auth_required)
    current = app.state.conveyor.watcher.current
    console(stderr=True).print(
        f"serving [bold]{current.ref}[/] ({escape(settings.model)}) on "
        f"http://{settings.host}:{settings.port}  (docs: /docs, health: /health, "
        f"{settings.workers} worker(s))"
    )
    _run(app, settings, access_log=access_log, before_workers=proj.close)


def run_bundle(
    bundle: str | None,
    platform: str | None,
    flags: dict[str, Any],
    *,
    access_log: bool = False,
    env: dict[str, str] | None = None,
) -> None:
    """Serve a bundle (in a platform mode when ``platform`` is set) until SIGTERM / Ctrl-C."""
    from conveyor.serving.app import create_bundle_app
    from conveyor.serving.platforms.launch import bundle_settings, is_loopback

    environ = dict(os.environ) if env is None else env
    _log_setup()
    with conveyor_errors():
        settings = bundle_settings(bundle=bundle, platform=platform, flags=flags, env=environ)
        app = create_bundle_app(settings, env=environ)
    settings = app.state.conveyor.settings
    err = console(stderr=True)
    if platform is None and not settings.auth_required and not is_loopback(settings.host):
        err.print(
            f"[bold yellow]warning:[/] authentication is OFF on {escape(settings.host)}: anyone "
            "who can reach this port can use the model"
        )
    routes = (
        f"{platform} routes, no API keys (the platform authenticates callers)"
        if platform
        else "health: /health"
    )
    log = f"prediction log: {escape(settings.log_dir)}" if settings.log_dir else "no prediction log"
    err.print(
        f"serving [bold]{settings.model}[/] from bundle {escape(str(settings.bundle))} on "
        f"http://{settings.host}:{settings.port}  ({routes}; {log})"
    )
    _run(app, settings, access_log=access_log)


def _run(
    app: FastAPI,
    settings: ServeSettings,
    *,
    access_log: bool,
    before_workers: Callable[[], None] | None = None,
) -> None:
    """uvicorn in this process (SIGTERM stops it gracefully: requests finish, the prediction
    log is flushed, at most 8 s), or ``workers`` processes building their own app."""
    import uvicorn

    from conveyor.serving.app import SETTINGS_ENV

    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": access_log,
        "log_level": "info",
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
    }
    if settings.workers == 1:
        uvicorn.run(app, **common)
        return
    os.environ[SETTINGS_ENV] = settings.to_env()
    if before_workers is not None:
        before_workers()
    uvicorn.run(
        "conveyor.serving.app:app_from_env", factory=True, workers=settings.workers, **common
    )


def _log_setup() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")


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


ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        help="local: in this process; dask: one task per input file on a Dask cluster, "
        "written as a folder of Parquet parts.",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="--executor dask: the scheduler (tcp://host:8786). Default: executor.address when "
        "conveyor.yaml's executor is dask, else a local cluster started for the command.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        max=256,
        help="--executor dask: worker processes of the local cluster (default: "
        "executor.workers, else 2).",
    ),
]


def predict(
    input_: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            help="CSV or Parquet file, or an fsspec URI; with --executor dask also a folder or "
            "a glob (one partition per file).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the scores; with --executor dask a folder of Parquet parts "
            "(local, s3://, gs://, az://) published only when every partition is scored.",
        ),
    ],
    model: ModelOpt = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from --output).")
    ] = None,
    chunk_rows: Annotated[
        int,
        typer.Option("--chunk-rows", min=1, max=10_000_000, help="Rows per chunk (bounds memory)."),
    ] = DEFAULT_CHUNK_ROWS,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Score a table in chunks: input columns + prediction, probabilities and model version."""
    _check_predict_flags(executor, output, output_format, address, workers)
    if executor == "dask":
        _predict_dask(
            input_,
            output,
            model=model,
            chunk_rows=chunk_rows,
            address=address,
            workers=workers,
            project=project,
            json_=json_,
        )
    else:
        _predict_local(
            input_,
            Path(output),
            model=model,
            output_format=output_format,
            chunk_rows=chunk_rows,
            project=project,
            json_=json_,
        )


def _check_predict_flags(
    executor: str,
    output: str,
    output_format: str | None,
    address: str | None,
    workers: int | None,
) -> None:
    """Exit 2 on flags that do not go together."""
    err = console(stderr=True)
    problem = None
    if executor not in ("local", "dask"):
        problem = f"--executor {executor!r}: choose local or dask"
    elif executor == "local" and (address is not None or workers is not None):
        problem = "--address and --workers go with --executor dask"
    elif executor == "dask" and address is not None and workers is not None:
        problem = "--workers sizes a local cluster; the cluster at --address has its own"
    elif executor == "dask" and (
        output_format not in (None, "parquet") or output.rstrip("/").lower().endswith(".csv")
    ):
        problem = "with --executor dask the output is a folder of Parquet parts, not csv"
    if problem is not None:
        err.print(f"[red]error:[/] {escape(problem)}")
        raise typer.Exit(EXIT_USAGE)


def _predict_local(
    input_: str,
    output: Path,
    *,
    model: str | None,
    output_format: str | None,
    chunk_rows: int,
    project: Path,
    json_: bool,
) -> None:
    """One file scored in this process, chunk by chunk (the default)."""
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


def _predict_dask(
    input_: str,
    output: str,
    *,
    model: str | None,
    chunk_rows: int,
    address: str | None,
    workers: int | None,
    project: Path,
    json_: bool,
) -> None:
    """Each input file scored as a task on a Dask cluster; the parts published at once."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from conveyor.project import Project
    from conveyor.serving import batch_dask

    err = console(stderr=True)
    live = err.is_terminal and not json_  # a bar on a terminal, a line per partition in a log
    with conveyor_errors(), Project.load(project) as proj:
        source = batch_dask.model_source(proj, proj.model_ref(model))
        files = batch_dask.input_files(proj, input_)
        out = batch_dask.output_for(proj, output)
        configured = proj.config.executor
        if configured.type == "dask":
            address = address or configured.address
            workers = workers or configured.workers
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not live,
        ) as bar:
            task = bar.add_task(f"scoring with {source.ref} on dask", total=len(files))

            def on_start(resumed: int, total: int) -> None:
                bar.update(task, completed=resumed)
                if resumed and not json_:
                    err.print(f"resumed: {resumed}/{total} partitions already scored")

            def on_part(outcome: batch_dask.PartOutcome, done: int, todo: int) -> None:
                bar.advance(task)
                record = outcome.record
                if live or json_ or record is None:
                    return
                err.print(
                    f"[{done}/{todo}] {escape(record.input)} -> {record.part or '(no rows)'}: "
                    f"{record.rows:,} rows in {outcome.seconds:.1f} s",
                    soft_wrap=True,
                )

            result = batch_dask.score_partitioned(
                files,
                out,
                source,
                address=address,
                workers=workers or 2,
                chunk_rows=chunk_rows,
                on_start=on_start,
                on_part=on_part,
            )
    _dask_summary(result, json_=json_)


def _dask_summary(result: ScoreSummary, *, json_: bool) -> None:
    seconds = result.seconds
    summary = {
        "model": result.model.name,
        "version": result.model.version,
        "rows": result.rows,
        "scored_rows": result.scored_rows,
        "seconds": round(seconds, 3),
        "startup_seconds": round(result.startup_seconds, 3),
        "rows_per_second": round(result.scored_rows / seconds) if seconds else None,
        "output": result.output,
        "executor": "dask",
        "partitions": result.partitions,
        "resumed": result.resumed,
        "model_loads": result.model_loads,
    }
    if json_:
        print_json(summary)
        return
    resumed = (
        f" (resumed: {result.resumed}/{result.partitions} partitions already scored)"
        if result.resumed
        else ""
    )
    console().print(
        f"scored {result.rows:,} rows in {result.partitions} partitions{resumed} with "
        f"{result.model.ref} on dask in {seconds:.2f} s "
        f"({summary['rows_per_second'] or 0:,} rows/s) -> {escape(result.output)}",
        soft_wrap=True,
    )


def _warn_about_auth(proj: Project, auth: bool) -> None:
    err = console(stderr=True)
    if not auth:
        err.print(
            "[bold yellow]warning:[/] authentication is OFF: anyone who can reach this port "
            "can use the model"
        )
    elif not any(not k.revoked and "predict" in k.scopes for k in proj.metadata.list_api_keys()):
        err.print(
            "[yellow]warning:[/] no active API key with the predict scope: every /v1 request "
            "will be refused. Create one: conveyor keys create --name NAME"
        )
