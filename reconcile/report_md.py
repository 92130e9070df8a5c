"""The Markdown report of one run: the HTML report's sections as tables, the charts as small tables."""

from __future__ import annotations

import re

from reconcile.report_view import build_view, render
from reconcile.reportdata import ReportData


def render_markdown(data: ReportData, lang: str) -> str:
    # The template's blocks leave runs of blank lines; one blank line is all Markdown needs.
    return re.sub(r"\n{3,}", "\n\n", render("report.md", lang, v=build_view(data, lang)))
