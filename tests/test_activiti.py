"""The activiti profile on real engine-shaped databases (SQLite and PostgreSQL), written by
`reconcile simulate --system-schema activiti`: it audits like the vendor-shaped district, reads only,
and refuses or warns on bad engine data."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from helpers import invoke

from reconcile.workflow.catalog import load_catalog
from reconcile.demo.district import LAND_MAIN, SimulationResult, DemoStep, load_procedures
from reconcile.demo.simulate import simulate
from reconcile.demo.activiti import ENGINES, MAIN_DEPLOYMENTS, bpmn_xml, process_key
from reconcile.sources.activiti import load_activiti_profile

SCALE = 0.05
MAIN_KEY = process_key(LAND_MAIN)
TABLES = ENGINES["activiti6"].tables


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("vendor"), scale=SCALE, register_format="csv")


@pytest.fixture(scope="module")
def engine_district(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("engine"), scale=SCALE, register_format="csv", system_schema="activiti")


def audit_pairs(config: Path) -> tuple[set[tuple[str, str | None]], dict[str, Any]]:
    result = invoke("audit", "--config", str(config), "--format", "json", expect=1)
    report = json.loads(result.stdout)
    return {(f["kind"], f["dossier_code"]) for f in report["findings"]}, report


@pytest.fixture(scope="module")
def vendor_findings(vendor: SimulationResult) -> set[tuple[str, str | None]]:
    """The vendor district's findings the engine district must repeat. Not superseded_version: that one
    needs migration rules, which are written against the catalog folder's version numbers (v1, v2, v3);
    the engine district's catalog is its deployments, numbered by the engine (hundreds of redeploys of
    the main procedure), it has no catalog folder and so no rules, and rules for it would have to name
    the engine's numbers. Its rules are a separate concern (see test_engine_district_has_no_rules)."""
    return {p for p in audit_pairs(vendor.config)[0] if p[0] != "superseded_version"}


# ------------------------------------------------------------------------------ end to end


def test_engine_district_on_sqlite_audits_like_the_vendor_district(vendor_findings: set[tuple[str, str | None]],
                                                                   engine_district: SimulationResult) -> None:
    pairs, report = audit_pairs(engine_district.config)
    assert pairs == vendor_findings
    assert {k for k, _ in pairs} >= {"step_not_in_version", "unknown_version", "assignee_inactive", "dead_end_step",
                                     "unit_without_staff", "stalled", "resolved_not_closed", "status_mismatch",
                                     "date_mismatch", "field_mismatch"}
    _, catalog = load_activiti_profile(engine_district.system_source, str(engine_district.sidecars))
    assert not [w for w in catalog.warnings if any(f"'{s}'" in w for s in ("S03A", "S03B", "S02B"))]
    inputs = report["run"]["inputs"]
    assert inputs["system"]["profile"] == "activiti"
    assert inputs["system"]["source"] == "sqlite:///" + str(engine_district.system)
    assert inputs["workflows"]["dir"] is None
    assert inputs["workflows"]["engine_versions"] == inputs["workflows"]["versions"] > MAIN_DEPLOYMENTS


