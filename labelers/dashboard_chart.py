"""The dashboard's small charts of the past 30 days per source, as inline SVG (no script,
no style attribute: the site's CSP allows neither): the geometry, and its marks (bars, line,
dots) as one escaped string; the template draws the frame, the accessible name and the
caption. Each chart has its figures as a table beside it (the text alternative)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape

from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 300, 80


def _n(value: float) -> str:
    """A coordinate as the SVG gets it, formatted here once: the template's own number
    formatting (localize) cost more than the rest of the dashboard."""
    return f"{round(value, 1):g}"


@dataclass
class Rect:
    x: str
    y: str
    width: str
    height: str
    kind: str  # a CSS class: chart-bar, chart-bar-alt
    title: str


@dataclass
class Chart:
    title: str
    summary: str  # the SVG's accessible name: what it shows and its scale
    rects: list[Rect] = field(default_factory=list)
    line: str = ""  # an SVG polyline's "x,y x,y"; days without a value skipped
    dots: list[tuple[str, str, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def view_box(self) -> str:
        return f"-3 -3 {self.width + 6} {self.height + 6}"

    @property
    def marks(self) -> SafeString:
        """The bars, line and dots as SVG elements in one string instead of ~200 template
        variables per chart (which cost the dashboard more than its SQL). Safe as built:
        numbers formatted by _n, CSS classes from this module, every title escaped."""
        parts = [
            f'<rect class="{escape(r.kind)}" x="{r.x}" y="{r.y}" width="{r.width}" '
            f'height="{r.height}"><title>{escape(r.title)}</title></rect>'
            for r in self.rects
        ]
        if self.line:
            parts.append(f'<polyline class="chart-line" points="{escape(self.line)}"></polyline>')
        parts += [
            f'<circle class="chart-dot" cx="{x}" cy="{y}" r="2"><title>{escape(title)}</title>'
            "</circle>"
            for x, y, title in self.dots
        ]
        return mark_safe("".join(parts))  # noqa: S308 - every value escaped or a number above


def _slot(days: Sequence[date], width: int) -> float:
    return width / max(len(days), 1)


def bars_chart(
    title: str,
    days: Sequence[date],
    stacks: Sequence[tuple[str, str, Sequence[int]]],
    *,
    line: tuple[str, Sequence[float | None], float | None, str] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart:
    """Bars per day, stacked (each stack: its name, CSS class, values), scaled to the
    tallest day; `line`: (name, values, the least top of its scale or None, format), drawn
    over them on its own scale (up to its largest value, when that is above the top)."""
    totals = [sum(values[n] for _, _, values in stacks) for n in range(len(days))]
    top = max(totals, default=0) or 1
    slot = _slot(days, width)
    chart = Chart(title=title, summary="", width=width, height=height)
    for n, day in enumerate(days):
        base = float(height)
        for name, kind, values in stacks:
            value = values[n]
            if not value:
                continue
            bar = height * value / top
            base -= bar
            chart.rects.append(
                Rect(
                    x=_n(n * slot + slot * 0.15),
                    y=_n(base),
                    width=_n(slot * 0.7),
                    height=_n(bar),
                    kind=kind,
                    title=f"{day}: {value} {name}",
                )
            )
    shades = {"chart-bar": "light", "chart-bar-alt": "dark"}
    names = " and ".join(
        f"{name} ({shades.get(kind, kind)})" if len(stacks) > 1 else name
        for name, kind, _ in stacks
    )
    parts = [f"{names} per day (bars, highest {max(totals, default=0)})"]
    if line is not None:
        line_name, line_values, scale, fmt = line
        present = [v for v in line_values if v is not None]
        # A fixed scale (a rate's 100 %) grows to fit a value above it (a day with more
        # items flagged than received, flagged later than they came).
        line_top = max(scale or 0, max(present, default=0)) or 1
        points = []
        for n, (day, point) in enumerate(zip(days, line_values, strict=True)):
            if point is None:
                continue
            x, y = _n(n * slot + slot / 2), _n(height * (1 - point / line_top))
            points.append(f"{x},{y}")
            chart.dots.append((x, y, f"{day}: {line_name} {fmt.format(point)}"))
        chart.line = " ".join(points)
        parts.append(f"{line_name} (line, 0 to {fmt.format(line_top)})")
    chart.summary = f"{title}, {days[0]} to {days[-1]}: " + "; ".join(parts) if days else title
    return chart
