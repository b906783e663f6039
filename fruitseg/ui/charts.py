"""Small grouped bar charts as inline SVG (for ``gr.HTML``).

Built server-side as a string in well under a millisecond and drawn by the browser, so the
LMD explorer can redraw on every slider step. (Gradio 6's ``gr.BarPlot`` stacks bars
that share an x value instead of grouping them, and a matplotlib figure costs ~100 ms per
chart on a small CPU.) Text and grid use ``currentColor`` so the charts follow the theme,
light or dark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Sequence


@dataclass
class Series:
    name: str
    values: Sequence[float]
    colour: str
    opacity: float = 1.0
    # Per-bar note shown in the tooltip and, for zero-height bars, as a "×" mark (e.g. "masked").
    notes: Sequence[str] | None = None


@dataclass
class Chart:
    title: str
    categories: Sequence[str]
    series: Sequence[Series]
    y_title: str = ""
    # Short tags drawn under a category's label (e.g. "true", "major").
    tags: Sequence[str] | None = None
    y_min: float | None = None
    y_max: float | None = None
    value_format: str = "{:.3f}"
    width: int = 640
    height: int = 280
    elem_class: str = "fs-chart"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2, 5 x 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    ticks = []
    value = start
    while value <= high + step * 1e-6:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high - 1e-12:
        ticks.append(round(value, 12))
    return ticks


def _fmt_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.0e}"
    return f"{value:g}"


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(chart: Chart) -> str:
    """The chart as an ``<svg>`` inside a ``<div>``, scaling to the width of its container."""
    categories = [str(c) for c in chart.categories]
    n_cat, n_ser = len(categories), max(1, len(chart.series))
    values = [float(v) for s in chart.series for v in s.values if math.isfinite(float(v))]
    low = min([0.0, *values]) if chart.y_min is None else chart.y_min
    high = max([0.0, *values]) if chart.y_max is None else chart.y_max
    if high - low < 1e-12:
        high = low + 1.0
    ticks = nice_ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])

    rotate = n_cat > 8 or any(len(c) > 8 for c in categories)
    label_space = 70 if rotate else 28
    tag_space = 14 if chart.tags and any(chart.tags) else 0
    legend_h = 22
    left, right, top = 52, 12, 30 + legend_h
    bottom = label_space + tag_space + 8
    width, height = chart.width, chart.height + (label_space - 28)
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(v: float) -> float:
        v = min(max(v, low), high)
        return top + plot_h * (high - v) / (high - low)

    out: list[str] = [
        f'<div class="{escape(chart.elem_class)}">',
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg" '
        'style="font-family: var(--font, sans-serif); font-size: 11px; color: var(--body-text-color, #222); max-width: 100%;">',
        f'<text x="{left}" y="16" font-size="13" font-weight="600" fill="currentColor">{escape(chart.title)}</text>',
    ]
    # Legend.
    x = left
    for s in chart.series:
        out.append(
            f'<rect x="{x}" y="{24}" width="11" height="11" rx="2" fill="{s.colour}" fill-opacity="{s.opacity}"/>'
            f'<text x="{x + 15}" y="{33}" fill="currentColor">{escape(s.name)}</text>'
        )
        x += 24 + 6.2 * len(s.name)
    # Grid and y axis.
    for t in ticks:
        y = y_of(t)
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
            f'stroke-opacity="{0.45 if t == 0 else 0.12}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="currentColor" fill-opacity="0.8">{_fmt_tick(t)}</text>'
        )
    if chart.y_title:
        cy = top + plot_h / 2
        out.append(
            f'<text x="12" y="{cy:.1f}" transform="rotate(-90 12 {cy:.1f})" text-anchor="middle" '
            f'fill="currentColor" fill-opacity="0.8">{escape(chart.y_title)}</text>'
        )
    # Bars.
    group_w = plot_w / max(1, n_cat)
    bar_w = group_w * 0.8 / n_ser
    zero_y = y_of(0.0)
    for i, name in enumerate(categories):
        gx = left + i * group_w + group_w * 0.1
        for j, s in enumerate(chart.series):
            v = float(s.values[i]) if i < len(s.values) else float("nan")
            bx = gx + j * bar_w
            note = s.notes[i] if s.notes is not None and i < len(s.notes) else ""
            shown = chart.value_format.format(v) if math.isfinite(v) else "n/a"
            tip = f"{name} · {s.name}: {shown}" + (f" ({note})" if note else "")
            if not math.isfinite(v):
                continue
            y = y_of(v)
            top_y, h = min(y, zero_y), abs(zero_y - y)
            out.append(
                f'<rect x="{bx:.1f}" y="{top_y:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{s.colour}" fill-opacity="{s.opacity}"><title>{escape(tip)}</title></rect>'
            )
            if note and h < 1.5:
                cx = bx + bar_w / 2
                out.append(
                    f'<text x="{cx:.1f}" y="{zero_y - 3:.1f}" text-anchor="middle" font-size="10" '
                    f'fill="{s.colour}"><title>{escape(tip)}</title>×</text>'
                )
        # Category label (and tag).
        cx = left + (i + 0.5) * group_w
        ly = top + plot_h + 14
        label = escape(_short(name))
        if rotate:
            out.append(
                f'<text x="{cx:.1f}" y="{ly:.1f}" text-anchor="end" transform="rotate(-40 {cx:.1f} {ly:.1f})" '
                f'fill="currentColor"><title>{escape(name)}</title>{label}</text>'
            )
        else:
            out.append(f'<text x="{cx:.1f}" y="{ly:.1f}" text-anchor="middle" fill="currentColor">{label}</text>')
        if chart.tags and i < len(chart.tags) and chart.tags[i]:
            ty = height - 6
            out.append(
                f'<text x="{cx:.1f}" y="{ty:.1f}" text-anchor="middle" font-size="9.5" font-weight="600" '
                f'fill="currentColor" fill-opacity="0.75">{escape(chart.tags[i])}</text>'
            )
    out.append("</svg></div>")
    return "".join(out)
