"""Server-side SVG: the run's DAG and small charts, drawn as markup (no script, no inline style).

The page's Content-Security-Policy forbids inline styles and every script but ``ui.js``, so
charts are plain ``<svg>`` elements coloured through classes that ``ui.css`` styles. Drawing on
the server keeps the pages readable without JavaScript and lets the live DAG be swapped in whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

NODE_W, NODE_H = 176, 46
GAP_X, GAP_Y, PAD = 22, 36, 10


@dataclass(frozen=True, slots=True)
class DagNode:
    """One step as the DAG draws it."""

    name: str
    status: str
    detail: str  # the second line: duration, "cached", "waiting", ...
    href: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class DagEdge:
    """Data flowing from one step to another, labelled with the dataset names."""

    source: str
    target: str
    names: tuple[str, ...]


def dataflow_edges(
    nodes: Sequence[str],
    outputs: Mapping[str, Sequence[str]],
    inputs: Mapping[str, Sequence[str]],
) -> list[DagEdge]:
    """Edges from the producer of each dataset name to every step that reads it.

    Args:
        nodes: the step names in pipeline order.
        outputs: step name -> the dataset names it writes.
        inputs: step name -> the dataset names it reads.
    """
    producer = {out: step for step in nodes for out in outputs.get(step, ())}
    flows: dict[tuple[str, str], list[str]] = {}
    for step in nodes:
        for name in inputs.get(step, ()):
            source = producer.get(name)
            if source is not None and source != step:
                flows.setdefault((source, step), []).append(name)
    return [DagEdge(s, t, tuple(sorted(set(n)))) for (s, t), n in flows.items()]


def _layers(nodes: Sequence[DagNode], edges: Sequence[DagEdge]) -> dict[str, int]:
    """Longest-path layering; a node with no known inputs after the first goes below the rest
    (its inputs are unknown until it runs, and pipeline order is a valid order)."""
    parents: dict[str, list[str]] = {n.name: [] for n in nodes}
    for e in edges:
        if e.source in parents and e.target in parents:
            parents[e.target].append(e.source)
    layer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        known = [layer[p] for p in parents[node.name] if p in layer]
        if known:
            layer[node.name] = max(known) + 1
        elif index == 0 or not _has_children(node.name, edges):
            layer[node.name] = 0 if index == 0 or not layer else max(layer.values()) + 1
        else:
            layer[node.name] = 0
    return layer


def _has_children(name: str, edges: Sequence[DagEdge]) -> bool:
    return any(e.source == name for e in edges)


def _ordered_rows(
    nodes: Sequence[DagNode], edges: Sequence[DagEdge], layer: Mapping[str, int]
) -> list[list[str]]:
    """Nodes per layer, each layer ordered by its parents' mean position (fewer crossings)."""
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in nodes:
        rows[layer[node.name]].append(node.name)
    slot: dict[str, float] = {}
    for row in rows:
        keyed = []
        for position, name in enumerate(row):
            ups = [slot[e.source] for e in edges if e.target == name and e.source in slot]
            keyed.append((sum(ups) / len(ups) if ups else float(position), position, name))
        row[:] = [name for *_, name in sorted(keyed)]
        for position, name in enumerate(row):
            slot[name] = position - (len(row) - 1) / 2
    return rows


def dag_svg(nodes: Sequence[DagNode], edges: Sequence[DagEdge]) -> Markup:
    """The DAG top to bottom: one box per step (class ``st-<status>``), curved edges between.

    Returns:
        An ``<svg>`` element sized to its content (it scales down to the page width).
    """
    if not nodes:
        return Markup("")
    rows = _ordered_rows(nodes, edges, _layers(nodes, edges))
    widest = max(len(r) for r in rows)
    width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X
    height = PAD * 2 + len(rows) * NODE_H + (len(rows) - 1) * GAP_Y
    at: dict[str, tuple[float, float]] = {}
    for depth, row in enumerate(rows):
        left = (width - (len(row) * NODE_W + (len(row) - 1) * GAP_X)) / 2
        for position, name in enumerate(row):
            at[name] = (left + position * (NODE_W + GAP_X), PAD + depth * (NODE_H + GAP_Y))
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img" '
        'aria-label="pipeline steps and the data flowing between them">',
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/>'
        "</marker></defs>",
    ]
    indirect = _indirect(edges)
    parts += [_edge(e, at, e in indirect) for e in edges if e.source in at and e.target in at]
    parts += [_node(n, *at[n.name]) for n in nodes]
    return _svg(parts)


