"""The workbench: an in-memory DuckDB that turns raw text columns into store-shaped, normalised tables."""

from __future__ import annotations

from dataclasses import dataclass
import duckdb
import pyarrow as pa

from reconcile.errors import BadInput
from reconcile.normalize import sql_code, sql_compare_key, sql_date, sql_fold, sql_looks_like_code, sql_text
from reconcile.sources.system import SystemData

MAX_LISTED = 10

# Keywords (folded: no diacritics, lower case) that give a paper outcome from the note column.
WITHDRAWN_WORDS = ("rut ho so", "rut hs", "xin rut", "cong dan rut")
REJECTED_WORDS = ("tra lai", "tu choi", "khong giai quyet", "khong du dieu kien")


@dataclass
class Staged:
    table: pa.Table
    warnings: list[str]


def workbench() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:")


def _bad_dates(wb: duckdb.DuckDBPyConnection, view: str, columns: dict[str, str], locate: str) -> list[str]:
    """One message per unparseable date cell (the first few), with its location."""
    problems: list[str] = []
    for col, label in columns.items():
        rows = wb.execute(
            f"SELECT {locate}, {col} FROM {view} WHERE {col} IS NOT NULL AND trim({col}) <> '' "
            f"AND {sql_date(col)} IS NULL LIMIT {MAX_LISTED}"
        ).fetchall()
        problems += [f"{where}, {label}: {value!r} is not a date. Expected dd/mm/yyyy, YYYY-MM-DD or an "
                     "Excel date." for where, value in rows]
    return problems


def stage_register(raw: pa.Table) -> Staged:
    wb = workbench()
    wb.register("raw", raw)
    locate = ("source_file || coalesce(', sheet \"' || sheet || '\"', '') || ', row ' || row_no")
    problems = _bad_dates(wb, "raw", {"received_at": "Nhận hồ sơ", "due_at": "Hẹn trả kết quả",
                                      "transferred_at": "Chuyển hồ sơ", "returned_at": "Trả kết quả"}, locate)
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{len(problems)} unparseable dates", problems)
    note = sql_fold("note")
    withdrawn = " OR ".join(f"{note} LIKE '%{w}%'" for w in WITHDRAWN_WORDS)
    rejected = " OR ".join(f"{note} LIKE '%{w}%'" for w in REJECTED_WORDS)
    table = wb.sql(f"""
        WITH n AS (
            SELECT *, {sql_code('dossier_code')} AS code_n, {sql_date('returned_at')} AS returned_d
            FROM raw
        )
        SELECT
            CAST(row_number() OVER (ORDER BY book, source_file, sheet NULLS FIRST, row_no) AS INTEGER) AS entry_id,
            source_file, sheet, row_no, book,
            TRY_CAST(TRY_CAST(trim(stt) AS DOUBLE) AS INTEGER) AS stt, stt AS stt_raw,
            dossier_code AS code_raw, code_n AS dossier_code,
            {sql_looks_like_code('code_n')} AS code_ok,
            {sql_text('procedure')} AS procedure, {sql_compare_key('procedure')} AS procedure_key,
            quantity, {sql_text('applicant')} AS applicant, {sql_compare_key('applicant')} AS applicant_key,
            {sql_text('address')} AS address, {sql_text('agency')} AS agency,
            {sql_compare_key('agency')} AS agency_key,
            received_at AS received_raw, {sql_date('received_at')} AS received_at,
            due_at AS due_raw, {sql_date('due_at')} AS due_at,
            {sql_date('transferred_at')} AS transferred_at,
            returned_at AS returned_raw, returned_d AS returned_at,
            {sql_text('signed')} AS signed, {sql_text('note')} AS note,
            CASE WHEN note IS NOT NULL AND ({withdrawn}) THEN 'withdrawn'
                 WHEN note IS NOT NULL AND ({rejected}) THEN 'rejected'
                 WHEN returned_d IS NOT NULL THEN 'returned'
                 ELSE 'none' END AS outcome
        FROM n
        ORDER BY entry_id
    """).to_arrow_table()
    warnings: list[str] = []
    bad = wb.execute(f"""
        SELECT source_file || coalesce(', sheet "' || sheet || '"', '') || ', row ' || row_no, dossier_code
        FROM raw WHERE NOT {sql_looks_like_code(sql_code('dossier_code'))}
        ORDER BY source_file, sheet NULLS FIRST, row_no""").fetchall()
    for where, value in bad[:MAX_LISTED]:
        warnings.append(f"{where}: {value!r} does not look like a dossier code (kept). "
                        "Expected e.g. 000.00.53.H48-210105-0001.")
    if len(bad) > MAX_LISTED:
        warnings.append(f"... and {len(bad) - MAX_LISTED} more rows with codes that do not look like dossier codes.")
    return Staged(table, warnings)


