"""Property tests: normalisation is idempotent and has one meaning in Python and SQL; every dossier
of the union of both sides lands in exactly one reconciliation class."""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.audit.run import AuditSettings
from reconcile.workflow.catalog import load_catalog
from reconcile.audit.inputs import Loaded
from reconcile.audit.record import record_run
from reconcile.model import CLOSED_STATUSES, FindingKind, MatchClass, Status
from reconcile.util.normalize import (
    compare_key, normalize_code, normalize_text, sql_code, sql_compare_key, sql_text,
)
from reconcile.sources.register import FIELDS
from reconcile.sources.system import DOSSIER_FIELDS, TASK_FIELDS, SystemData, from_tables
from reconcile.sources.register import RegisterData
from reconcile.store import open_store, reconciliation

from conftest import CASES

messy = st.text(alphabet=st.sampled_from(list("0123456789.-ABHahđĐ ăâêôơư\u0300\u0301\u0303\u0309\u0323"
                                              "\u00a0\u2013\u2014\t\n\u200b\ufeff")), max_size=30)


@given(messy)
def test_normalisation_is_idempotent(raw: str) -> None:
    for f in (normalize_code, normalize_text, compare_key):
        once = f(raw)
        assert f(once) == once


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messy, min_size=1, max_size=20))
def test_sql_twins_agree_with_python_rules(values: list[str]) -> None:
    con = duckdb.connect()
    con.register("t", pa.table({"v": pa.array(values, pa.string())}))
    rows = con.execute(f"SELECT {sql_code('v')}, {sql_text('v')}, {sql_compare_key('v')} FROM t").fetchall()
    assert rows == [(normalize_code(v), normalize_text(v), compare_key(v)) for v in values]


CODES = [f"000.00.53.H48-2101{d:02d}-{n:04d}" for d in (4, 5) for n in range(1, 7)] + \
        ["000.00.53.H48-201215-0001"]
KEY = "1.004227.000.00.00.H48"
paper_side = st.fixed_dictionaries({
    "code": st.sampled_from(CODES), "outcome": st.sampled_from(["", "returned", "Rút hồ sơ", "Trả lại hồ sơ"]),
    "paper_only": st.booleans(),
})
system_side = st.fixed_dictionaries({
    "code": st.sampled_from(CODES), "status": st.sampled_from([s.value for s in Status]),
    "year": st.sampled_from([2020, 2021, None]),
})


def register_table(rows: list[dict]) -> pa.Table:
    cols: dict[str, list] = {f: [] for f in FIELDS}
    for i, r in enumerate(rows, 1):
        values = {f: None for f in FIELDS}
        values.update(stt=str(i), dossier_code=r["code"], received_at="05/01/2021",
                      agency="UBND xã Bình Hải" if r["paper_only"] else "VPĐKĐĐ",
                      returned_at="20/01/2021" if r["outcome"] else None,
                      note=r["outcome"] if r["outcome"] not in ("", "returned") else None)
        for f in FIELDS:
            cols[f].append(values[f])
    n = len(rows)
    table = pa.table({**{f: pa.array(v, pa.string()) for f, v in cols.items()},
                      "source_file": pa.array(["so.csv"] * n, pa.string()),
                      "sheet": pa.nulls(n, pa.string()), "row_no": pa.array(range(2, n + 2), pa.int32()),
                      "book": pa.array(["so.csv"] * n, pa.string()),
                      "entry_id": pa.array(range(1, n + 1), pa.int32())})
    return table


