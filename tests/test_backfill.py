"""The `backfill` action: dossiers on the register but not in the system. The plan proposes creating
them (awaiting a person's confirmation); apply INSERTs the confirmed ones through the mapping, refuses a
row that appeared since, writes nothing twice; undo DELETEs them only while they hold the inserted values.
SQLite, PostgreSQL and MariaDB vendor databases, and the csv profile's store snapshot."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
import yaml
from helpers import invoke
from test_apply import PAPER_ONLY, copy_vendor, snapshot, store_dossiers

from reconcile.fix import apply as ap
from reconcile.fix import history
from reconcile.fix import reasons
from reconcile.audit.inputs import AuditInputs
from reconcile.audit.commands import audit
from reconcile.demo.simulate import simulate

VENDOR = "binh-son-igate.sqlite"
# The demo mapping's HS_HOSO columns of the fields a backfill sets.
COLUMNS = {"dossier_code": "MA_HOSO", "procedure": "MA_TTHC", "workflow_key": "MA_QUYTRINH", "applicant": "CHU_HOSO",
           "received_at": "NGAY_TIEPNHAN", "due_at": "NGAY_HENTRA", "status": "TRANGTHAI", "returned_at": "NGAY_TRAKQ"}
VENDOR_STATUS = {"received": 1, "returned": 6, "withdrawn": 7, "rejected": 9}


def _audit(work: Path, store: str, system: str, mapping: Path | None = None) -> None:
    audit(AuditInputs(register=tuple(str(p) for p in (work / "register").iterdir()), system=system,
                      workflows=str(work / "workflows"), as_of=date(2021, 6, 30),
                      mapping=str(mapping) if mapping else None, paper_only_units=PAPER_ONLY), store)


def _two_matched(store: str) -> list[str]:
    """A dossier returned on paper and one still open on paper, both matched with one system row."""
    con = duckdb.connect(store, read_only=True)
    rows = con.execute("SELECT rc.dossier_code, r.outcome FROM reconciliation rc JOIN register_entry r "
                       "ON r.run_id = rc.run_id AND r.entry_id = rc.entry_id WHERE rc.run_id = 1 "
                       "AND rc.class = 'matched' AND rc.dossier_code NOT IN (SELECT dossier_code FROM finding "
                       "WHERE dossier_code IS NOT NULL) ORDER BY rc.dossier_code").fetchall()
    con.close()
    return [next(c for c, o in rows if o == "returned"), next(c for c, o in rows if o == "none")]


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The small demo district with two more dossiers missing from the vendor database (deleted after a
    first audit picked them): one returned on paper, one open; plus the one the simulation plants."""
    out = tmp_path_factory.mktemp("backfill") / "d"
    simulate(out, scale=0.05)
    url = f"sqlite:///{out / 'system' / VENDOR}"
    store = str(out.parent / "first.duckdb")
    _audit(out, store, url, out / "system" / "mapping.yaml")
    removed = _two_matched(store)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("HS_HOSO", "HS_XULY_HIENTAI", "HS_NHATKY"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE MA_HOSO IN (:a, :b)"), {"a": removed[0], "b": removed[1]})
    engine.dispose()
    return out, removed


def audited(district: Path, tmp: Path, system_url: str | None = None) -> tuple[str, str, Path]:
    work = tmp / "d"
    shutil.copytree(district, work)
    sqlite_url = f"sqlite:///{work / 'system' / VENDOR}"
    if system_url is not None:
        copy_vendor(sqlite_url, system_url)
    store = str(tmp / "store.duckdb")
    _audit(work, store, system_url or sqlite_url, work / "system" / "mapping.yaml")
    return system_url or sqlite_url, store, work / "system" / "mapping.yaml"


def planned(store: str, path: Path, confirm: bool) -> dict[str, Any]:
    """`reconcile plan` written to `path`; with `confirm`, its backfills confirmed as a reviewer would."""
    invoke("plan", "--store", store, "--out", str(path), expect=0)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if confirm:
        for a in doc["actions"]:
            if a["action"] == "backfill":
                a["confirmed"] = True
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return doc


def backfills(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in doc["actions"] if a["action"] == "backfill"]


def vendor_rows(url: str, codes: list[str]) -> dict[str, list[dict[str, Any]]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        t = sa.Table("HS_HOSO", sa.MetaData(), autoload_with=conn)
        out: dict[str, list[dict[str, Any]]] = {}
        for r in conn.execute(sa.select(t).where(t.c.MA_HOSO.in_(codes))).mappings():
            out.setdefault(r["MA_HOSO"], []).append(dict(r))
    engine.dispose()
    return out


def as_planned(row: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The planned values as the vendor row holds them (status by the mapping's vendor value)."""
    got = {f: row[c] for f, c in COLUMNS.items() if f in values}
    want = {f: VENDOR_STATUS[v] if f == "status" else v for f, v in values.items()}
    return {"got": got, "want": want}


# ------------------------------------------------------------------------------------------ plan


def test_plan_proposes_an_unconfirmed_backfill_for_every_missing_in_system_dossier(
        district: tuple[Path, list[str]], tmp_path: Path) -> None:
    _, removed = district
    url, store, _ = audited(district[0], tmp_path)
    doc = planned(store, tmp_path / "plan.yaml", confirm=False)
    con = duckdb.connect(store, read_only=True)
    missing = {c for (c,) in con.execute("SELECT dossier_code FROM finding WHERE run_id = 1 "
                                         "AND kind = 'missing_in_system'").fetchall()}
    register = {r[0]: r[1:] for r in con.execute(
        "SELECT rc.dossier_code, r.outcome, r.returned_at, r.received_at, r.applicant, r.procedure, r.row_no "
        "FROM reconciliation rc JOIN register_entry r ON r.run_id = rc.run_id AND r.entry_id = rc.entry_id "
        "WHERE rc.run_id = 1").fetchall()}
    catalog = dict(con.execute("SELECT DISTINCT name, procedure FROM wf_version WHERE run_id = 1").fetchall())
    paper_only = {c for (c,) in con.execute("SELECT dossier_code FROM reconciliation WHERE run_id = 1 "
                                            "AND class = 'paper_only_unit'").fetchall()}
    con.close()
    assert set(removed) <= missing and len(missing) == 3 and paper_only  # paper-only units are no finding
    proposed = backfills(doc)
    assert {a["dossier_code"] for a in proposed} == missing
    for a in proposed:
        outcome, returned, received, applicant, procedure, row = register[a["dossier_code"]]
        status = outcome if outcome in ("returned", "withdrawn", "rejected") else "received"
        assert (a["confirmed"], a["fingerprint"], a["rule"], a["reason_code"]) == (
            False, None, "default:backfill", "missing_in_system")
        assert reasons.render(a["reason_code"], a["reason_args"], "en") == a["reason"]
        want = {"dossier_code": a["dossier_code"], "procedure": catalog[procedure], "workflow_key": catalog[procedure],
                "applicant": applicant, "received_at": received.isoformat(), "status": status}
        if status != "received":
            want["returned_at"] = returned.isoformat()
        assert {k: v for k, v in a["set"].items() if k != "due_at"} == want
        assert a["evidence"]["register"]["row"] == row and a["evidence"]["register"]["outcome"] == outcome
    assert {register[c][0] for c in removed} == {"returned", "none"}  # both branches of the status
    assert doc["plan"]["validation"]["backfills_awaiting_confirmation"] == 3
    assert doc["plan"]["validation"]["guesses_awaiting_confirmation"] == 0
    # Nothing else changes: the other actions are those of the plan without the register-only dossiers.
    others = [a for a in doc["actions"] if a["action"] != "backfill"]
    assert others and not {a["dossier_code"] for a in others} & missing
    assert all(isinstance(a["fingerprint"], str) for a in others)


def test_a_register_procedure_the_catalog_lacks_is_escalated(district: tuple[Path, list[str]],
                                                             tmp_path: Path) -> None:
    url, store, _ = audited(district[0], tmp_path)
    code = district[1][1]
    con = duckdb.connect(store)  # the register names a procedure no catalog version has
    con.execute("UPDATE register_entry SET procedure = 'Thủ tục không có' WHERE run_id = 1 AND dossier_code = ?",
                [code])
    con.close()
    doc = planned(store, tmp_path / "plan.yaml", confirm=False)
    action = next(a for a in doc["actions"] if a["dossier_code"] == code)
    assert (action["action"], action["reason_code"], action["set"]) == ("escalate", "backfill_unknown_procedure", {})
    assert '"Thủ tục không có" matches no catalog procedure' in action["reason"]
    assert doc["plan"]["validation"]["backfills_awaiting_confirmation"] == 2


# ----------------------------------------------------------------------------------------- apply


@pytest.mark.parametrize("engine", ["sqlite", "postgresql", "mariadb"])
def test_confirmed_backfill_inserts_and_undo_deletes(district: tuple[Path, list[str]], tmp_path: Path, engine: str,
                                                     request: pytest.FixtureRequest) -> None:
    system_url = None if engine == "sqlite" else request.getfixturevalue(
        "pg_url" if engine == "postgresql" else "mariadb_url")
    url, store, _ = audited(district[0], tmp_path, system_url)
    plan = tmp_path / "plan.yaml"
    doc = planned(store, plan, confirm=True)
    proposed = {a["dossier_code"]: a["set"] for a in backfills(doc)}
    original = snapshot(url)

    dry = invoke("apply", str(plan), "--store", store, "--dry-run", expect=0).stdout
    inserts = [line for line in dry.splitlines() if line.startswith("INSERT")]
    assert len(inserts) == 3 and all("HS_HOSO" in line for line in inserts)
    assert snapshot(url) == original

    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    rows = vendor_rows(url, list(proposed))
    assert sorted(rows) == sorted(proposed) and all(len(rs) == 1 for rs in rows.values())
    for code, values in proposed.items():
        check = as_planned(rows[code][0], values)
        assert check["got"] == check["want"]
    applied = snapshot(url)
    batches = [b["id"] for b in history.history(store)]

    again = ap.apply_plan(plan, store, yes=True)  # the second time writes nothing
    assert again.batches == () and again.counts().get("written") is None
    assert [o.state for o in again.outcomes if o.action == "backfill"] == ["already_applied"] * 3
    assert snapshot(url) == applied and [b["id"] for b in history.history(store)] == batches

    invoke("undo", *map(str, reversed(batches)), "--store", store, "--yes", expect=0)
    assert snapshot(url) == original
    code = next(iter(proposed))
    view = json.loads(invoke("show", code, "--store", store, "--format", "json", expect=0).stdout)
    inserted = [c for c in view["changes"] if c["kind"] == "apply"]
    deleted = [c for c in view["changes"] if c["kind"] == "undo"]
    assert {c["row"] for c in inserted} == {"insert"} and {c["row"] for c in deleted} == {"delete"}
    assert {c["field"]: c["after"] for c in inserted}["applicant"] == proposed[code]["applicant"]
    assert all(c["before"] is None for c in inserted) and all(c["after"] is None for c in deleted)
    table = invoke("show", code, "--store", store, expect=0).stdout
    assert "(no row)" in table and "MA_HOSO" in table


def test_a_row_created_since_the_plan_is_refused_not_overwritten(district: tuple[Path, list[str]],
                                                                 tmp_path: Path) -> None:
    url, store, _ = audited(district[0], tmp_path)
    plan = tmp_path / "plan.yaml"
    doc = planned(store, plan, confirm=True)
    proposed = {a["dossier_code"]: a for a in backfills(doc)}
    code = sorted(proposed)[0]
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # someone enters the dossier in the vendor system meanwhile
        conn.execute(sa.text("INSERT INTO HS_HOSO (MA_HOSO, CHU_HOSO, TRANGTHAI) VALUES (:c, 'Người khác', 2)"),
                     {"c": code})
    engine.dispose()
    before = snapshot(url)
    result = invoke("apply", str(plan), "--store", store, "--yes", expect=3)
    line = proposed[code]["dossier_code"]
    assert f"refused: {line}" in result.stderr and "exists now" in result.stderr
    rows = vendor_rows(url, list(proposed))
    assert [(r["CHU_HOSO"], r["TRANGTHAI"]) for r in rows[code]] == [("Người khác", 2)]
    assert all(len(rows[c]) == 1 for c in proposed)  # the others were inserted
    assert snapshot(url) != before


def test_unconfirmed_backfills_are_not_applied(district: tuple[Path, list[str]], tmp_path: Path) -> None:
    url, store, _ = audited(district[0], tmp_path)
    plan = tmp_path / "plan.yaml"
    doc = planned(store, plan, confirm=False)
    result = ap.apply_plan(plan, store, yes=True)
    assert [o.state for o in result.outcomes if o.action == "backfill"] == ["unconfirmed"] * 3
    assert vendor_rows(url, [a["dossier_code"] for a in backfills(doc)]) == {}


def test_undo_refuses_when_an_inserted_row_changed(district: tuple[Path, list[str]], tmp_path: Path) -> None:
    url, store, _ = audited(district[0], tmp_path)
    plan = tmp_path / "plan.yaml"
    doc = planned(store, plan, confirm=True)
    doc["actions"] = backfills(doc)
    plan.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    code = doc["actions"][0]["dossier_code"]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE HS_HOSO SET CHU_HOSO = 'Đã sửa' WHERE MA_HOSO = :c"), {"c": code})
    engine.dispose()
    before = snapshot(url)
    result = invoke("undo", "1", "--store", store, "--yes", expect=3)
    assert code in result.stderr and "'Đã sửa'" in result.stderr
    assert snapshot(url) == before and [b["kind"] for b in history.history(store)] == ["apply"]


def test_bad_backfills_in_a_plan_file_are_refused_with_file_and_line(district: tuple[Path, list[str]],
                                                                    tmp_path: Path) -> None:
    url, store, mapping = audited(district[0], tmp_path)
    plan = tmp_path / "plan.yaml"
    doc = planned(store, plan, confirm=True)
    text = plan.read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"

    def refused(edit: Any) -> str:
        data = yaml.safe_load(text)
        edit(next(a for a in data["actions"] if a["action"] == "backfill"), data)
        bad.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        err = invoke("apply", str(bad), "--store", store, expect=2).stderr
        assert err.startswith(f"error: {bad}:") and err.count("\n") == 1
        return err

    assert "a backfill creates a row" in refused(lambda a, _: a.update(fingerprint="0" * 32))
    assert "not a field a backfill writes" in refused(lambda a, _: a["set"].update(current_step="S01"))
    assert "differs from the action's dossier_code" in refused(lambda a, _: a["set"].update(dossier_code="X-1"))
    con = duckdb.connect(store, read_only=True)
    clean = next(c for (c,) in con.execute("SELECT dossier_code FROM reconciliation WHERE run_id = 1 AND class = "
                                           "'matched' ORDER BY dossier_code").fetchall()
                 if c not in {a["dossier_code"] for a in doc["actions"]})
    con.close()
    assert "not missing_in_system" in refused(lambda a, _: (a.update(dossier_code=clean),
                                                            a["set"].update(dossier_code=clean)))
    original = snapshot(url)
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("1: received, ", ""), encoding="utf-8")
    err = invoke("apply", str(plan), "--store", store, "--yes", expect=2).stderr
    assert "status 'received' has no vendor value" in err
    assert snapshot(url) == original and history.history(store) == []


def test_csv_profile_backfills_into_the_store_snapshot(tmp_path_factory: pytest.TempPathFactory,
                                                       tmp_path: Path) -> None:
    work = tmp_path_factory.mktemp("csv-backfill") / "d"
    simulate(work, scale=0.05, register_format="csv", system_format="csv")
    store = str(tmp_path / "store.duckdb")
    _audit(work, store, str(work / "system"))
    plan = tmp_path / "plan.yaml"
    doc = planned(store, plan, confirm=True)
    proposed = {a["dossier_code"]: a["set"] for a in backfills(doc)}
    assert proposed

    def rows() -> list[Any]:
        return store_dossiers(store)

    original = rows()
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    applied = rows()
    new = [r for r in applied if r.dossier_code in proposed]
    assert len(new) == len(proposed) == len(applied) - len(original)
    for r in new:
        values = proposed[r.dossier_code]
        assert r.status == values["status"] and r.applicant == values["applicant"]
        assert r.received_at.isoformat() == values["received_at"] and r.workflow_key == values["workflow_key"]
    invoke("apply", str(plan), "--store", store, "--yes", expect=0)
    assert rows() == applied
    ids = [str(b["id"]) for b in reversed(history.history(store))]
    invoke("undo", *ids, "--store", store, "--yes", expect=0)
    assert rows() == original


def test_a_source_that_is_not_writable_gets_confirmed_backfills_as_a_ticket(district: tuple[Path, list[str]],
                                                                           tmp_path: Path) -> None:
    from reconcile.fix.tickets import build_tickets

    url, store, mapping = audited(district[0], tmp_path)
    plan = tmp_path / "plan.yaml"
    proposed = {a["dossier_code"]: a["set"] for a in backfills(planned(store, plan, confirm=True))}
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("writable: true", "writable: false"),
                       encoding="utf-8")
    masked = build_tickets(store, plan_path=str(plan))
    tickets = [t for t in masked.tickets if t.cause == "planned_backfill"]
    assert len({d.dossier_code for t in tickets for d in t.dossiers}) == len(proposed) == 3
    items = [d for t in tickets for d in t.dossiers]
    # Masked: the applicant's name is neither in the planned values nor in SQL (the INSERT would hold it).
    assert all(d.sql == () and d.planned["applicant"] != proposed[d.dossier_code]["applicant"] for d in items)
    assert all("Create each dossier below" in t.request for t in tickets)
    unmasked = build_tickets(store, plan_path=str(plan), unmask=True)
    items = [d for t in unmasked.tickets if t.cause == "planned_backfill" for d in t.dossiers]
    assert all(len(d.sql) == 1 and d.sql[0].startswith("INSERT INTO") and d.sql_state == "would_write"
               and proposed[d.dossier_code]["applicant"] in d.sql[0] for d in items)
    assert all("each INSERT creates a dossier" in t.request for t in unmasked.tickets if t.cause == "planned_backfill")