def test_engine_district_has_no_rules(engine_district: SimulationResult, vendor: SimulationResult) -> None:
    """No catalog folder, so no migration rules and no superseded_version (the vendor district has both)."""
    pairs, report = audit_pairs(engine_district.config)
    assert "rules" not in report["run"]["inputs"]["workflows"]
    assert not [p for p in pairs if p[0] == "superseded_version"]
    assert [p for p in audit_pairs(vendor.config)[0] if p[0] == "superseded_version"]


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
@pytest.mark.parametrize("kind", list(ENGINES))
def test_engine_district_on_a_database_server_audits_like_the_vendor_district(
        vendor_findings: set[tuple[str, str | None]], engine_district: SimulationResult, server: str, kind: str,
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The main scenario on every engine's tables and every database server: the same dossiers, moves and
    catalog as on SQLite, and the vendor district's findings (Activiti 7's staff from its accounts.csv)."""
    url = request.getfixturevalue("pg_url" if server == "postgresql" else "mariadb_url")
    sim = simulate(tmp_path / server, scale=SCALE, register_format="csv", system_schema="activiti", system_url=url,
                   engine_kind=kind)
    project = yaml.safe_load(sim.config.read_text(encoding="utf-8"))
    assert project["system"] == url and project["profile"] == "activiti"
    assert ("staff" in project) == (not ENGINES[kind].identity)
    if server == "postgresql":  # unquoted DDL: PostgreSQL folds the names, as real engine installs have them
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert "act_re_procdef" in sa.inspect(conn).get_table_names()
        engine.dispose()
    on_server, catalog = load_activiti_profile(url, str(sim.sidecars))
    on_sqlite, sqlite_catalog = load_activiti_profile(engine_district.system_source, str(engine_district.sidecars))
    assert content(on_server.dossiers) == content(on_sqlite.dossiers)  # the same text from every engine and database
    assert sorted(on_server.events.to_pylist(), key=str) == sorted(on_sqlite.events.to_pylist(), key=str)
    assert [(v.procedure, v.version, v.valid_from, v.steps) for v in catalog.versions] == \
           [(v.procedure, v.version, v.valid_from, v.steps) for v in sqlite_catalog.versions]
    pairs, report = audit_pairs(sim.config)
    assert pairs == vendor_findings
    assert report["run"]["inputs"]["system"]["profile"] == "activiti"


def content(table: Any) -> list[dict[str, Any]]:
    """Rows in a stable order, without source_row: instances started in the same second are numbered in
    the order of their ids, which each engine allocates its own way."""
    return sorted(({k: v for k, v in r.items() if k != "source_row"} for r in table.to_pylist()), key=str)


def test_engine_reads_are_read_only(engine_district: SimulationResult, tmp_path: Path) -> None:
    copy = tmp_path / "engine.sqlite"
    shutil.copy(engine_district.system, copy)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    system, _ = load_activiti_profile(f"sqlite:///{copy}")
    assert system.dossiers.num_rows == engine_district.system_dossiers and system.events.num_rows
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before


# ------------------------------------------------------------------------------ the engine database


def test_main_procedure_is_redeployed_hundreds_of_times_mostly_identically(engine_district: SimulationResult
                                                                           ) -> None:
    con = sqlite3.connect(engine_district.system)
    versions = con.execute("SELECT VERSION_ FROM ACT_RE_PROCDEF WHERE KEY_ = ? ORDER BY VERSION_",
                           (MAIN_KEY,)).fetchall()
    assert [v for (v,) in versions] == list(range(1, MAIN_DEPLOYMENTS + 2))  # + the one whose resource is lost
    distinct = con.execute("SELECT count(DISTINCT b.BYTES_), count(*) FROM ACT_RE_PROCDEF p JOIN ACT_GE_BYTEARRAY b "
                           "ON b.DEPLOYMENT_ID_ = p.DEPLOYMENT_ID_ AND b.NAME_ = p.RESOURCE_NAME_ WHERE p.KEY_ = ?",
                           (MAIN_KEY,)).fetchone()
    assert distinct == (3, MAIN_DEPLOYMENTS)  # three catalog versions, 297 identical redeploys
    used = con.execute("SELECT count(DISTINCT PROC_DEF_ID_) FROM ACT_HI_PROCINST WHERE PROC_DEF_ID_ LIKE ?",
                       (MAIN_KEY + ":%",)).fetchone()[0]
    assert used > 50  # dossiers spread over the redeployed versions
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(TABLES)
    con.close()


def test_each_dossier_runs_on_a_deployment_of_its_catalog_version(vendor: SimulationResult,
                                                                   engine_district: SimulationResult) -> None:
    """Same seed: the same dossiers; each open one's engine version deploys the steps of its vendor version
    (where the vendor pins none, of the version the audit infers: an engine always pins one)."""
    yaml_catalog = load_catalog(vendor.workflows)
    engine, catalog = load_activiti_profile(engine_district.system_source, str(engine_district.sidecars))
    con = sqlite3.connect(vendor.system)
    pinned = {code: (proc, version) for code, proc, version in con.execute(
        "SELECT MA_HOSO, MA_QUYTRINH, PHIENBAN FROM HS_HOSO")}
    con.close()
    assumed = {a["dossier_code"]: a["version"]
               for a in json.loads(vendor.ground_truth.read_text(encoding="utf-8"))["version_assumed"]}
    assert assumed and {c for c, (_, v) in pinned.items() if v is None} == set(assumed)
    checked = 0
    for row in engine.dossiers.to_pylist():
        code, version = pinned[row["dossier_code"]]
        version = assumed.get(row["dossier_code"], version)
        assert row["workflow_key"] == process_key(code)
        mine = catalog.get(row["workflow_key"], int(row["workflow_version"]))
        theirs = yaml_catalog.get(code, int(version))
        assert (mine is None) == (theirs is None), row["dossier_code"]
        if mine is not None and theirs is not None:
            assert mine.steps[0].id == theirs.steps[0].id
            assert sorted((s.id, s.unit, s.days, s.next, s.final) for s in mine.steps) == \
                   sorted((s.id, s.unit, s.days, s.next, s.final) for s in theirs.steps)
            assert mine.name == theirs.name and mine.field == theirs.field
            checked += 1
    assert checked == engine_district.system_dossiers - 1  # all but the one on the lost definition


def test_statuses_map_as_documented(vendor: SimulationResult, engine_district: SimulationResult) -> None:
    """Vendor status -> engine state -> canonical status: the same, except what the engine cannot show."""
    engine, _ = load_activiti_profile(engine_district.system_source, str(engine_district.sidecars))
    con = sqlite3.connect(vendor.system)
    vendor_status = dict(con.execute("SELECT MA_HOSO, TRANGTHAI FROM HS_HOSO"))
    con.close()
    names = ("submitted", "received", "in_progress", "supplement_requested", "awaiting_payment", "finished",
             "returned", "withdrawn", "stopped", "rejected")
    pairs = Counter((names[vendor_status[r["dossier_code"]]], r["status"], r["status_raw"].split(":")[0])
                    for r in engine.dossiers.to_pylist())
    assert {(v, s) for v, s, _ in pairs} == {
        ("received", "received"), ("in_progress", "in_progress"), ("awaiting_payment", "in_progress"),
        ("supplement_requested", "supplement_requested"), ("finished", "finished"), ("returned", "returned"),
        ("withdrawn", "withdrawn"), ("stopped", "stopped"), ("rejected", "rejected"),
    }
    raw = {(s, r) for _, s, r in pairs}
    assert ("supplement_requested", "suspended") in raw and ("returned", "ended") in raw
    assert ("stopped", "deleted") in raw and ("in_progress", "running") in raw


def test_project_file_and_sidecars(engine_district: SimulationResult) -> None:
    project = yaml.safe_load(engine_district.config.read_text(encoding="utf-8"))
    assert project["system"] == "sqlite:///system/activiti.sqlite"
    assert project["profile"] == "activiti" and project["sidecars"] == "system/sidecars"
    assert "workflows" not in project and "mapping" not in project
    names = sorted(p.name for p in engine_district.sidecars.glob(f"{MAIN_KEY}.*"))  # type: ignore[union-attr]
    assert len(names) == 3 and names[0] == f"{MAIN_KEY}.v1.yaml"


# ------------------------------------------------------------------------------ bad input


def engine_copy(sim: SimulationResult, tmp_path: Path, *sql: str) -> str:
    copy = tmp_path / "engine.sqlite"
    shutil.copy(sim.system, copy)
    con = sqlite3.connect(copy)
    for statement in sql:
        con.execute(statement)
    con.commit()
    con.close()
    return f"sqlite:///{copy}"


def audit_args(sim: SimulationResult, url: str, *extra: str) -> list[str]:
    store = Path(url.removeprefix("sqlite:///")).with_suffix(".duckdb")
    return ["audit", "--register", str(sim.register_files[0]), "--system", url, "--profile", "activiti",
            "--sidecars", str(sim.sidecars), "--as-of", "2021-06-30", "--store", str(store), *extra]


def test_missing_table_is_named_with_the_tables_there(engine_district: SimulationResult, tmp_path: Path) -> None:
    url = engine_copy(engine_district, tmp_path, "DROP TABLE ACT_RU_IDENTITYLINK")
    result = invoke(*audit_args(engine_district, url), expect=2)
    tables = ", ".join(sorted(t for t in TABLES if t != "ACT_RU_IDENTITYLINK"))
    assert result.stderr == (f"error: {url}: table ACT_RU_IDENTITYLINK does not exist; the activiti profile needs it. "
                             f"Tables: {tables}. Hint: point --system at the engine's database (the Activiti 5/6/7, "
                             "Flowable 6 or Camunda 7 schema).\n")
    assert not (tmp_path / "engine.duckdb").exists()


def test_missing_column_is_named(engine_district: SimulationResult, tmp_path: Path) -> None:
    url = engine_copy(engine_district, tmp_path, "ALTER TABLE ACT_RU_TASK DROP COLUMN TASK_DEF_KEY_")
    result = invoke(*audit_args(engine_district, url), expect=2)
    assert result.stderr.startswith(f"error: {url}: column ACT_RU_TASK.TASK_DEF_KEY_ does not exist. Columns of "
                                    "ACT_RU_TASK: ID_, REV_, EXECUTION_ID_, ")


def test_optional_history_tables_may_be_missing(engine_district: SimulationResult, tmp_path: Path) -> None:
    url = engine_copy(engine_district, tmp_path, "DROP TABLE ACT_HI_TASKINST", "DROP TABLE ACT_HI_ACTINST",
                      "DROP TABLE ACT_HI_VARINST")
    system, _ = load_activiti_profile(url, str(engine_district.sidecars))
    assert system.events.num_rows == 0
    running = [r for r in system.dossiers.to_pylist() if r["status_raw"] != "ended"
               and not r["status_raw"].startswith("deleted")]
    assert running and all(r["applicant"] for r in running)  # from ACT_RU_VARIABLE
    assert all(r["applicant"] is None for r in system.dossiers.to_pylist() if r["status_raw"] == "ended")


def test_task_history_stands_in_for_activity_history(engine_district: SimulationResult, tmp_path: Path) -> None:
    """Without ACT_HI_ACTINST the task history (ACT_HI_TASKINST) gives the same moves; with it, the
    activities a token only passes through (start and end events, gateways) are no moves."""
    url = engine_copy(engine_district, tmp_path, "DROP TABLE ACT_HI_ACTINST")
    from_activities, _ = load_activiti_profile(engine_district.system_source, str(engine_district.sidecars))
    from_tasks, _ = load_activiti_profile(url, str(engine_district.sidecars))
    assert from_activities.where["events"].endswith("ACT_HI_ACTINST")
    assert from_tasks.where["events"].endswith("ACT_HI_TASKINST")
    assert from_tasks.events.num_rows > 0
    assert from_tasks.events.to_pylist() == from_activities.events.to_pylist()
    con = sqlite3.connect(engine_district.system)
    passing = con.execute("SELECT count(*) FROM ACT_HI_ACTINST WHERE ACT_TYPE_ IN ('startEvent', 'endEvent')"
                          ).fetchone()
    con.close()
    assert passing[0] > 0


def test_instances_started_by_a_call_activity_are_no_dossiers(engine_district: SimulationResult,
                                                              tmp_path: Path) -> None:
    con = sqlite3.connect(engine_district.system)
    (pid, procdef), = con.execute("SELECT e.ID_, e.PROC_DEF_ID_ FROM ACT_RU_EXECUTION e WHERE e.ID_ = e.PROC_INST_ID_ "
                                  "ORDER BY CAST(e.ID_ AS INTEGER) LIMIT 1").fetchall()
    con.close()
    url = engine_copy(
        engine_district, tmp_path,
        "INSERT INTO ACT_RU_EXECUTION (ID_, REV_, PROC_INST_ID_, PROC_DEF_ID_, SUPER_EXEC_, SUSPENSION_STATE_) "
        f"VALUES ('sub1', 1, 'sub1', '{procdef}', '{pid}', 1)",
        "INSERT INTO ACT_HI_PROCINST (ID_, PROC_INST_ID_, PROC_DEF_ID_, START_TIME_, END_TIME_, "
        f"SUPER_PROCESS_INSTANCE_ID_) VALUES ('sub2', 'sub2', '{procdef}', '2021-03-01 08:00:00', "
        f"'2021-03-02 08:00:00', '{pid}')")
    system, _ = load_activiti_profile(url, str(engine_district.sidecars))
    assert system.dossiers.num_rows == engine_district.system_dossiers
    assert not [w for w in system.warnings if "process instance" in w]  # no "no BUSINESS_KEY_" warning
    assert None not in system.dossiers.column("dossier_code").to_pylist()


def test_a_warning_repeated_by_identical_redeploys_is_given_once(engine_district: SimulationResult,
                                                                  tmp_path: Path) -> None:
    """Every v1 deployment of the main procedure gets a task nothing leads to: one warning, with a count."""
    main = load_procedures()[0]
    main_v1 = main.versions[0]
    odd = bpmn_xml(MAIN_KEY, main.name, main_v1.steps + (DemoStep("SX", "Bước thừa", "VPDKDD", 1, ("S09",), False),))
    copy = tmp_path / "engine.sqlite"
    shutil.copy(engine_district.system, copy)
    con = sqlite3.connect(copy)
    old = bpmn_xml(MAIN_KEY, main.name, main_v1.steps)
    n = con.execute("UPDATE ACT_GE_BYTEARRAY SET BYTES_ = ? WHERE BYTES_ = ?", (odd, old)).rowcount
    con.commit()
    con.close()
    assert n > 100
    _, catalog = load_activiti_profile(f"sqlite:///{copy}", str(engine_district.sidecars))
    unreachable = [w for w in catalog.warnings if "cannot be reached" in w]
    assert len(unreachable) == 1
    assert unreachable[0].startswith(f"sqlite:///{copy} ACT_RE_PROCDEF {MAIN_KEY}:1:")
    assert unreachable[0].endswith(f"(the same in {n - 1} more deployed versions of {MAIN_KEY}: 2-{n})")
    assert len([w for w in catalog.warnings if "'SX'" in w]) == 2  # and the parser's: no duration, once


def test_business_key_that_is_no_dossier_code_is_kept_with_a_warning(engine_district: SimulationResult,
                                                                     tmp_path: Path) -> None:
    con = sqlite3.connect(engine_district.system)
    (pid,) = con.execute("SELECT e.ID_ FROM ACT_RU_EXECUTION e JOIN ACT_HI_PROCINST h ON h.ID_ = e.ID_ "
                         "WHERE e.ID_ = e.PROC_INST_ID_ AND h.START_TIME_ >= '2021-01-01' "
                         "ORDER BY CAST(e.ID_ AS INTEGER) LIMIT 1").fetchone()
    con.close()
    url = engine_copy(engine_district, tmp_path,
                      f"UPDATE ACT_RU_EXECUTION SET BUSINESS_KEY_ = 'HS-TAM-01' WHERE ID_ = '{pid}'")
    result = invoke(*audit_args(engine_district, url, "--format", "json"), expect=1)
    assert (f"warning: {url}: ACT_RU_EXECUTION process instance {pid}: BUSINESS_KEY_ 'HS-TAM-01' does not look "
            "like a dossier code (kept). Expected e.g. 000.00.53.H48-210105-0001.") in result.stderr.splitlines()
    report = json.loads(result.stdout)
    codes = {f["dossier_code"] for f in report["findings"] if f["kind"] == "missing_in_register"}
    assert "HS-TAM-01" in codes
    assert report["run"]["counts"]["system_dossiers"] == engine_district.system_dossiers


def test_undecodable_bpmn_is_a_warning_and_its_dossiers_say_why(engine_district: SimulationResult,
                                                                 tmp_path: Path) -> None:
    """A deployed definition whose BPMN cannot be read no longer stops the audit: one warning names it,
    its open dossiers are unknown_version with the reason, and every other finding stays."""
    con = sqlite3.connect(engine_district.system)
    procdef, dep, res, version = con.execute(
        "SELECT p.ID_, p.DEPLOYMENT_ID_, p.RESOURCE_NAME_, p.VERSION_ FROM ACT_RE_PROCDEF p JOIN ACT_RU_EXECUTION e "
        "ON e.PROC_DEF_ID_ = p.ID_ AND e.ID_ = e.PROC_INST_ID_ WHERE p.KEY_ = ? GROUP BY p.ID_ "
        "ORDER BY count(*) DESC, p.ID_ LIMIT 1", (MAIN_KEY,)).fetchone()
    codes = {c for (c,) in con.execute("SELECT BUSINESS_KEY_ FROM ACT_RU_EXECUTION WHERE PROC_DEF_ID_ = ? "
                                       "AND ID_ = PROC_INST_ID_", (procdef,))}
    con.close()
    url = engine_copy(engine_district, tmp_path,
                      f"UPDATE ACT_GE_BYTEARRAY SET BYTES_ = X'1F8B0800FFFE' WHERE DEPLOYMENT_ID_ = '{dep}'")
    result = invoke(*audit_args(engine_district, url, "--format", "json"), expect=1)
    why = (f"{url} ACT_GE_BYTEARRAY deployment {dep} resource {res}:1:1: malformed XML: Start tag expected, '<' not "
           "found. Hint: open the file in a BPMN modeller and export it again.")
    assert (f"warning: {url}: ACT_RE_PROCDEF {procdef} ({MAIN_KEY} version {version}): its BPMN cannot be read, so the "
            "version is left out of the catalog and its open dossiers are reported as unknown_version. Why: "
            f"{why}") in result.stderr.splitlines()
    findings = json.loads(result.stdout)["findings"]
    unknown = {f["dossier_code"]: f["details"]["reason"] for f in findings if f["kind"] == "unknown_version"}
    assert codes and codes <= set(unknown)
    assert {unknown[c] for c in codes} == {f"its BPMN cannot be read: {why}"}
    same = invoke(*audit_args(engine_district, engine_district.system_source, "--format", "json",
                              "--store", str(tmp_path / "before.duckdb")), expect=1)
    before = {(f["kind"], f["dossier_code"]) for f in json.loads(same.stdout)["findings"]}
    after = {(f["kind"], f["dossier_code"]) for f in findings}
    assert after - before == {("unknown_version", c) for c in codes}
    assert {(k, c) for k, c in before - after if c not in codes} == set()


def test_missing_sidecar_folder_is_bad_input(engine_district: SimulationResult, tmp_path: Path) -> None:
    args = audit_args(engine_district, engine_district.system_source, "--store", str(tmp_path / "s.duckdb"))
    args[args.index("--sidecars") + 1] = str(tmp_path / "nowhere")
    result = invoke(*args, expect=2)
    assert result.stderr == (f"error: {tmp_path / 'nowhere'}: no such directory. Hint: --sidecars DIR holds "
                             "<KEY>.yaml or <KEY>.v<N>.yaml files (working days per task of a process key).\n")


def test_workflows_folder_adds_versions_and_a_clash_names_both_places(engine_district: SimulationResult,
                                                                      tmp_path: Path) -> None:
    extra = tmp_path / "wf" / "extra"
    extra.mkdir(parents=True)
    (extra / "v1.yaml").write_text(
        "procedure: OTHER\nname: Thủ tục khác\nversion: 1\nsteps:\n  - {id: A, name: Nhận, days: 1, final: true}\n",
        encoding="utf-8")
    url = engine_district.system_source
    result = invoke(*audit_args(engine_district, url, "--workflows", str(tmp_path / "wf"), "--format", "json",
                                "--store", str(tmp_path / "s.duckdb")), expect=1)
    inputs = json.loads(result.stdout)["run"]["inputs"]["workflows"]
    assert inputs["versions"] == inputs["engine_versions"] + 1
    (extra / "v1.yaml").write_text((extra / "v1.yaml").read_text(encoding="utf-8").replace("OTHER", MAIN_KEY),
                                   encoding="utf-8")
    result = invoke(*audit_args(engine_district, url, "--workflows", str(tmp_path / "wf"),
                                "--store", str(tmp_path / "s2.duckdb")), expect=2)
    con = sqlite3.connect(engine_district.system)
    (procdef,) = con.execute("SELECT ID_ FROM ACT_RE_PROCDEF WHERE KEY_ = ? AND VERSION_ = 1", (MAIN_KEY,)).fetchone()
    con.close()
    assert result.stderr == (f"error: {extra / 'v1.yaml'}: procedure '{MAIN_KEY}' version 1 is also deployed in the "
                             f"engine ({url} ACT_RE_PROCDEF {procdef}). Hint: leave it out of --workflows, or give "
                             "the engine's versions other numbers.\n")
    assert not (tmp_path / "s2.duckdb").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--system", "somewhere", "--profile", "activiti"),
     "--system somewhere: the activiti profile reads the engine's database. Hint: --system URL, e.g. "
     "postgresql://user@host/activiti or sqlite:///activiti.db."),
    (("--system", "sqlite:///x.db", "--profile", "activiti", "--mapping", "m.yaml"),
     "--mapping is for the mapping profile; the activiti profile knows the engine's tables."),
    (("--system", "sqlite:///x.db", "--profile", "csv", "--workflows", "wf"),
     "--profile csv reads an export folder, not the URL sqlite:///x.db."),
    (("--system", "sqlite:///x.db", "--sidecars", "sc", "--workflows", "wf", "--mapping", "m.yaml"),
     "--sidecars is for --profile activiti (working days of the engine's process versions)."),
    (("--system", "sqlite:///x.db", "--mapping", "m.yaml", "--workflows", "wf", "--tenant", "binhson"),
     "--tenant is for --profile activiti (the engine's tenants and database schema)."),
    (("--system", "sqlite:///x.db", "--mapping", "m.yaml", "--workflows", "wf", "--schema", "flowable"),
     "--schema is for --profile activiti (the engine's tenants and database schema)."),
    (("--system", "sqlite:///x.db", "--profile", "activiti", "--staff", "staff.txt"),
     "--staff staff.txt: expected a .csv or .yaml file. Hint: --staff FILE is an accounts.csv-format file (account, "
     "unit, active) or a YAML file with a mapping's account: block."),
    (("--system", "sqlite:///x.db", "--profile", "mapping"),
     "audit: missing --workflows. Hint: `reconcile audit --help`, or set them in reconcile.yaml."),
])
def test_profile_options_are_checked(tmp_path: Path, args: tuple[str, ...], message: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.csv").write_text("x\n", encoding="utf-8")
    result = invoke("audit", "--register", "r.csv", "--as-of", "2021-06-30", *args, expect=2)
    assert result.stderr == f"error: {message}\n"


def test_simulate_options_for_the_engine_schema(tmp_path: Path) -> None:
    result = invoke("simulate", "--out", str(tmp_path / "a"), "--system-schema", "activiti", "--system-format", "csv",
                    expect=2)
    assert result.stderr == ("error: --system-schema activiti writes a database (SQLite, or --system-url). "
                             "Hint: leave out --system-format csv.\n")
    result = invoke("simulate", "--out", str(tmp_path / "b"), "--system-url", "sqlite:///x.db", expect=2)
    assert result.stderr == ("error: --system-url is for --system-schema activiti; the vendor schema is written "
                             "as SQLite.\n")
    result = invoke("simulate", "--out", str(tmp_path / "c"), "--engine", "camunda7", expect=2)
    assert result.stderr == "error: --engine camunda7 is for --system-schema activiti.\n"
    assert not (tmp_path / "c").exists()


@pytest.mark.pg
def test_simulate_refuses_a_database_that_holds_engine_tables(tmp_path: Path, pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE ACT_RE_PROCDEF (ID_ VARCHAR(64))")
    engine.dispose()
    result = invoke("simulate", "--out", str(tmp_path / "c"), "--scale", "0.01", "--system-schema", "activiti",
                    "--system-url", pg_url, expect=2)
    masked = sa.engine.make_url(pg_url).render_as_string(hide_password=True)
    assert result.stderr == (f"error: {masked}: already holds engine tables (act_re_procdef...). "
                             "Hint: give an empty database or schema.\n")
