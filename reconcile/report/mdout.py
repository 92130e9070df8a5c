"""The Markdown report of one run: the HTML report's sections as tables, the charts as small tables."""

from __future__ import annotations

import re

from reconcile.report.data import ReportData
from reconcile.report.view import build_view, render


def render_markdown(data: ReportData, lang: str) -> str:
    # The template's blocks leave runs of blank lines; one blank line is all Markdown needs.
    return re.sub(r"\n{3,}", "\n\n", render("report.md", lang, v=build_view(data, lang)))
