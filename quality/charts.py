"""Server-rendered SVG charts for the supervisor dashboard: no JavaScript, nothing from a CDN.

Every mark carries `data-label` and `data-value` (what it shows) and a
<title> (the browser's tooltip), so a test can read the chart as a person does.
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 640, 240, 56, 40, 16, 16


def fmt(kind: str, value: float | None) -> str:
    if value is None:
        return "–"
    if kind == "ratio":
        return f"{value * 100:.1f} %"
    if kind == "mean_seconds":
        return f"{value:.0f} s"
    return f"{value:.1f}"


def _scale(values: list[float], kind: str) -> tuple[float, float]:
    if kind == "ratio":
        return 0.0, max([1.0, *values])
    if kind == "nps":
        return -100.0, 100.0
    return 0.0, (max(values) * 1.1 if values and max(values) > 0 else 1.0)


def line_chart(points: list[tuple[str, float | None]], kind: str, title: str) -> SafeString:
    """One series over time: `points` are (bucket label, value or None), in order."""
    known = [(i, v) for i, (_, v) in enumerate(points) if v is not None]
    lo, hi = _scale([v for _, v in known], kind)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return LEFT + i * step, TOP + plot_h - (v - lo) / (hi - lo) * plot_h

    parts = [_frame(title, lo, hi, kind)]
    if known:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in known))
        parts.append(f'<polyline class="series" fill="none" stroke="#2563eb" stroke-width="2" points="{path}"/>')
    for i, (label, value) in enumerate(points):
        if value is None:
            continue
        x, y = xy(i, value)
        text = f"{label}: {fmt(kind, value)}"
        parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2563eb" '
                     f'data-label="{escape(label)}" data-value="{value}"><title>{escape(text)}</title></circle>')
    for i, (label, _) in enumerate(points):
        if len(points) <= 14 or i % max(1, len(points) // 7) == 0:
            x = LEFT + i * step
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="10" text-anchor="middle">'
                         f"{escape(label)}</text>")
    return _svg("line", title, parts)


def bar_chart(bars: list[tuple[str, float | None]], kind: str, title: str) -> SafeString:
    """One bar per group: (label, value or None)."""
    values = [v for _, v in bars if v is not None]
    lo, hi = _scale(values, kind)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(bars))
    zero = TOP + plot_h - (0 - lo) / (hi - lo) * plot_h
    parts = [_frame(title, lo, hi, kind)]
    for i, (label, value) in enumerate(bars):
        x = LEFT + i * slot + slot * 0.15
        if value is not None:
            y = TOP + plot_h - (value - lo) / (hi - lo) * plot_h
            top, height = min(y, zero), abs(zero - y)
            text = f"{label}: {fmt(kind, value)}"
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}" '
                         f'height="{max(height, 1):.1f}" fill="#16a34a" data-label="{escape(label)}" '
                         f'data-value="{value}"><title>{escape(text)}</title></rect>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="10" '
                     f'text-anchor="middle">{escape(label)}</text>')
    return _svg("bar", title, parts)


def _frame(title: str, lo: float, hi: float, kind: str) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    lines = []
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = TOP + plot_h - plot_h * k / 4
        lines.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 6}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{fmt(kind, v)}</text>')
    return "".join(lines)


def _svg(kind: str, title: str, parts: list[str]) -> SafeString:
    # Safe: every text in `parts` and the title went through escape(); the rest are numbers and our own `kind`.
    return mark_safe(f'<svg class="chart chart-{kind}" role="img" aria-label="{escape(title)}" '  # nosec B308 B703
                     f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" xmlns="http://www.w3.org/2000/svg">'
                     + "".join(parts) + "</svg>")
