"""Statistics tables: the demo reproduces the seed appendix, identities hold on random dossier sets
(against an independent Python model, on every engine), conventions, periods, the after-plan view."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import invoke
from reconcile.stats import tables as stats
from reconcile.audit import groups
from reconcile.stats.commands import StatsRequest, statistics
from reconcile.demo.district import load_calibration
from reconcile.stats.model import COUNTS, StatsTable
from reconcile.store import audit_run, dossier, open_store, wf_state, wf_version
from reconcile.workflow.state import FLAG
from reconcile.model import FindingKind

EXTENDED = ("total", "online", "carried_over", "in_person", "resolved", "on_time_early", "late", "in_progress",
            "within_time", "overdue", "withdrawn", "returned_unresolved")
CAL_KEYS = dict(zip(EXTENDED, ("total", "online", "carried_over", "in_person", "resolved", "on_time", "late",
                               "in_progress", "within_time", "overdue", "withdrawn", "returned_unresolved")))


def assert_identities(table: StatsTable) -> None:
    fields = [r for r in table.rows if r.kind in ("field", "unknown_field")]
    for r in table.rows:
        v = r.values
        assert v["total"] == v["online"] + v["in_person"] + v["carried_over"], r
        assert v["total"] == (v["resolved"] + v["in_progress"] + v["withdrawn"] + v["returned_unresolved"]
                              + v["unclassified"]), r
        assert v["resolved"] == v["early"] + v["on_time"] + v["late"], r
        assert v["in_progress"] == v["within_time"] + v["overdue"], r
        assert v["online"] <= v["total"] - v["carried_over"] and v["stuck"] <= v["in_progress"], r
        assert v["on_time_early"] == v["early"] + v["on_time"]
        if table.convention != "separate":
            assert v["withdrawn"] == v["returned_unresolved"] == 0
    total = table.total.values
    assert total == {k: sum(r.values[k] for r in fields) for k in total}


# ------------------------------------------------------------------------------------ the demo


@pytest.fixture(scope="module")
def demo_store(demo_run: tuple[Path, Any]) -> str:
    return str(demo_run[0] / "inputs" / "reconcile.duckdb")


@pytest.fixture(scope="module")
def demo_settings(demo_run: tuple[Path, Any]) -> stats.StatsSettings:
    import yaml

    doc = yaml.safe_load((demo_run[0] / "inputs" / "reconcile.yaml").read_text(encoding="utf-8"))
    return stats.settings_from(doc["statistics"], "reconcile.yaml")


def test_demo_system_view_reproduces_the_seed_appendix(demo_store: str, demo_settings: stats.StatsSettings) -> None:
    table = statistics(demo_store, StatsRequest(run_id=1, layout="extended", settings=demo_settings))
    assert_identities(table)
    cal = load_calibration()
    published = {r["field"]: r for r in cal["rows"] if not r.get("synthetic")}
    by_label = {r.label: r for r in table.rows if r.kind == "field"}
    assert [c.key for c in table.columns][:12] == list(EXTENDED)
    for row in cal["rows"]:  # numbered in the appendix's order (the project file's statistics.fields)
        assert by_label[row["field"]].stt == row["row"]
    for fld, row in published.items():
        values = {k: by_label[fld].values[k] for k in EXTENDED}
        expected = {k: row[CAL_KEYS[k]] for k in EXTENDED}
        if row["row"] == 13:  # published resolved 10391 / on time 7905 break the row's own identity by 46
            assert row["published"] == {"resolved": expected["resolved"] - 46, "on_time": expected["on_time_early"] - 46}
        assert values == expected, fld
    assert {k: table.total.values[k] for k in EXTENDED} == {k: cal["totals"]["all"][CAL_KEYS[k]] for k in EXTENDED}
    land = next(r for r in table.rows if r.kind == "group")
    assert land.label == "lĩnh vực đất đai"
    assert {k: land.values[k] for k in EXTENDED} == {k: cal["totals"]["land"][CAL_KEYS[k]] for k in EXTENDED}
    # The open dossiers stuck on a gone step, a dead end or an unknown version: the census' three kinds.
    assert table.total.values["stuck"] == 80 + 8 + 7


def test_demo_after_plan_closes_what_was_returned_on_paper(demo_store: str, demo_settings: stats.StatsSettings,
                                                           demo_run: tuple[Path, Any]) -> None:
    before = statistics(demo_store, StatsRequest(run_id=1, settings=demo_settings))
    after = statistics(demo_store, StatsRequest(run_id=1, view="after-plan", settings=demo_settings))
    assert_identities(after)
    plan = json.loads((demo_run[0] / "fixes.json").read_text(encoding="utf-8"))["plan"]["counts"]
    b, a = before.total.values, after.total.values
    assert a["total"] == b["total"] and a["carried_over"] == b["carried_over"]
    assert a["resolved"] - b["resolved"] == plan["close"] == b["in_progress"] - a["in_progress"]
    assert a["stuck"] == 15  # the 80 on the gone steps are migrated; dead ends and unknown versions escalate
    assert any(n.key == "note.after_plan" for n in after.notes)


def test_demo_plan_file_gives_the_same_after_view(demo_store: str, demo_settings: stats.StatsSettings,
                                                  demo_run: tuple[Path, Any]) -> None:
    plan = demo_run[0] / "inputs" / "plan.yaml"
    built = statistics(demo_store, StatsRequest(run_id=1, view="after-plan", settings=demo_settings))
    from_file = statistics(demo_store, StatsRequest(run_id=1, view="after-plan", settings=demo_settings,
                                                    plan_path=str(plan)))
    assert from_file.rows == built.rows
    result = invoke("stats", "--store", demo_store, "--run", "2", "--view", "after-plan", "--plan", str(plan),
                    expect=2)
    assert result.stderr.strip() == (f"error: {plan}: the plan was made for audit run 1, not run 2. Hint: pass "
                                     "--run 1, or make a plan for run 2 with `reconcile plan`.")


def test_the_audit_stores_the_grouped_count_of_its_own_period(demo_store: str) -> None:
    """stats for the audit's period read the groups the audit stored: the very rows the query gives."""
    store = open_store(demo_store, create=False)
    try:
        with store.connect() as conn:
            start, end = date(2021, 1, 1), date(2021, 6, 30)
            for view, source in (("system", groups.system_source(1, None)), ("register", groups.register_source(1))):
                stored = stats._stored_groups(conn, 1, view, start, end)
                assert stored and sorted(map(tuple, stored), key=repr) == sorted(
                    map(tuple, conn.execute(groups.grouped_counts(source, start, end)).all()), key=repr)
            assert stats._stored_groups(conn, 1, "system", date(2021, 4, 1), end) == []
    finally:
        store.engine.dispose()


