"""Normalisation as DuckDB SQL: the SELECTs that turn raw Arrow tables into store rows (run in the
store itself when it is DuckDB), and the checks of those rows before the run commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from reconcile.errors import BadInput
from reconcile.model import OPEN_STATUSES
from reconcile.store import dossier, register_entry
from reconcile.util import mask
from reconcile.util.normalize import normalize_text, sql_code, sql_date, sql_fold, sql_looks_like_code, sql_text
from reconcile.util.scratch import connect

MAX_LISTED = 10

# Keywords (folded: no diacritics, lower case) that give a paper outcome from the note column.
WITHDRAWN_WORDS = ("rut ho so", "rut hs", "xin rut", "cong dan rut")
REJECTED_WORDS = ("tra lai", "tu choi", "khong giai quyet", "khong du dieu kien")
# Columns that repeat a few distinct values on most rows (normalised once per distinct value).
REGISTER_TEXTS = ("procedure", "agency")
DOSSIER_TEXTS = ("procedure", "field", "agency", "workflow_key")
REGISTER_DATES = {"received_at": "Nhận hồ sơ", "due_at": "Hẹn trả kết quả",
                  "transferred_at": "Chuyển hồ sơ", "returned_at": "Trả kết quả"}
SYSTEM_DATES = ("received_at", "due_at", "due_at_revised", "finished_at", "returned_at",
                "step_entered_at", "step_due_at")



def _raise(problems: list[str], summary: str) -> None:
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else summary, problems)


# ----------------------------------------------------------------------------------- register

@dataclass
class RegisterChecks:
    warnings: list[str]
    book_years: dict[str, dict[int | None, int]]  # entries per book and year received


def check_stored_register(conn: sa.Connection, run_id: int, as_of: date) -> RegisterChecks:
    """Checks on the register rows just stored in the run's transaction (any engine): an unparseable
    date raises BadInput, which rolls the run back; codes that do not look like dossier codes, dates
    with a two-digit year and entries received after the audit date are warnings; entries are counted
    per book and year received. One grouped scan counts every check (a scan per check cost a server
    store 14 passes over the register); the rows a message lists are read only for checks that found any."""
    re_ = register_entry
    where = [re_.c.run_id == run_id]
    raw = {field: re_.c[field.replace("_at", "_raw")] for field in REGISTER_DATES}
    unparsed = {field: sa.and_(raw[field].is_not(None), sa.func.trim(raw[field]) != "", re_.c[field].is_(None))
                for field in REGISTER_DATES}
    odd, late = ~re_.c.code_ok, re_.c.received_at > as_of
    counted = {**{f"unparsed_{f}": c for f, c in unparsed.items()}, "odd": odd, "late": late,
               **{f"short_{f}": _two_digit_year(re_.c[f], raw[f]) for f in REGISTER_DATES}}
    year = sa.extract("year", re_.c.received_at)
    totals = dict.fromkeys(counted, 0)
    book_years: dict[str, dict[int | None, int]] = {}
    for row in conn.execute(sa.select(re_.c.book, year.label("year"), sa.func.count().label("n"),
                                      *[sa.func.sum(sa.case((c, 1), else_=0)).label(k) for k, c in counted.items()])
                            .where(*where).group_by(re_.c.book, year)).mappings():
        book_years.setdefault(row["book"], {})[None if row["year"] is None else int(row["year"])] = int(row["n"])
        for k in counted:
            totals[k] += int(row[k] or 0)

    def listed(name: str, cond: Any, *cols: Any, limit: int = MAX_LISTED) -> list[Any]:
        if not totals[name]:
            return []
        return conn.execute(sa.select(re_.c.source_file, re_.c.sheet, re_.c.row_no, *cols).where(*where, cond)
                            .order_by(re_.c.entry_id).limit(limit)).all()

    problems: list[str] = []
    for field, label in REGISTER_DATES.items():
        problems += [f"{_where(f, sh, n)}, {label}: {v!r} is not a date. Expected dd/mm/yyyy, YYYY-MM-DD or an "
                     "Excel date." for f, sh, n, v in listed(f"unparsed_{field}", unparsed[field], raw[field])]
    _raise(problems, f"{len(problems)} unparseable dates in the register")
    rows = listed("odd", odd, re_.c.code_raw)
    warnings = [f"{_where(f, sh, n)}: " + (f"{mask.quoted(v)} does not look like a dossier code" if v and v.strip() else
                                          "no dossier code") + " (kept). Expected e.g. 000.00.53.H48-210105-0001."
                for f, sh, n, v in rows]
    if totals["odd"] > MAX_LISTED:
        warnings.append(f"... and {totals['odd'] - MAX_LISTED} more rows with codes that do not look like dossier "
                        "codes.")
    short = [f"{totals[f'short_{f}']} {label}" for f, label in REGISTER_DATES.items() if totals[f"short_{f}"]]
    if short:
        warnings.append(f"register dates with a two-digit year, read as 2000-2029 for 00-29 and 1930-1999 for 30-99 "
                        f"(as Excel does): {', '.join(short)}. Hint: check them, or write the year in full.")
    rows = listed("late", late, limit=3)
    if rows:
        n = totals["late"]
        warnings.append(f"{n} register entr{'y was' if n == 1 else 'ies were'} received after the audit date "
                        f"{as_of.isoformat()}: {'; '.join(_where(*r) for r in rows)}{', ...' if n > len(rows) else ''}. "
                        "Hint: check those dates, or audit as of a later date.")
    return RegisterChecks(warnings, book_years)


def _two_digit_year(parsed: Any, raw: Any) -> Any:
    """A date written with a two-digit year (read by Excel's pivot: 00-29 are 20xx), by its shape: a
    separator third from the end, and not ISO's yyyy-mm-dd."""
    raw = sa.func.trim(raw)
    return sa.and_(parsed.is_not(None), sa.or_(raw.like("%/__"), raw.like("%.__"),
                                               sa.and_(raw.like("%-__"), ~raw.like("____-%"))))


def _where(file: str, sheet: str | None, row: int) -> str:
    return f'{file}, sheet "{sheet}", row {row}' if sheet else f"{file}, row {row}"


def _repeating_text(raw: str, col: str, alias: str, normalised: tuple[str, ...]) -> tuple[str, str]:
    """(expression, join) giving `col` as normalised text. Each distinct value is normalised once
    (procedures and agencies repeat on most rows): by a join on the distinct values, which reads
    `raw` again, or, for columns in `normalised`, already done on the Arrow side (see
    with_normalised_text) and read from `<col>_n`, so that `raw` can be a stream read once."""
    if col in normalised:
        return f"n.{col}_n", ""
    return f"{alias}.norm", (f"LEFT JOIN (SELECT {col} AS raw_value, {sql_text(col)} AS norm FROM "
                             f"(SELECT DISTINCT {col} FROM {raw})) {alias} ON n.{col} IS NOT DISTINCT FROM {alias}.raw_value")


def with_normalised_text(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """`table` plus a `<col>_n` column per column: normalize_text of each distinct value, taken back
    to the rows (the scalar twin of sql_text; tests check they agree)."""
    for col in columns:
        arr = table.column(col)
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        chunks = [pc.take(pa.array([normalize_text(v) for v in c.dictionary.to_pylist()], pa.string()), c.indices)
                  for c in arr.chunks]
        table = table.append_column(f"{col}_n", pa.chunked_array(chunks, pa.string()))
    return table


def register_sql(raw: str, normalised: tuple[str, ...] = ()) -> str:
    """SELECT producing register_entry rows (without run_id) from a raw register table."""
    (procedure, p_join), (agency, a_join) = (_repeating_text(raw, c, c[0], normalised) for c in REGISTER_TEXTS)
    withdrawn = " OR ".join(f"contains(n.note_key, '{w}')" for w in WITHDRAWN_WORDS)
    rejected = " OR ".join(f"contains(n.note_key, '{w}')" for w in REJECTED_WORDS)
    return f"""
        WITH n AS (
            SELECT *, {sql_code('dossier_code')} AS code_n, {sql_text('applicant')} AS applicant_n,
                   {sql_date('returned_at')} AS returned_d,
                   CASE WHEN note IS NOT NULL THEN {sql_fold('note')} END AS note_key  -- folded once, not per keyword
            FROM {raw}
        )
        SELECT
            n.entry_id, n.source_file, n.sheet, n.row_no, n.book,
            TRY_CAST(TRY_CAST(trim(n.stt) AS DOUBLE) AS INTEGER) AS stt, n.stt AS stt_raw,
            n.dossier_code AS code_raw, n.code_n AS dossier_code,
            {sql_looks_like_code('n.code_n')} AS code_ok,
            {procedure} AS procedure,
            n.quantity, n.applicant_n AS applicant, lower(n.applicant_n) AS applicant_key,
            n.address, {agency} AS agency,
            n.received_at AS received_raw, {sql_date('n.received_at')} AS received_at,
            n.due_at AS due_raw, {sql_date('n.due_at')} AS due_at,
            n.transferred_at AS transferred_raw, {sql_date('n.transferred_at')} AS transferred_at,
            n.returned_at AS returned_raw, n.returned_d AS returned_at,
            {sql_text('n.signed')} AS signed, {sql_text('n.note')} AS note,
            CASE WHEN n.note_key IS NOT NULL AND ({withdrawn}) THEN 'withdrawn'
                 WHEN n.note_key IS NOT NULL AND ({rejected}) THEN 'rejected'
                 WHEN n.returned_d IS NOT NULL THEN 'returned'
                 ELSE 'none' END AS outcome
        FROM n {p_join} {a_join}
    """


# ------------------------------------------------------------------------------------- system


class SystemDigest:
    """An order-independent digest of the system's content, batch by batch, for the run's fingerprint."""

    def __init__(self) -> None:
        self.wb = connect()
        self.count = 0
        self.xor = 0

    def add(self, dossiers: pa.Table) -> None:
        self.wb.register("d", dossiers)
        (n, h), = self.wb.execute(
            "SELECT count(*), coalesce(bit_xor(hash(dossier_code, procedure, applicant, status_raw, workflow_key, "
            "workflow_version, current_step, assignee, unit, received_at, due_at, due_at_revised, finished_at, "
            "returned_at)), 0) FROM d").fetchall()
        self.wb.unregister("d")  # a registered table stays referenced (and in memory) until unregistered
        self.count += n
        self.xor ^= h

    def digest(self, accounts: pa.Table) -> str:
        self.wb.register("a", accounts)
        (ah,), = self.wb.execute("SELECT coalesce(bit_xor(hash(account, unit, active)), 0) FROM a").fetchall()
        self.wb.unregister("a")
        return f"{self.count}:{self.xor:x}:{ah:x}"


_FINGERPRINT = ("md5(concat_ws('|', dossier_code, procedure, applicant, status_raw, workflow_key, workflow_version, "
                "current_step, assignee, unit, received_at, due_at, due_at_revised, finished_at, returned_at))")
_OPEN = ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATUSES))


