"""The self-contained HTML report of one run: inline CSS and SVG charts, no script, no request."""

from __future__ import annotations

from dataclasses import dataclass

from reconcile.report.data import ReportData
from reconcile.report.view import age_label, build_view, rate_label, render
from reconcile.util.i18n import number, percent, t

CHART_BARS = 20  # orphan groups drawn; the census table lists them all


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str = ""  # the full label and value, shown on hover


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    cls: str = ""
    anchor: str = "start"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]  # none: nothing to draw
    labels: list[Label]
    note: str | None = None


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def rates_chart(data: ReportData, lang: str) -> Chart:
    """Paired horizontal bars: each statistics row's on-time rate before and after the plan."""
    left, scale, row_h, top = 230, 330, 34, 30
    bars = [Bar(left, 8, 10, 10, "before"), Bar(left + 130, 8, 10, 10, "after")]
    labels = [Label(left + 14, 17, t("report.before", lang)), Label(left + 144, 17, t("report.after", lang))]
    rows = [r for r in data.rates if r.before[1] or r.after[1]]
    for i, r in enumerate(rows):
        y, name = top + i * row_h, rate_label(r, lang)
        labels.append(Label(left - 8, y + 15, short(name, 34), "strong" if r.kind != "field" else "", "end"))
        for j, (cls, (part, whole)) in enumerate((("before", r.before), ("after", r.after))):
            w, text = round(scale * part / whole, 1) if whole else 0, percent(part, whole, lang)
            bars.append(Bar(left, y + 12 * j, w, 11, cls, f"{name}: {text}"))
            labels.append(Label(round(left + w + 4, 1), y + 12 * j + 9, text, "value"))
    height = top + len(rows) * row_h
    grid = [Bar(left + scale * k / 2, top - 4, 0.6, height - top, "grid") for k in range(3)]
    labels += [Label(left + scale * k / 2, height + 10, f"{50 * k}%", "axis", "middle") for k in range(3)]
    return Chart(t("report.chart_rates", lang), left + scale + 60, height + 14, grid + bars if rows else [], labels)


def orphans_chart(data: ReportData, lang: str) -> Chart:
    """Horizontal bars: orphaned dossiers per procedure, version and step, most first."""
    lines = sorted((c for c in data.census if c.orphaned),
                   key=lambda c: (-c.orphaned, c.procedure, c.version is None, c.version or 0, c.step or ""))
    left, scale, row_h, top = 300, 260, 18, 4
    peak = max((c.orphaned for c in lines), default=0)
    bars: list[Bar] = []
    labels: list[Label] = []
    for i, c in enumerate(lines[:CHART_BARS]):
        y, w = top + i * row_h, round(scale * c.orphaned / peak, 1)
        name = t("report.chart_group", lang, version="?" if c.version is None else c.version, step=c.step or "–",
                 name=c.name)
        bars.append(Bar(left, y, w, 13, "orphan", f"{name} ({c.procedure}): {number(c.orphaned, lang)}"))
        labels += [Label(left - 8, y + 10, short(name, 46), "", "end"),
                   Label(round(left + w + 4, 1), y + 10, number(c.orphaned, lang), "value")]
    more = len(lines) - CHART_BARS
    note = t("report.chart_more", lang, n=number(more, lang)) if more > 0 else None
    return Chart(t("report.chart_orphans", lang), left + scale + 60, top + len(bars) * row_h + 4, bars, labels, note)


def age_chart(data: ReportData, lang: str) -> Chart:
    """Histogram of stuck dossiers by working days since they last moved."""
    width, left, top, plot_h = 640, 40, 20, 150
    peak = max((n for _, _, n in data.stuck_age), default=0)
    slot = (width - 2 * left) / max(len(data.stuck_age), 1)
    bars = [Bar(left, top + plot_h, width - 2 * left, 0.8, "axis")]
    labels = [Label(width / 2, top + plot_h + 36, t("report.age_axis", lang), "axis", "middle")]
    for i, (low, high, n) in enumerate(data.stuck_age):
        h = round(plot_h * n / peak, 1) if peak else 0
        x, mid = round(left + i * slot + slot * 0.2, 1), round(left + (i + 0.5) * slot, 1)
        name = age_label(low, high, lang)
        bars.append(Bar(x, round(top + plot_h - h, 1), round(slot * 0.6, 1), h, "age", f"{name}: {number(n, lang)}"))
        labels += [Label(mid, round(top + plot_h - h - 4, 1), number(n, lang), "value", "middle"),
                   Label(mid, top + plot_h + 16, name, "", "middle")]
    return Chart(t("report.chart_age", lang), width, top + plot_h + 44, bars if peak else [], labels)


def render_html(data: ReportData, lang: str) -> str:
    """One HTML page, printable on A4; the same data gives the same bytes."""
    charts = [rates_chart(data, lang), orphans_chart(data, lang), age_chart(data, lang)]
    return render("report.html", lang, v=build_view(data, lang), charts=charts)