def test_carried_over_equals_the_previous_periods_in_progress(demo_store: str) -> None:
    q1 = statistics(demo_store, StatsRequest(run_id=1, period=(date(2021, 1, 1), date(2021, 3, 31))))
    q2 = statistics(demo_store, StatsRequest(run_id=1, period=(date(2021, 4, 1), date(2021, 6, 30))))
    assert_identities(q1)
    assert_identities(q2)
    ends = {r.label: r.values["in_progress"] + r.values["unclassified"] for r in q1.rows if r.kind == "field"}
    assert {r.label: r.values["carried_over"] for r in q2.rows if r.kind == "field"} == ends
    assert q2.total.values["carried_over"] > 0


def test_register_view_counts_each_code_once(demo_store: str) -> None:
    paper = statistics(demo_store, StatsRequest(run_id=1, view="register"))
    assert_identities(paper)
    assert paper.total.values["total"] == 13904 - 4  # four codes written twice in the book
    assert paper.total.values["online"] == 0 and paper.total.values["stuck"] == 0
    assert any(n.key == "note.register_view" for n in paper.notes)


@pytest.mark.parametrize("convention", ["on-time", "excluded"])
def test_conventions_move_withdrawn_and_returned(demo_store: str, convention: str) -> None:
    separate = statistics(demo_store, StatsRequest(run_id=1, layout="extended"))
    other = statistics(demo_store, StatsRequest(run_id=1, layout="extended", convention=convention))
    assert_identities(other)
    s, o = separate.total.values, other.total.values
    moved = s["withdrawn"] + s["returned_unresolved"]
    assert moved == 51 + 599
    if convention == "on-time":
        assert (o["total"], o["resolved"], o["on_time"]) == (s["total"], s["resolved"] + moved, s["on_time"] + moved)
    else:
        assert (o["total"], o["resolved"]) == (s["total"] - moved, s["resolved"])
        assert other.notes[0].params == {"withdrawn": 51, "returned": 599}
    assert other.notes[0].key == f"convention.{convention}"