_UNIT, _RECORD = "\x1f", "\x1e"  # separators inside the `problems` column: field, value; next problem


def dossier_sql(raw: str, normalised: tuple[str, ...] = (), open_fingerprints: bool = False) -> str:
    """SELECT producing dossier rows (without run_id) from the raw system table. Values that do not
    parse land in `problems` (field and raw value), which the run checks before it commits. With
    `open_fingerprints` only open dossiers get a fingerprint: plans act on open dossiers only, so
    the audit skips the md5 (and its 32 incompressible bytes) of every closed one; apply recomputes
    the fingerprint of every row it reads."""
    fingerprint = (f"CASE WHEN trim(n.status) IN ({_OPEN}) THEN {_FINGERPRINT} END" if open_fingerprints
                   else _FINGERPRINT)
    texts = {c: _repeating_text(raw, c, c[0], normalised) for c in DOSSIER_TEXTS}
    checked = [*SYSTEM_DATES, "workflow_version"]
    # The blank-cell test comes last: it runs only where a value failed to parse.
    problems = ", ".join(
        f"CASE WHEN x.raw_{c} IS NOT NULL AND x.{c} IS NULL AND trim(x.raw_{c}) <> '' "
        f"THEN '{c}{_UNIT}' || x.raw_{c} END" for c in checked)
    return f"""
        WITH n AS (SELECT *, {sql_text('applicant')} AS applicant_n FROM {raw}),
        x AS (
        SELECT n.source_row, n.dossier_code AS code_raw, {sql_code('n.dossier_code')} AS dossier_code,
            {texts['procedure'][0]} AS procedure, {texts['field'][0]} AS field, n.applicant_n AS applicant,
            lower(n.applicant_n) AS applicant_key, n.phone, n.address, {texts['agency'][0]} AS agency,
            trim(n.channel) AS channel,
            {", ".join(f"{sql_date('n.' + c)} AS {c}, n.{c} AS raw_{c}" for c in SYSTEM_DATES)},
            trim(n.status) AS status, n.status_raw, {texts['workflow_key'][0]} AS workflow_key,
            TRY_CAST(TRY_CAST(trim(n.workflow_version) AS DOUBLE) AS INTEGER) AS workflow_version,
            n.workflow_version AS raw_workflow_version,
            nullif(trim(n.current_step), '') AS current_step, nullif(trim(n.assignee), '') AS assignee,
            nullif(trim(n.unit), '') AS unit, n.version_problem,
            {fingerprint} AS fingerprint
        FROM n {" ".join(join for _, join in texts.values())}
        )
        SELECT x.* EXCLUDE ({", ".join(f"raw_{c}" for c in checked)}),
            nullif(concat_ws('{_RECORD}', {problems}), '') AS problems
        FROM x
    """