def _indirect(edges: Sequence[DagEdge]) -> set[DagEdge]:
    """Edges whose target is also reached through another step: drawn faint, so the main flow
    reads at a glance while every dataset still has its arrow."""
    children: dict[str, set[str]] = {}
    for e in edges:
        children.setdefault(e.source, set()).add(e.target)

    def reaches(start: str, goal: str, skip: str) -> bool:
        stack, seen = [c for c in children.get(start, ()) if c != skip], set()
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(children.get(node, ()))
        return False

    return {e for e in edges if reaches(e.source, e.target, skip=e.target)}


def _edge(edge: DagEdge, at: Mapping[str, tuple[float, float]], indirect: bool) -> str:
    sx, sy = at[edge.source]
    tx, ty = at[edge.target]
    x1, y1 = sx + NODE_W / 2, sy + NODE_H
    x2, y2 = tx + NODE_W / 2, ty - 2
    bend = max((y2 - y1) / 2, 14)
    label = escape(", ".join(edge.names))
    kind = "edge indirect" if indirect else "edge"
    return (
        f'<path class="{kind}" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} '
        f'{x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}" marker-end="url(#arrow)">'
        f"<title>{escape(edge.source)} → {escape(edge.target)}: {label}</title></path>"
    )


def _node(node: DagNode, x: float, y: float) -> str:
    name = node.name if len(node.name) <= 22 else node.name[:21] + "…"
    title = escape(node.title or f"{node.name}: {node.status}")
    box = (
        f'<g class="node st-{escape(node.status)}" data-step="{escape(node.name)}" '
        f'data-status="{escape(node.status)}" transform="translate({x:.1f},{y:.1f})">'
        f"<title>{title}</title>"
        f'<rect width="{NODE_W}" height="{NODE_H}" rx="7"/>'
        f'<text x="12" y="19" class="name">{escape(name)}</text>'
        f'<text x="12" y="36" class="detail">{escape(node.status)} · {escape(node.detail)}</text>'
        "</g>"
    )
    return f'<a href="{escape(node.href)}">{box}</a>' if node.href else box


def _svg(parts: list[str]) -> Markup:
    """Close and mark the drawing safe: every text put into ``parts`` went through escape()."""
    return Markup("".join([*parts, "</svg>"]))  # noqa: S704 - built from escaped pieces only


# -- charts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrialPoint:
    """One tuning trial: its number, state and score (None if it failed or was pruned early)."""

    number: int
    state: str
    value: float | None


CHART_W, CHART_H = 520, 180
LEFT, BOTTOM, TOP, RIGHT = 52, 28, 12, 12


def _ticks(low: float, high: float) -> list[float]:
    if high == low:
        return [low]
    step = (high - low) / 4
    return [low + i * step for i in range(5)]


def trial_chart(points: Sequence[TrialPoint], *, metric: str, higher_better: bool = True) -> Markup:
    """Score per trial (dots, by state) and the best score so far (a step line).

    Returns:
        An ``<svg>``; empty markup when no trial has a score.
    """
    scored = [p for p in points if p.value is not None]
    if not scored:
        return Markup("")
    values = [p.value for p in scored if p.value is not None]
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 0.5 * (abs(low) or 1) * 0.01, high + 0.5 * (abs(high) or 1) * 0.01
    last = max(p.number for p in points) or 1
    inner_w, inner_h = CHART_W - LEFT - RIGHT, CHART_H - TOP - BOTTOM

    def px(n: int) -> float:
        return LEFT + inner_w * n / last

    def py(v: float) -> float:
        return TOP + inner_h * (1 - (v - low) / (high - low))

    parts = [_chart_open(CHART_W, CHART_H, f"{metric} per trial")]
    parts += _y_axis(_ticks(low, high), py, inner_w)
    parts.append(
        f'<text class="axis-label" x="{LEFT + inner_w / 2:.0f}" y="{CHART_H - 4}" '
        f'text-anchor="middle">trial number (0 to {last})</text>'
    )
    parts.append(_best_line(scored, px, py, higher_better=higher_better))
    parts += [_dot(p, px, py) for p in scored]
    return _svg(parts)


