"""PNG figures drawn from :func:`~conveyor.evaluation.diagnostics.diagnose` output.

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas directly,
never through ``pyplot``: no display is needed, the caller's backend is left alone, nothing is
kept in pyplot's figure registry, and it is safe from several threads. The same diagnostics
always give the same bytes (fixed style and size, no ``Software`` or date metadata).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

__all__ = [
    "TOP_FEATURES",
    "calibration_png",
    "confusion_matrix_png",
    "importance_png",
    "plots_for",
    "pr_png",
    "residuals_png",
    "roc_png",
]

TOP_FEATURES = 15
"""Features shown in the importance chart."""

_MAX_ANNOTATED_CLASSES = 25
"""Beyond this many classes the confusion matrix cells carry no numbers: they would not fit."""

_STYLE: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib, so every machine draws the same
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.dpi": 100,
    "savefig.facecolor": "white",
}
_BLUE, _ORANGE, _GREY = "#2563eb", "#ea580c", "#6b7280"


def confusion_matrix_png(diagnostics: Mapping[str, Any]) -> bytes:
    """Counts (and share of each true class) of every true/predicted pair, as a heatmap.

    Up to 6 classes each cell shows its count and its share of the true class; beyond that only
    the count, in a smaller font, and beyond 25 classes the colour alone. Short labels (up to 3
    characters, e.g. the digits) stay upright; longer ones are slanted so they never overlap.
    """
    return _png(_confusion_matrix_figure(diagnostics))


def _confusion_matrix_figure(diagnostics: Mapping[str, Any]) -> Figure:
    cm = _section(diagnostics, "confusion_matrix")
    labels = [_short(str(label)) for label in cm["labels"]]
    matrix = cm["matrix"]
    n = len(labels)
    cell_font = 9 if n <= 6 else 8 if n <= 12 else 7 if n <= 18 else 6
    tick_font = 9 if n <= 12 else 7
    wide = max((len(label) for label in labels), default=0) > 3

    def draw(ax: Axes) -> None:
        image = ax.imshow(matrix, cmap="Blues", vmin=0)
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
        peak = max((max(row) for row in matrix), default=0) or 1
        annotated = matrix if n <= _MAX_ANNOTATED_CLASSES else []
        for i, row in enumerate(annotated):
            total = sum(row) or 1
            for j, count in enumerate(row):
                colour = "white" if count > peak / 2 else "black"
                text = f"{count}\n{count / total:.0%}" if n <= 6 else f"{count}"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=cell_font)
        rotation = (45 if n > 6 else 30) if wide else 0
        ax.set_xticks(
            range(n),
            labels,
            rotation=rotation,
            ha="right" if rotation else "center",
            rotation_mode="anchor",
            fontsize=tick_font,
        )
        ax.set_yticks(range(n), labels, fontsize=tick_font)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("True")
        ax.grid(False)
        ax.set_title("Confusion matrix")

    size = min(4.5 + 0.35 * n, 10.0)
    return _figure(draw, figsize=(size + 1.0, size))


def roc_png(diagnostics: Mapping[str, Any]) -> bytes:
    """ROC curve of the positive class, with the chance diagonal."""
    roc = _section(diagnostics, "roc", hint="binary classification with predict_proba only")

    def draw(ax: Axes) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color=_GREY, linewidth=1, label="chance")
        ax.plot(roc["fpr"], roc["tpr"], color=_BLUE, linewidth=2, label=f"AUC = {roc['auc']:.3f}")
        _unit_axes(ax, "False positive rate", "True positive rate")
        ax.legend(loc="lower right")
        ax.set_title(f"ROC curve ({_positive(diagnostics)})")

    return _render(draw)


def pr_png(diagnostics: Mapping[str, Any]) -> bytes:
    """Precision-recall curve of the positive class, with its base rate."""
    pr = _section(diagnostics, "pr", hint="binary classification with predict_proba only")
    base = _base_rate(diagnostics)

    def draw(ax: Axes) -> None:
        if base is not None:
            ax.axhline(
                base, linestyle="--", color=_GREY, linewidth=1, label=f"base rate {base:.2f}"
            )
        ax.plot(
            pr["recall"], pr["precision"], color=_BLUE, linewidth=2, label=f"AP = {pr['auc']:.3f}"
        )
        _unit_axes(ax, "Recall", "Precision")
        ax.legend(loc="lower left")
        ax.set_title(f"Precision-recall ({_positive(diagnostics)})")

    return _render(draw)


def calibration_png(diagnostics: Mapping[str, Any]) -> bytes:
    """Observed frequency of the positive class against the mean predicted probability."""
    cal = _section(diagnostics, "calibration", hint="binary classification with predict_proba only")

    def draw(ax: Axes) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color=_GREY, linewidth=1, label="perfect")
        ax.plot(cal["prob_pred"], cal["prob_true"], marker="o", color=_BLUE, label="model")
        _unit_axes(ax, "Mean predicted probability", "Observed frequency")
        ax.legend(loc="upper left")
        ax.set_title(f"Calibration ({_positive(diagnostics)}, quantile bins)")

    return _render(draw)


def importance_png(diagnostics: Mapping[str, Any], *, top: int = TOP_FEATURES) -> bytes:
    """Permutation importance of the ``top`` raw input columns, largest first, with its std."""
    rows = list(_section(diagnostics, "permutation_importance"))[:top][::-1]
    scoring = diagnostics.get("importance_scoring") or "score"

    def draw(ax: Axes) -> None:
        y = range(len(rows))
        colours = [_BLUE if r["mean"] >= 0 else _ORANGE for r in rows]
        ax.barh(
            y,
            [r["mean"] for r in rows],
            xerr=[r["std"] for r in rows],
            color=colours,
            error_kw={"ecolor": _GREY, "capsize": 2},
        )
        ax.set_yticks(y, [_short(r["feature"], 28) for r in rows])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"Drop in {scoring} when the column is shuffled")
        ax.grid(axis="y", visible=False)
        ax.set_title("Permutation importance")

    return _render(draw, figsize=(6.5, max(2.5, 0.9 + 0.32 * len(rows))))


def residuals_png(diagnostics: Mapping[str, Any]) -> bytes:
    """Predicted against true values, and residuals against predictions (regression sample)."""
    sample = _section(diagnostics, "prediction_sample", hint="regression only")
    y_true, y_pred = sample["y_true"], sample["y_pred"]
    residual = [t - p for t, p in zip(y_true, y_pred, strict=True)]

    def draw_fit(ax: Axes) -> None:
        lo, hi = min(y_true + y_pred, default=0.0), max(y_true + y_pred, default=1.0)
        ax.plot([lo, hi], [lo, hi], linestyle="--", color=_GREY, linewidth=1)
        ax.scatter(y_true, y_pred, s=8, alpha=0.5, color=_BLUE, linewidths=0)
        ax.set_xlabel("True")
        ax.set_ylabel("Predicted")
        ax.set_title("Predicted vs true")

    def draw_residuals(ax: Axes) -> None:
        ax.axhline(0, linestyle="--", color=_GREY, linewidth=1)
        ax.scatter(y_pred, residual, s=8, alpha=0.5, color=_BLUE, linewidths=0)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Residual (true - predicted)")
        ax.set_title("Residuals")

    return _render(draw_fit, draw_residuals, figsize=(10.0, 4.0))


def plots_for(diagnostics: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """Every figure the diagnostics support, as ``(title, png)`` in report order."""
    candidates: list[tuple[str, str, Callable[[Mapping[str, Any]], bytes]]] = [
        ("confusion_matrix", "Confusion matrix", confusion_matrix_png),
        ("roc", "ROC curve", roc_png),
        ("pr", "Precision-recall curve", pr_png),
        ("calibration", "Calibration", calibration_png),
        ("prediction_sample", "Predictions and residuals", residuals_png),
        ("permutation_importance", "Permutation importance", importance_png),
    ]
    return [(title, draw(diagnostics)) for key, title, draw in candidates if diagnostics.get(key)]


def _render(*draws: Callable[[Axes], None], figsize: tuple[float, float] = (5.0, 4.0)) -> bytes:
    return _png(_figure(*draws, figsize=figsize))


def _figure(*draws: Callable[[Axes], None], figsize: tuple[float, float]) -> Figure:
    """One row of subplots, each drawn by one of ``draws``, in conveyor's fixed style."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(_STYLE):
        fig: Figure = Figure(figsize=figsize, layout="constrained")
        for i, draw in enumerate(draws, start=1):
            draw(fig.add_subplot(1, len(draws), i))
    return fig


def _png(fig: Figure) -> bytes:
    import matplotlib as mpl

    with mpl.rc_context(_STYLE):
        buf = io.BytesIO()
        # No "Software"/date metadata, so the same figure always gives the same bytes.
        fig.savefig(buf, format="png", metadata={"Software": None})
    fig.clear()  # not in pyplot's registry: dropping the references frees it
    return buf.getvalue()


def _section(diagnostics: Mapping[str, Any], key: str, *, hint: str = "") -> Any:
    value = diagnostics.get(key)
    if not value:
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"diagnostics have no {key!r} section{extra}")
    return value


def _unit_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _positive(diagnostics: Mapping[str, Any]) -> str:
    positive = diagnostics.get("positive")
    return f"positive: {_short(str(positive), 20)}" if positive is not None else "positive class"


def _base_rate(diagnostics: Mapping[str, Any]) -> float | None:
    """Share of the positive class in the test rows, from the confusion matrix."""
    cm, positive = diagnostics.get("confusion_matrix"), diagnostics.get("positive")
    if not cm or positive not in cm["labels"]:
        return None
    total = sum(sum(row) for row in cm["matrix"])
    return sum(cm["matrix"][cm["labels"].index(positive)]) / total if total else None


def _short(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"