@dataclass
class StagedSystem:
    dossiers: pa.Table
    accounts: pa.Table
    events: pa.Table
    digest: str  # order-independent digest of the content, for the run's fingerprint


def stage_system(data: SystemData) -> StagedSystem:
    """Normalise dossiers (with their current task), accounts and events."""
    wb = workbench()
    wb.register("d", data.dossiers)
    where = data.where.get("dossier", "dossiers")
    locate = f"'{_sql_str(where)}, row ' || source_row"
    dates = {c: c for c in ("received_at", "due_at", "due_at_revised", "finished_at", "returned_at",
                            "step_entered_at", "step_due_at")}
    problems = _bad_dates(wb, "d", dates, locate)
    bad_version = wb.execute(
        f"SELECT {locate}, workflow_version FROM d WHERE workflow_version IS NOT NULL AND trim(workflow_version) <> '' "
        f"AND TRY_CAST(TRY_CAST(trim(workflow_version) AS DOUBLE) AS INTEGER) IS NULL LIMIT {MAX_LISTED}"
    ).fetchall()
    problems += [f"{w}, workflow_version: {v!r} is not a whole number." for w, v in bad_version]
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{len(problems)} bad values in {where}", problems)
    dossiers = wb.sql(f"""
        SELECT source_row, dossier_code AS code_raw, {sql_code('dossier_code')} AS dossier_code,
            {sql_text('procedure')} AS procedure, {sql_text('field')} AS field,
            {sql_text('applicant')} AS applicant, {sql_compare_key('applicant')} AS applicant_key,
            {sql_text('phone')} AS phone, {sql_text('address')} AS address, {sql_text('agency')} AS agency,
            {sql_text('channel')} AS channel,
            {sql_date('received_at')} AS received_at, {sql_date('due_at')} AS due_at,
            {sql_date('due_at_revised')} AS due_at_revised, {sql_date('finished_at')} AS finished_at,
            {sql_date('returned_at')} AS returned_at,
            trim(status) AS status, status_raw,
            {sql_text('workflow_key')} AS workflow_key,
            TRY_CAST(TRY_CAST(trim(workflow_version) AS DOUBLE) AS INTEGER) AS workflow_version,
            nullif(trim(current_step), '') AS current_step, nullif(trim(assignee), '') AS assignee,
            nullif(trim(unit), '') AS unit,
            {sql_date('step_entered_at')} AS step_entered_at, {sql_date('step_due_at')} AS step_due_at,
            md5(concat_ws('|', dossier_code, procedure, applicant, status_raw, workflow_key, workflow_version,
                current_step, assignee, unit, received_at, due_at, due_at_revised, finished_at, returned_at))
                AS fingerprint
        FROM d ORDER BY source_row
    """).to_arrow_table()
    wb.register("a", data.accounts)
    accounts = wb.sql("""
        SELECT nullif(trim(account), '') AS account, name, nullif(trim(unit), '') AS unit, active
        FROM a WHERE nullif(trim(account), '') IS NOT NULL""").to_arrow_table()
    wb.register("e", data.events)
    events = wb.sql(f"""
        SELECT {sql_code('dossier_code')} AS dossier_code,
            TRY_CAST(TRY_CAST(trim(seq) AS DOUBLE) AS INTEGER) AS seq,
            nullif(trim(from_step), '') AS from_step, nullif(trim(to_step), '') AS to_step,
            nullif(trim(account), '') AS account, {sql_date('"at"')} AS "at", {sql_text('action')} AS action
        FROM e""").to_arrow_table()
    wb.register("staged", dossiers)
    digest = wb.execute("SELECT count(*), coalesce(bit_xor(hash(fingerprint)), 0) FROM staged").fetchall()[0]
    wb.register("staged_accounts", accounts)
    acc_digest = wb.execute("SELECT coalesce(bit_xor(hash(account, unit, active)), 0) FROM staged_accounts").fetchall()[0]
    return StagedSystem(dossiers, accounts, events, f"{digest[0]}:{digest[1]:x}:{acc_digest[0]:x}")


def _sql_str(s: str) -> str:
    return s.replace("'", "''")
