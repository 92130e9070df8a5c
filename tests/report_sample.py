"""A small, hand-made ReportData for renderer tests (the demo district's real report is tested elsewhere)."""

from __future__ import annotations

from reconcile.report.data import (
    Action, CensusLine, Evidence, FindingItem, FindingSection, RateChange, ReportData, Summary, WorkItem, Worklist,
)
from reconcile.stats.model import COUNTS, Note, StatsRow, StatsTable, columns_for


def _row(stt: int | None, kind: str, label: str, **v: int) -> StatsRow:
    values = {k: v.get(k, 0) for k in COUNTS}
    values["resolved"] = values["early"] + values["on_time"] + values["late"]
    values["in_progress"] = values["within_time"] + values["overdue"]
    values["total"] = (values["resolved"] + values["in_progress"] + values["withdrawn"]
                       + values["returned_unresolved"] + values["unclassified"])
    values["in_person"] = values["total"] - values["online"] - values["carried_over"]
    values["on_time_early"] = values["early"] + values["on_time"]
    return StatsRow(stt, kind, label, values)


def _sum(kind: str, label: str, rows: list[StatsRow]) -> StatsRow:
    keys = [*COUNTS, "on_time_early"]
    return StatsRow(None, kind, label, {k: sum(r.values[k] for r in rows) for k in keys})


def stats_table(view: str = "system", layout: str = "official", after: bool = False) -> StatsTable:
    land = _row(1, "field", "Lĩnh vực đất đai", online=12, carried_over=1340, early=5000, on_time=2951,
                late=2486, within_time=1498, overdue=645 - (40 if after else 0), withdrawn=51,
                returned_unresolved=599, stuck=80 if not after else 0)
    if after:  # 40 overdue dossiers closed on time by the plan
        land = _row(1, "field", "Lĩnh vực đất đai", online=12, carried_over=1340, early=5000, on_time=2991,
                    late=2486, within_time=1498, overdue=605, withdrawn=51, returned_unresolved=599)
    civil = _row(2, "field", "Lĩnh vực hộ tịch", carried_over=10, early=100, on_time=112)
    culture = _row(3, "field", "Lĩnh vực văn hóa cơ sở", on_time=4, unclassified=1)
    fields = [land, civil, culture]
    rows = (*fields, _sum("total", "", fields), _sum("group", "lĩnh vực đất đai", [land]))
    notes = (Note("convention.separate"), Note("note.timeliness"), Note("note.carried"), Note("note.stuck", {"n": 80}),
             Note("note.unclassified", {"n": 1}))
    return StatsTable(1, "2021-06-30", "2021-01-01", "2021-06-30", view, layout, "separate",
                      columns_for(layout, "separate"), rows, notes)


def sample_report(limit: int = 3) -> ReportData:
    before, after, paper = stats_table(), stats_table("after-plan", after=True), stats_table("register")
    items = [FindingItem(f"000.00.53.H48-2102{i:02d}-00{i:02d}", "VPDK", "Lĩnh vực đất đai",
                         {"version": 2, "step": "S05", "step_name": "Thẩm định hồ sơ"},
                         Evidence("so-theo-doi-ho-so-2021.xlsx", "Q1", 100 + i)) for i in range(1, 6)]
    sections = [
        FindingSection("resolved_not_closed", "error", 2, [("VPDK", 2)], items[:2]),
        FindingSection("step_not_in_version", "error", 5, [("VPDK", 4), ("DODAC", 1)], items),
        FindingSection("register_numbering_gap", "warning", 1, [("", 1)],
                       [FindingItem(None, "", "", {"book": "so-theo-doi-ho-so-2021.xlsx", "from": 17, "to": 18},
                                    Evidence("so-theo-doi-ho-so-2021.xlsx", "Q1", 19))]),
    ]
    census = [CensusLine("1.004227.000.00.00.H48", "Đăng ký biến động quyền sử dụng đất", 2, "S05", 40, 40,
                         {"step_not_in_version": 40, "stalled": 40}),
              CensusLine("1.004227.000.00.00.H48", "Đăng ký biến động quyền sử dụng đất", 3, "S03", 120, 0, {}),
              CensusLine("1.004199.000.00.00.H48", "Cấp đổi Giấy chứng nhận", None, "S02", 7, 7,
                         {"unknown_version": 7})]
    rates = [RateChange(r.label, r.kind, r.on_time, a.on_time) for r, a in zip(before.rows, after.rows)]
    work = [WorkItem(it.dossier_code or "", "Nguyễn Văn An", "S05", "Thẩm định hồ sơ", ["step_not_in_version", "stalled"],
                     Action("migrate", {"step": "S06", "version": 3}, "r1", True), it.evidence) for it in items]
    work[0] = WorkItem(work[0].dossier_code, "Trần Thị Bình", None, None, ["resolved_not_closed"],
                       Action("close", {"date": "2021-03-02"}, "default:close", True), work[0].evidence)
    summary = Summary(register_entries=13904, system_dossiers=15256, findings=8,
                      by_kind={"resolved_not_closed": 2, "step_not_in_version": 5, "register_numbering_gap": 1},
                      open_dossiers=2143, orphaned=87, plan_actions={"close": 40, "migrate": 80, "escalate": 7},
                      plan_unconfirmed=3, on_time_before=before.total.on_time, on_time_after=after.total.on_time)
    run = {"id": 1, "as_of": "2021-06-30", "started_at": "2021-07-01T08:00:00+00:00", "tool_version": "0.1.0",
           "fingerprint": "0123456789abcdef", "periods": [{"book": "so-theo-doi-ho-so-2021.xlsx",
                                                           "period_from": "2021-01-01", "period_to": "2021-12-31",
                                                           "entries": 13904}],
           "paper_only_units": {"UBND xã Bình Hải": 12}}
    return ReportData(run, "huyện Bình Sơn", limit, summary, census, sections, before, after, paper, rates,
                      [(0, 10, 3), (11, 30, 20), (31, 60, 40), (61, 120, 20), (121, None, 4)],
                      [Worklist("DODAC", work[4:]), Worklist("VPDK", work[:4])])