def _best_line(
    scored: Sequence[TrialPoint],
    px: Callable[[int], float],
    py: Callable[[float], float],
    *,
    higher_better: bool,
) -> str:
    best: float | None = None
    points: list[str] = []
    for p in sorted(scored, key=lambda t: t.number):
        value = p.value or 0.0
        if best is None or (value > best if higher_better else value < best):
            if best is not None:
                points.append(f"{px(p.number):.1f},{py(best):.1f}")
            best = value
        points.append(f"{px(p.number):.1f},{py(best):.1f}")
    joined = " ".join(points)
    return f'<polyline class="best" points="{joined}"><title>best so far</title></polyline>'


def _dot(p: TrialPoint, px: Callable[[int], float], py: Callable[[float], float]) -> str:
    value = p.value or 0.0
    state = escape(p.state)
    return (
        f'<circle class="dot t-{state}" cx="{px(p.number):.1f}" cy="{py(value):.1f}" r="4">'
        f"<title>trial {p.number} ({state}): {value:.4g}</title></circle>"
    )


def _chart_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
    )


def _y_axis(ticks: Sequence[float], py: Callable[[float], float], inner_w: float) -> list[str]:
    out = []
    for tick in ticks:
        y = py(tick)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + inner_w:.0f}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.3g}</text>'
        )
    return out


BAR_H, BAR_GAP, LABEL_W, BAR_W = 14, 10, 170, 300


def bar_chart(
    metrics: Sequence[str],
    series: Sequence[str],
    values: Mapping[tuple[str, str], float | None],
) -> Markup:
    """Horizontal grouped bars: one group per metric, one bar per series (run).

    Each metric gets its own scale (bar length relative to the group's largest magnitude), so
    metrics of different sizes (accuracy, log loss, rows) can sit in one chart; the value is
    written beside each bar.
    """
    if not metrics or not series:
        return Markup("")
    group_h = len(series) * BAR_H + BAR_GAP + 16
    legend_h = 20 * len(series) + 8
    width = LABEL_W + BAR_W + 80
    height = legend_h + len(metrics) * group_h
    parts = [_chart_open(width, height, "metrics of the compared runs")]
    for i, name in enumerate(series):
        y = 4 + i * 20
        parts.append(
            f'<rect class="bar c{i % 8}" x="{LABEL_W}" y="{y}" width="12" height="12"/>'
            f'<text class="tick" x="{LABEL_W + 18}" y="{y + 11}">{escape(name)}</text>'
        )
    for m_index, metric in enumerate(metrics):
        parts += _bar_group(metric, series, values, legend_h + m_index * group_h)
    return _svg(parts)


def _bar_group(
    metric: str,
    series: Sequence[str],
    values: Mapping[tuple[str, str], float | None],
    top: float,
) -> list[str]:
    shown = [v for s in series if (v := values.get((metric, s))) is not None]
    scale = max((abs(v) for v in shown), default=0.0) or 1.0
    out = [f'<text class="axis-label" x="0" y="{top + 12:.0f}">{escape(metric)}</text>']
    for i, name in enumerate(series):
        value = values.get((metric, name))
        y = top + 16 + i * BAR_H
        if value is None:
            out.append(f'<text class="tick" x="{LABEL_W}" y="{y + 11:.0f}">not recorded</text>')
            continue
        length = max(BAR_W * abs(value) / scale, 1.0)
        out.append(
            f'<rect class="bar c{i % 8}" x="{LABEL_W}" y="{y:.0f}" width="{length:.1f}" '
            f'height="{BAR_H - 2}"><title>{escape(name)}: {value:.6g}</title></rect>'
            f'<text class="tick" x="{LABEL_W + length + 6:.1f}" y="{y + 11:.0f}">{value:.4g}</text>'
        )
    return out