def check_stored_dossiers(conn: sa.Connection, run_id: int, where: str) -> None:
    """Refuse the run (BadInput, rolled back) if stored dossiers hold values that did not parse."""
    d = dossier
    rows = conn.execute(sa.select(d.c.source_row, d.c.problems)
                        .where(d.c.run_id == run_id, d.c.problems.is_not(None))
                        .order_by(d.c.source_row).limit(MAX_LISTED)).all()
    problems = []
    for row, text in rows:
        for item in text.split(_RECORD):
            field, value = item.split(_UNIT, 1)
            what = "is not a whole number" if field == "workflow_version" else (
                "is not a date. Expected dd/mm/yyyy, YYYY-MM-DD or an Excel date")
            problems.append(f"{where}, row {row}, {field}: {value!r} {what}.")
    _raise(problems, f"{len(problems)} bad values in {where}")


def account_sql(raw: str) -> str:
    return f"""
        SELECT nullif(trim(account), '') AS account, name, nullif(trim(unit), '') AS unit, active
        FROM {raw} WHERE nullif(trim(account), '') IS NOT NULL"""


def event_sql(raw: str) -> str:
    return f"""
        SELECT {sql_code('dossier_code')} AS dossier_code,
            TRY_CAST(TRY_CAST(trim(seq) AS DOUBLE) AS INTEGER) AS seq,
            nullif(trim(from_step), '') AS from_step, nullif(trim(to_step), '') AS to_step,
            nullif(trim(account), '') AS account, {sql_date('"at"')} AS "at", {sql_text('action')} AS action
        FROM {raw}"""