def test_official_layout_with_separate_convention_appends_withdrawn_and_returned(demo_store: str) -> None:
    table = statistics(demo_store, StatsRequest(run_id=1))
    keys = [c.key for c in table.columns]
    assert keys == ["total", "online", "in_person", "carried_over", "resolved", "early", "on_time", "late",
                    "in_progress", "within_time", "overdue", "withdrawn", "returned_unresolved", "unclassified",
                    "stuck"]
    assert [c.number for c in table.columns] == [str(i) for i in range(1, 16)]


def test_stats_cli_json_and_errors(demo_run: tuple[Path, Any], demo_store: str) -> None:
    doc = json.loads(invoke("stats", "--store", demo_store, "--run", "1", "--format", "json", "--layout",
                            "extended", expect=0).stdout)
    assert doc["period"] == {"from": "2021-01-01", "to": "2021-06-30"} and doc["layout"] == "extended"
    total = next(r for r in doc["rows"] if r["kind"] == "total")
    assert total["values"]["total"] == 15256 and total["on_time_rate"] == round(100 * 9905 / 12463, 2)
    cases = [
        (["--format", "xlsx"], "error: stats --format xlsx: needs --out FILE.xlsx (a workbook does not go to a "
                               "terminal)."),
        (["--period", "2021-01-01", "2021-07-31"], "error: --period 2021-01-01 2021-07-31: ends after the audit date "
         "2021-06-30; the data says nothing about later days. Hint: end the period on or before the audit date, or "
         "audit later."),
        (["--period", "2021-06-01", "2021-01-01"], "error: --period 2021-06-01 2021-01-01: the period ends before it "
                                                   "starts."),
        (["--period", "31/02/2021", "2021-06-30"], "error: --period: '31/02/2021' is not a date. Expected YYYY-MM-DD "
                                                   "or dd/mm/yyyy."),
        (["--run", "99"], f"error: run 99: no such audit run in duckdb:///{demo_store}. Hint: `reconcile history`."),
    ]
    for args, message in cases:
        result = invoke("stats", "--store", demo_store, *args, expect=2)
        assert result.stderr.strip() == message


def test_stats_settings_are_validated(tmp_path: Path, demo_store: str) -> None:
    project = tmp_path / "reconcile.yaml"
    project.write_text("statistics: {convention: fold}\n", encoding="utf-8")
    result = invoke("stats", "--store", demo_store, "--config", str(project), expect=2)
    assert result.stderr.strip() == (f"error: {project}:1:26: statistics.convention: 'fold' is not one of: separate, "
                                     'on-time, excluded. Hint: see "Project file" in docs/file-formats.md.')
    project.write_text("statistics: {groups: [{label: x}]}\n", encoding="utf-8")
    result = invoke("stats", "--store", demo_store, "--config", str(project), expect=2)
    assert result.stderr.strip() == (f"error: {project}:1:23: statistics.groups[0]: 'fields' is required. Keys here: "
                                     'label. Hint: see "Project file" in docs/file-formats.md.')


# ------------------------------------------------------------------- random dossier sets, every engine

AS_OF = date(2021, 6, 30)
DAY0 = date(2020, 10, 1)
STATUSES = ("submitted", "received", "in_progress", "supplement_requested", "awaiting_payment", "finished", "returned",
            "withdrawn", "stopped", "rejected")
PROCS = {"PA": "Lĩnh vực A", "PB": "Lĩnh vực B"}
STUCK = FLAG[FindingKind.STEP_NOT_IN_VERSION]


@dataclass(frozen=True)
class D:
    proc: str | None
    status: str
    received: date | None
    finished: date | None
    returned: date | None
    due: date | None
    channel: str | None
    stuck: bool


def _day(n: int | None) -> date | None:
    return None if n is None else DAY0 + timedelta(days=n)


