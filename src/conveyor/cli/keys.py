"""``conveyor keys``: create, list and revoke API keys (model server and UI), with scopes."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import EXIT_USAGE, console, conveyor_errors, fmt_time, print_json


class Scope(StrEnum):
    """What a key may do (``conveyor.store.metadata.records.KEY_SCOPES``)."""

    predict = "predict"
    read = "read"
    admin = "admin"


class KeyMatch(StrEnum):
    """What ``keys revoke`` matches its argument against."""

    name = "name"
    id = "id"


app = typer.Typer(
    help="API keys of the model server (scope predict) and the UI (read, admin): create, list, "
    "revoke.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="A unique name (who or what uses it).")],
    scope: Annotated[
        list[Scope] | None,
        typer.Option(
            "--scope",
            "-s",
            metavar="predict|read|admin",
            help="What the key may do (repeat for several): predict = call the model server, "
            "read = the UI's pages, admin = the UI's actions (brings read). Default: predict.",
        ),
    ] = None,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Create a key and print it ONCE: only its salted hash is stored."""
    from conveyor.project import Project
    from conveyor.serving.auth import create_key

    wanted = [s.value for s in scope] if scope else [Scope.predict.value]
    with conveyor_errors(), Project.load(project) as proj:
        try:
            new = create_key(proj.metadata, name, wanted)
        except ValueError as exc:
            console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_USAGE) from None
    scopes = list(new.record.scopes)
    if json_:
        print_json({"name": name, "id": new.record.key_id, "scopes": scopes, "key": new.token})
        return
    out = console()
    out.print(
        f"Created API key [bold]{escape(name)}[/] (id {new.record.key_id}, scopes "
        f"{', '.join(scopes)}):\n"
    )
    out.print(new.token, soft_wrap=True, markup=False)
    how = []
    if Scope.predict in scopes:
        how.append(
            "Send it to the model server as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'."
        )
    if Scope.read in scopes:
        how.append("Paste it on the sign-in page of 'conveyor ui'.")
    out.print("\nStore it now: it cannot be shown again. " + " ".join(how))


@app.command("list")
def list_(project: ProjectOpt = Path("."), json_: JsonOpt = False) -> None:
    """Keys with their id, scopes, creator, creation time and whether they were revoked."""
    from rich.table import Table

    from conveyor.project import Project

    with conveyor_errors(), Project.load(project) as proj:
        keys = proj.metadata.list_api_keys()
    rows = [
        {
            "name": k.name,
            "id": k.key_id,
            "scopes": list(k.scopes),
            "created_by": k.created_by,
            "created_at": k.created_at,
            "revoked_at": k.revoked_at,
            "status": "revoked" if k.revoked else "active",
        }
        for k in keys
    ]
    if json_:
        print_json(rows)
        return
    table = Table(title=f"API keys in {proj.root}", title_justify="left")
    for col in ("name", "id", "scopes", "status", "created by", "created", "revoked"):
        table.add_column(col)
    for k, r in zip(keys, rows, strict=True):
        table.add_row(
            escape(str(r["name"])),
            str(r["id"]),
            ", ".join(k.scopes),
            "[red]revoked[/]" if r["revoked_at"] else "[green]active[/]",
            escape(str(r["created_by"])),
            fmt_time(r["created_at"]),  # type: ignore[arg-type]
            fmt_time(r["revoked_at"]),  # type: ignore[arg-type]
        )
    console().print(table if rows else "no API keys yet: conveyor keys create --name NAME")


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name or id.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")] = None,
    by: Annotated[
        KeyMatch | None,
        typer.Option("--by", help="Match only the name or only the id (default: either)."),
    ] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Revoke a key: running servers refuse it (403) within about a second."""
    from conveyor.project import Project

    with conveyor_errors(), Project.load(project) as proj:
        key = proj.metadata.revoke_api_key(name, reason=reason, by=None if by is None else by.value)
    console().print(f"revoked API key {escape(key.name)} (id {key.key_id})")
