"""The UI's pages, one router per area."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.ui.pages import audit, lineage, models, monitoring, runs

if TYPE_CHECKING:
    from fastapi import APIRouter

PAGE_ROUTERS: tuple[APIRouter, ...] = (
    runs.router,
    models.router,
    lineage.router,
    monitoring.router,
    audit.router,
)
