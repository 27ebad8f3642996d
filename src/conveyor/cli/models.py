"""``conveyor models``: list, show, approve, promote, rollback, archive model versions."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import console, conveyor_errors, fmt_time, print_json, styled

app = typer.Typer(
    help="Model versions: list, show, approve, promote, rollback, archive.", no_args_is_help=True
)

ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the audit log).")]
AliasOpt = Annotated[
    str | None, typer.Option("--alias", "-a", help="Alias (default: registry.promote.alias).")
]


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Registered versions, newest first, with status and aliases."""
    from rich.table import Table

    from conveyor.project import Project

    with conveyor_errors(), Project.load(project) as proj:
        versions = proj.metadata.list_model_versions(name)
        aliases = proj.metadata.aliases(name)
    held: dict[tuple[str, int], list[str]] = {}
    for (n, a), v in sorted(aliases.items()):
        held.setdefault((n, v), []).append(a)
    if json_:
        print_json([{**_plain(m), "aliases": held.get((m.name, m.version), [])} for m in versions])
        return
    table = Table(title=f"model versions in {proj.root}", title_justify="left")
    for col in ("model", "status", "aliases", "primary metrics", "data", "run", "created"):
        table.add_column(col)
    for m in versions:
        shown = ", ".join(
            f"{k}={v:.3f}" for k, v in m.metrics.items() if k in ("f1", "roc_auc", "rmse", "r2")
        )
        table.add_row(
            f"{m.name}:{m.version}",
            styled(m.status),
            ", ".join(held.get((m.name, m.version), [])) or "-",
            shown,
            (m.dataset or "-")[:10],
            (m.run_id or "-")[:8],
            fmt_time(m.created_at),
        )
    console().print(table if versions else "no model versions yet: try `conveyor run`")


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """One version: status and reason, metrics, signature, lineage keys, alias history."""
    from conveyor.project import Project
    from conveyor.registry.versions import resolve

    with conveyor_errors(), Project.load(project) as proj:
        m = resolve(proj.metadata, ref)
        history = proj.metadata.alias_history(m.name)
    if json_:
        print_json({**_plain(m), "alias_history": history})
        return
    out = console()
    out.print(f"[bold]{m.name}:{m.version}[/] {styled(m.status)}  {escape(m.reason or '')}")
    out.print(f"  artifact {m.digest}\n  run {m.run_id}  data {m.dataset}")
    out.print(
        f"  commit {m.git_commit or '-'}  config {(m.config_hash or '-')[:12]}  "
        f"created {fmt_time(m.created_at)}"
    )
    out.print("  metrics: " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(m.metrics.items())))
    for h in history:
        if m.version in (h["version"], h["previous_version"]):
            out.print(
                f"  {fmt_time(h['at'])} {h['action']} @{h['alias']}: "
                f"v{h['previous_version'] or '-'} -> v{h['version']} by {h['actor']}"
                f" ({escape(h['reason'] or '')})"
            )


@app.command("approve")
def approve(
    name: str,
    version: int,
    reason: ReasonOpt,
    project: ProjectOpt = Path("."),
    alias: AliasOpt = None,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Approve only.")] = False,
) -> None:
    """Approve a candidate (with a reason) and promote it to the policy's alias."""
    from conveyor.project import Project
    from conveyor.registry import governance

    with conveyor_errors(), Project.load(project) as proj:
        target = None if no_promote else _alias(alias, proj)
        record = governance.approve(proj.metadata, name, version, reason=reason, alias=target)
    console().print(
        f"{name}:{version} {styled(record.status)}" + (f", now {name}@{target}" if target else "")
    )


@app.command("promote")
def promote(
    name: str,
    version: int,
    reason: ReasonOpt,
    project: ProjectOpt = Path("."),
    alias: AliasOpt = None,
) -> None:
    """Point NAME@ALIAS at VERSION (a rejected version can never be promoted)."""
    from conveyor.project import Project
    from conveyor.registry import governance

    with conveyor_errors(), Project.load(project) as proj:
        default_alias, require_approval = _policy(proj)
        move = governance.promote(
            proj.metadata,
            name,
            version,
            alias=default_alias if alias is None else alias,
            reason=reason,
            require_approval=require_approval,
        )
    console().print(f"{name}@{move.alias}: v{move.previous or '-'} -> v{move.current}")


@app.command("rollback")
def rollback(
    name: str,
    reason: ReasonOpt,
    project: ProjectOpt = Path("."),
    alias: AliasOpt = None,
    to: Annotated[
        int | None, typer.Option("--to", min=1, max=2**31 - 1, help="Version to go back to.")
    ] = None,
) -> None:
    """Move NAME@ALIAS back to the version it held before (or --to VER)."""
    import time

    from conveyor.project import Project
    from conveyor.registry import governance

    with conveyor_errors(), Project.load(project) as proj:
        _, require_approval = _policy(proj)
        metadata = proj.metadata  # opened (and migrated) before the clock starts
        started = time.perf_counter()
        move = governance.rollback(
            metadata,
            name,
            alias=_alias(alias, proj),
            reason=reason,
            to=to,
            require_approval=require_approval,
        )
        took = time.perf_counter() - started
    console().print(
        f"{name}@{move.alias}: v{move.previous} -> v{move.current} "
        f"(rolled back in {took * 1000:.0f} ms)"
    )


@app.command("archive")
def archive(name: str, version: int, reason: ReasonOpt, project: ProjectOpt = Path(".")) -> None:
    """Retire a version (no alias may point at it)."""
    from conveyor.project import Project
    from conveyor.registry import governance

    with conveyor_errors(), Project.load(project) as proj:
        governance.archive(proj.metadata, name, version, reason=reason)
    console().print(f"{name}:{version} {styled('archived')}")


def _policy(proj: Any) -> tuple[str, bool]:
    registry = proj.config.registry
    if registry is None:
        return "production", False
    return registry.promote.alias, registry.promote.require_approval


def _plain(record: Any) -> dict[str, Any]:
    return dict(asdict(record))


def _alias(given: str | None, proj: Any) -> str:
    """``--alias`` as given (an empty one is refused by the registry), else the policy's."""
    return _policy(proj)[0] if given is None else given
