"""The drift report: JSON (the record) and a self-contained HTML page (a verdict table and, per
column, reference vs current distributions drawn from the profile's bins)."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__

if TYPE_CHECKING:
    from conveyor.monitoring.drift import ColumnDrift, DriftResult


def build_report(
    drift: DriftResult,
    *,
    model: str,
    source: str,
    performance: dict[str, Any] | None = None,
    checked_at: float,
    task: str | None = None,
    meanings: dict[str, str] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """The JSON report and the HTML page of one check.

    ``prediction`` (in both) lists the model outputs checked, each with what it is (from
    ``meanings``, by output name) and its verdict.
    """
    report = {
        "model": model,
        "task": task,
        "source": source,
        "checked_at": checked_at,
        "generated_by": f"conveyor {__version__}",
        "drift": drift.to_dict(),
        "prediction": {
            "drifted": drift.prediction_drift,
            "outputs": [
                {
                    "output": o.column,
                    "meaning": (meanings or {}).get(o.column, o.column),
                    "verdict": o.verdict,
                }
                for o in drift.outputs
            ],
        },
        "performance": performance,
    }
    columns = [_row(c) for c in [*drift.columns, *drift.outputs]]
    html = (
        _environment()
        .get_template("drift.html.j2")
        .render(report=report, columns=columns, drift=drift, performance=performance)
    )
    return report, html.encode("utf-8")


def _row(column: ColumnDrift) -> dict[str, Any]:
    return {
        "c": column,
        "statistic": "-" if column.statistic is None else f"{column.statistic:.4g}",
        "p": "" if column.adjusted_p_value is None else f"{column.adjusted_p_value:.3g}",
        "psi": "-" if column.psi is None else f"{column.psi:.3f}",
        "plot": _plot(column) if column.bins else None,
    }


def _plot(column: ColumnDrift) -> str:
    """Reference vs current shares per bin or category, as a base64 PNG."""
    import matplotlib as mpl
    import numpy as np
    from matplotlib.figure import Figure

    with mpl.rc_context({"font.size": 8}):
        fig = Figure(figsize=(4.6, 2.4), layout="constrained")
        ax = fig.add_subplot()
        x = np.arange(len(column.bins))
        ax.bar(x - 0.2, column.reference_share, 0.4, label="reference", color="#8da0cb")
        ax.bar(x + 0.2, column.current_share, 0.4, label="current", color="#fc8d62")
        ax.set_xticks(x, [b[:14] for b in column.bins], rotation=35, ha="right")
        ax.set_ylabel("share of rows")
        ax.set_title(f"{column.column} ({column.verdict})")
        ax.legend(frameon=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    fig.clear()
    return base64.b64encode(buf.getvalue()).decode()


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("conveyor.monitoring", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