def system_data(rows: list[dict]) -> SystemData:
    n = len(rows)
    fields = DOSSIER_FIELDS + TASK_FIELDS[1:]
    cols = {f: [None] * n for f in fields}
    for i, r in enumerate(rows):
        cols["dossier_code"][i] = r["code"]
        cols["status"][i] = r["status"]
        cols["workflow_key"][i], cols["workflow_version"][i], cols["current_step"][i] = KEY, "2", "S03"
        cols["received_at"][i] = None if r["year"] is None else f"{r['year']}-01-05"
    dossiers = pa.table({**{f: pa.array(v, pa.string()) for f, v in cols.items()},
                         "status_raw": pa.array(cols["status"], pa.string()),
                         "source_row": pa.array(range(2, n + 2), pa.int32())})
    accounts = pa.table({"account": ["a"], "name": ["A"], "unit": ["VPDK"], "active": [True]})
    events = pa.table({f: pa.array([], pa.string()) for f in ("dossier_code", "seq", "from_step", "to_step",
                                                             "account", "at", "action")})
    return from_tables(dossiers, accounts, events)


CATALOG = load_catalog(CASES / "catalog" / "sample")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(paper_side, min_size=1, max_size=8), st.lists(system_side, max_size=8))
def test_every_dossier_lands_in_exactly_one_class(tmp_path_factory, paper: list[dict], system: list[dict]) -> None:
    store = open_store(str(tmp_path_factory.mktemp("p") / "s.duckdb"))
    reg = register_table(paper)
    loaded = Loaded(RegisterData.from_table(reg), system_data(system), CATALOG, {}, [])
    run_id = record_run(store, loaded, AuditSettings(date(2021, 6, 30), 0, ("UBND xã Bình Hải",)))
    with store.connect() as conn:
        classes = conn.execute(sa.select(reconciliation.c.dossier_code, reconciliation.c["class"])
                               .where(reconciliation.c.run_id == run_id)).all()
        kinds = conn.execute(sa.text("SELECT kind, dossier_code FROM finding WHERE run_id = :r"), {"r": run_id}).all()
    store.engine.dispose()

    union = {p["code"] for p in paper} | {s["code"] for s in system}
    codes = [c for c, _ in classes]
    assert sorted(codes) == sorted(union), "each code of the union exactly once"
    cls = dict(classes)
    first_paper = {}
    for p in paper:  # the representative row: one with a return date first, else the first row
        if p["code"] not in first_paper or (p["outcome"] and not first_paper[p["code"]]["outcome"]):
            first_paper[p["code"]] = p
    first_sys = {}
    for s in system:
        first_sys.setdefault(s["code"], s)
    closed = {s.value for s in CLOSED_STATUSES}
    for code in union:
        p, s = first_paper.get(code), first_sys.get(code)
        if s is None:
            expected = MatchClass.PAPER_ONLY_UNIT if p["paper_only"] else MatchClass.MISSING_IN_SYSTEM
        elif p is None:
            expected = (MatchClass.OUTSIDE_PERIOD if s["year"] == 2020 else MatchClass.MISSING_IN_REGISTER)
        elif p["outcome"] and s["status"] not in closed:
            expected = MatchClass.RESOLVED_NOT_CLOSED
        elif not p["outcome"] and s["status"] in closed:
            expected = MatchClass.CLOSED_NOT_RESOLVED
        elif p["outcome"]:
            agrees = {"returned": {"returned"}, "Rút hồ sơ": {"withdrawn"},
                      "Trả lại hồ sơ": {"rejected", "stopped"}}[p["outcome"]]
            expected = MatchClass.MATCHED if s["status"] in agrees else MatchClass.STATUS_MISMATCH
        else:
            expected = MatchClass.MATCHED
        assert cls[code] == expected.value, (code, p, s)
    class_kinds = {k.value for k in (FindingKind.MISSING_IN_SYSTEM, FindingKind.MISSING_IN_REGISTER,
                                     FindingKind.RESOLVED_NOT_CLOSED, FindingKind.CLOSED_NOT_RESOLVED,
                                     FindingKind.STATUS_MISMATCH)}
    assert sorted((k, c) for k, c in kinds if k in class_kinds) == sorted(
        (v, c) for c, v in cls.items() if v in class_kinds)