dossiers = st.builds(
    lambda proc, status, rec, fin, ret, due, channel, stuck: D(
        proc, status, _day(rec), _day(None if fin is None or rec is None else rec + fin),
        _day(None if ret is None or rec is None else rec + ret), _day(None if due is None or rec is None else rec + due),
        channel, stuck),
    st.sampled_from(["PA", "PB", None, "PX"]), st.sampled_from(STATUSES), st.one_of(st.none(), st.integers(0, 272)),
    st.one_of(st.none(), st.integers(0, 60)), st.one_of(st.none(), st.integers(0, 60)),
    st.one_of(st.none(), st.integers(0, 40)), st.sampled_from(["1", "2", " Online ", None]), st.booleans())


def oracle(ds: list[D], start: date, end: date, convention: str) -> dict[str | None, dict[str, int]]:
    """The table by the rules in plain Python, one dossier at a time."""
    out: dict[str | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for d in ds:
        kind = {"finished": "resolved", "returned": "resolved", "withdrawn": "withdrawn", "stopped": "returned_unresolved",
                "rejected": "returned_unresolved", "submitted": "submitted"}.get(d.status, "open")
        closed = None if kind in ("open", "submitted") else (d.finished or d.returned or AS_OF)
        if kind == "submitted" or (d.received and d.received > end):
            continue
        if d.received and d.received < start and closed is not None and closed < start:
            continue
        if closed is not None and closed <= end:
            if kind == "resolved":
                cat = ("unclassified" if d.finished is None or d.due is None else
                       "early" if d.finished < d.due else "on_time" if d.finished == d.due else "late")
            else:
                cat = kind
        else:
            cat = "unclassified" if d.due is None else "within_time" if d.due >= end else "overdue"
        if cat in ("withdrawn", "returned_unresolved") and convention != "separate":
            if convention == "excluded":
                continue
            cat = "on_time"
        row = out[PROCS.get(d.proc or "")]
        row["total"] += 1
        row[cat] += 1
        row["resolved"] += cat in ("early", "on_time", "late")
        row["in_progress"] += cat in ("within_time", "overdue")
        row["stuck"] += d.stuck and cat in ("within_time", "overdue")
        origin = ("carried_over" if d.received and d.received < start else
                  "online" if (d.channel or "").strip().lower() in ("2", "online") else "in_person")
        row[origin] += 1
    return out


def _fill(conn: sa.Connection, run_id: int, ds: list[D]) -> None:
    conn.execute(sa.insert(audit_run), [{"id": run_id, "as_of": AS_OF, "started_at": "t", "tool_version": "t",
                                         "fingerprint": "f", "inputs": "{}", "settings": "{}", "periods": "[]",
                                         "register_entries": 0, "system_dossiers": len(ds)}])
    conn.execute(sa.insert(wf_version), [{"run_id": run_id, "procedure": p, "version": 1, "name": f, "name_key": f,
                                          "field": f, "path": "x", "is_latest": True} for p, f in PROCS.items()])
    if ds:
        conn.execute(sa.insert(dossier), [
            {"run_id": run_id, "source_row": i, "dossier_code": f"C{i}", "procedure": d.proc, "workflow_key": d.proc,
             "status": d.status, "received_at": d.received, "finished_at": d.finished, "returned_at": d.returned,
             "due_at": d.due, "channel": d.channel, "fingerprint": "x"} for i, d in enumerate(ds)])
        rows = [{"run_id": run_id, "source_row": i, "status": d.status, "version_basis": "pinned",
                 "version_known": True, "step_known": False, "stalled_after": 10, "flags": STUCK}
                for i, d in enumerate(ds) if d.stuck]
        if rows:
            conn.execute(sa.insert(wf_state), rows)


def _check(url: str, ds: list[D], run_id: int, end: date, convention: str) -> None:
    store = open_store(url)
    try:
        with store.begin() as conn:
            _fill(conn, run_id, ds)
        with store.connect() as conn:
            start = date(2021, 1, 1)
            table = stats.compute(conn, run_id, AS_OF, period=(start, end), convention=convention)
            expected = oracle(ds, start, end, convention)
            assert_identities(table)
            got = {(None if r.kind == "unknown_field" else r.label): {k: r.values[k] for k in COUNTS}
                   for r in table.rows if r.kind in ("field", "unknown_field")}
            zero = dict.fromkeys(COUNTS, 0)
            assert got == {f: expected.get(f, zero) for f in got} and set(expected) <= set(got)
            # The next period's carried-over is this one's open dossiers (the model agrees). Not with the
            # "excluded" convention: a carried-over dossier withdrawn in the next period leaves its table.
            if end < AS_OF and convention != "excluded":
                nxt = stats.compute(conn, run_id, AS_OF, period=(end + timedelta(days=1), AS_OF),
                                    convention=convention)
                carried = {(r.kind, r.label): r.values["carried_over"] for r in nxt.rows}
                for r in table.rows:
                    v, n = r.values, carried.get((r.kind, r.label), 0)
                    assert v["in_progress"] <= n <= v["in_progress"] + v["unclassified"]
                    if not v["unclassified"]:
                        assert n == v["in_progress"]
    finally:
        store.engine.dispose()


RUNS = iter(range(1, 10_000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(dossiers, max_size=30), st.sampled_from([date(2021, 3, 31), AS_OF]),
       st.sampled_from(["separate", "on-time", "excluded"]))
def test_random_dossier_sets_match_the_model(tmp_path: Path, ds: list[D], end: date, convention: str) -> None:
    _check(str(tmp_path / "stats.duckdb"), ds, next(RUNS), end, convention)


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_server_engines_agree_with_the_model(request: pytest.FixtureRequest, engine: str) -> None:
    url = request.getfixturevalue("pg_url" if engine == "postgresql" else "mariadb_url")
    sample = [D("PA", s, DAY0 + timedelta(days=30 * (i % 9)), DAY0 + timedelta(days=30 * (i % 9) + i % 7),
                None, DAY0 + timedelta(days=30 * (i % 9) + 3), ["1", "2", None][i % 3], i % 4 == 0)
              for i, s in enumerate(STATUSES * 4)]
    sample.append(replace(sample[0], proc=None, due=None))
    for run_id, (end, convention) in enumerate([(AS_OF, "separate"), (date(2021, 3, 31), "on-time")], 1):
        _check(url, sample, run_id, end, convention)


def test_after_plan_overlay_on_a_server_engine(pg_url: str) -> None:
    ds = [D("PA", "in_progress", date(2021, 2, 1), None, None, date(2021, 2, 10), "1", True)]
    store = open_store(pg_url)
    try:
        with store.begin() as conn:
            _fill(conn, 1, ds)
        with store.connect() as conn:
            overlay = stats.overlay_of([("C0", "close", True, {"status": "returned", "finished_at": "2021-02-09",
                                                             "returned_at": "2021-02-09"})])
            after = stats.compute(conn, 1, AS_OF, view="after-plan", overlay=overlay)
            again = stats.compute(conn, 1, AS_OF, view="after-plan", overlay=overlay)  # the temp table is replaced
    finally:
        store.engine.dispose()
    for t in (after, again):
        row = next(r for r in t.rows if r.label == "Lĩnh vực A")
        assert (row.values["early"], row.values["in_progress"], row.values["stuck"]) == (1, 0, 0)


def test_stats_cli_writes_csv_and_xlsx(demo_store: str, tmp_path: Path) -> None:
    import csv
    import io

    import openpyxl

    text = invoke("stats", "--store", demo_store, "--run", "1", "--format", "csv", "--lang", "en", expect=0).stdout
    assert not text.startswith("\ufeff")  # the byte order mark is for files Excel opens, not for a pipe
    rows = list(csv.reader(io.StringIO(text)))
    total = next(r for r in rows if "Total" in r)
    assert "15256" in total and "12463" in total
    out = tmp_path / "stats.xlsx"
    result = invoke("stats", "--store", demo_store, "--run", "1", "--format", "xlsx", "--out", str(out), expect=0)
    assert result.stderr.strip() == f"wrote {out}"
    sheet = openpyxl.load_workbook(out).worksheets[0]
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert 15256 in values and 12463 in values and any(isinstance(v, str) and "Biểu 06" in v for v in values)
