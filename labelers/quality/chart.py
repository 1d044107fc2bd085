"""A small chart of volume and precision per day, drawn by the template as SVG."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

from labelers.quality.figures import DayQuality


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    precision_points: str  # an SVG polyline's "x,y x,y"; days without decided flags skipped
    dots: list[tuple[float, float, str]]
    first_day: str
    last_day: str
    max_labeled: int

    @property
    def view_box(self) -> str:
        # A margin, so the line's dots at 0 % and 100 % are not cut in half.
        return f"-4 -4 {self.width + 8} {self.height + 8}"

    @property
    def marks(self) -> SafeString:
        """The bars, line and dots as SVG elements in one string: drawn by the template, 90
        days were ~700 variables, each localized and escaped (a third of the page's Python
        time). Safe as built: numbers (floats formatted here), every title escaped."""
        parts = [
            f'<rect class="chart-bar" x="{b.x:g}" y="{b.y:g}" width="{b.width:g}" '
            f'height="{b.height:g}"><title>{escape(b.title)}</title></rect>'
            for b in self.bars
        ]
        if self.precision_points:
            parts.append(
                f'<polyline class="chart-line" points="{escape(self.precision_points)}"></polyline>'
            )
        parts += [
            f'<circle class="chart-dot" cx="{x:g}" cy="{y:g}" r="3"><title>{escape(title)}'
            "</title></circle>"
            for x, y, title in self.dots
        ]
        return mark_safe("".join(parts))  # noqa: S308 - every value escaped or a number


def daily_chart(days: list[DayQuality], *, width: int = 640, height: int = 160) -> Chart | None:
    """Geometry only (numbers, no markup): bars are labeled items per day, scaled to the
    busiest day; the line is precision per day on a fixed 0..1 scale."""
    if not days:
        return None
    top = max(day.labeled for day in days) or 1
    slot = width / len(days)
    bars, points, dots = [], [], []
    for index, day in enumerate(days):
        bar_height = height * day.labeled / top
        x = index * slot
        bars.append(
            Bar(
                x=round(x + slot * 0.1, 1),
                y=round(height - bar_height, 1),
                width=round(slot * 0.8, 1),
                height=round(bar_height, 1),
                title=f"{day.day}: {day.labeled} labeled, {day.flagged} flagged",
            )
        )
        if day.precision is not None:
            cx, cy = round(x + slot / 2, 1), round(height * (1 - day.precision), 1)
            points.append(f"{cx},{cy}")
            dots.append(
                (cx, cy, f"{day.day}: precision {day.precision:.0%} of {day.flagged_decided}")
            )
    return Chart(
        width=width,
        height=height,
        bars=bars,
        precision_points=" ".join(points),
        dots=dots,
        first_day=str(days[0].day),
        last_day=str(days[-1].day),
        max_labeled=top,
    )
