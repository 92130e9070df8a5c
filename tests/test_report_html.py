"""The HTML and Markdown reports: formats per language, limits, escaping, determinism, and a real headless Chromium."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconcile.util import i18n
from reconcile.report.htmlout import render_html
from reconcile.report.mdout import render_markdown
from reconcile.report.data import FindingSection, ReportData, Worklist
from tests.report_sample import sample_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
RENDERERS = [render_html, render_markdown]


@pytest.mark.parametrize("render", RENDERERS)
def test_vietnamese_report_uses_vietnamese_numbers_dates_and_rates(render: Any) -> None:
    text = render(sample_report(), "vi")
    for shown in ("15.256", "13.904", "30/06/2021", "01/01/2021", "76,7%", "76,8%", "+0,1", "Lĩnh vực đất đai",
                  "Tổng số hồ sơ nhận giải quyết", "(15)", "huyện Bình Sơn", "01/07/2021 08:00"):
        assert shown in text, shown
    assert "15,256" not in text and "2021-06-30" not in text


@pytest.mark.parametrize("render", RENDERERS)
def test_english_report_uses_english_numbers_and_iso_dates(render: Any) -> None:
    text = render(sample_report(), "en")
    for shown in ("15,256", "13,904", "2021-06-30", "76.7%", "76.8%", "+0.1", "Total received", "Executive summary"):
        assert shown in text, shown
    assert "15.256" not in text and "Tóm tắt" not in text


@pytest.mark.parametrize("render", RENDERERS)
def test_limit_cuts_each_list_and_says_how_many_more(render: Any) -> None:
    text = render(sample_report(limit=3), "en")
    assert "-210204-0004" not in text  # 4th of step_not_in_version and of VPDK's worklist: both cut
    assert "… and 2 more: see the CSV/XLSX." in text  # step_not_in_version: 5 findings, 3 listed
    assert "… and 1 more: see the CSV/XLSX." in text  # VPDK worklist: 4 items, 3 listed
    everything = render(sample_report(limit=10), "en")
    assert "-210204-0004" in everything and "more: see the CSV/XLSX" not in everything


def test_html_escapes_user_text() -> None:
    data = _with_hostile_text(sample_report())
    html = render_html(data, "vi")
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_markdown_escapes_user_text_and_keeps_its_tables_whole() -> None:
    md = render_markdown(_with_hostile_text(sample_report()), "vi")
    assert "<script>" not in md and "\\<script\\>" in md
    for table in re.findall(r"(?:^\|.*\|\n)+", md, re.M):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(widths) == 1, table


@pytest.mark.parametrize("render", RENDERERS)
@pytest.mark.parametrize("lang", i18n.LANGS)
def test_same_run_renders_the_same_bytes(render: Any, lang: str) -> None:
    assert render(sample_report(), lang) == render(sample_report(), lang)


def test_html_loads_nothing_from_anywhere() -> None:
    html = render_html(sample_report(), "vi")
    assert not re.search(r"https?://|//[a-z]|\bsrc=|\bhref=|url\(|@import|<script|<link|<img", html, re.I)
    assert "@page { size: A4" in html and html.count("<svg") == 3


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_every_catalog_key_the_reports_use_has_both_languages(monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    used: set[str] = set()

    class Recording(dict):  # type: ignore[type-arg]
        def __getitem__(self, key: str) -> Any:
            used.add(key)
            return super().__getitem__(key)

    full = i18n.catalog()
    recording = Recording(full)
    monkeypatch.setattr(i18n, "catalog", lambda: recording)
    render_html(sample_report(), lang)
    render_markdown(sample_report(), lang)
    assert any(k.startswith("report.") for k in used)
    assert [k for k in sorted(used) if not (full[k].get("vi") and full[k].get("en"))] == []


@pytest.mark.parametrize("render", RENDERERS)
def test_clean_run_renders_with_nothing_to_list(render: Any) -> None:
    base = sample_report()
    data = replace(base, findings=[], census=[], worklists=[], stuck_age=[(lo, hi, 0) for lo, hi, _ in base.stuck_age],
                   summary=replace(base.summary, findings=0, by_kind={}, plan_actions={}, plan_unconfirmed=0))
    text = render(data, "en")
    assert "No findings." in text and "15,256" in text


def test_html_of_a_large_district_stays_small_and_fast() -> None:
    """A 1M-dossier district: ~30k findings and worklist items; only the limit per section reaches the page."""
    base = sample_report(limit=50)
    item = base.findings[1].items[0]
    sections = [replace(s, count=2000, items=[replace(item, dossier_code=f"{s.kind}-{i:06d}") for i in range(2000)])
                for s in base.findings for _ in range(5)]
    work = base.worklists[0].items[0]
    worklists = [Worklist(f"UNIT{u:02d}", [replace(work, dossier_code=f"U{u:02d}-{i:06d}") for i in range(1000)])
                 for u in range(30)]
    census = [replace(base.census[0], step=f"S{i:03d}") for i in range(300)]
    data = replace(base, findings=sections, worklists=worklists, census=census)
    started = time.perf_counter()
    html = render_html(data, "vi")
    assert time.perf_counter() - started < 10
    assert len(html.encode()) < 5_000_000
    assert "… và 1.950 hồ sơ khác" in html and "… và 280 nhóm khác" in html


def test_html_report_renders_in_headless_chromium_without_a_request(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI needs Debian's chromium package (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(sample_report(), "vi"), encoding="utf-8")
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(page_file.as_uri(), wait_until="load")
            body = page.inner_text("body")
            for shown in ("15.256", "13.904", "76,7% → 76,8%", "+0,1", "30/06/2021", "huyện Bình Sơn"):
                assert shown in body, shown
            boxes = [svg.bounding_box() for svg in page.query_selector_all("svg.chart")]
            assert len(boxes) == 3
            assert all(b and b["width"] > 100 and b["height"] > 20 for b in boxes), boxes
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report-html.png"), full_page=True)
            pdf = page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF") and b"/MediaBox [0 0 842.88 595.91998]" in pdf  # statistics: landscape
            # Printed, every table fits its page's width: A4 portrait, the statistics A4 landscape (less margins).
            page.emulate_media(media="print")
            for width, tables in ((710, "table:not(.stats)"), (1039, "table.stats")):
                page.set_viewport_size({"width": width, "height": 1000})
                widths = page.eval_on_selector_all(tables, "ts => ts.map(t => t.scrollWidth)")
                assert widths and max(widths) <= width, (tables, widths)
        finally:
            browser.close()
    assert requests == [page_file.as_uri()]
    assert errors == []


def _with_hostile_text(data: ReportData) -> ReportData:
    """User text that is also markup: a field label, the district, a unit."""
    hostile = "<script>alert(1)</script>"
    before = data.stats_before
    rows = tuple(replace(r, label=hostile) if r.stt == 1 else r for r in before.rows)
    findings = [FindingSection(s.kind, s.severity, s.count, [(f"<b>{u}</b>|x", n) for u, n in s.by_unit], s.items)
                for s in data.findings]
    return replace(data, district=f"<b>{data.district}</b>", stats_before=replace(before, rows=rows),
                   findings=findings)
