"""Vendor tickets (DESIGN §6): what only the vendor can fix, grouped per (procedure, version, cause).

From an audit run and its plan (`fix.commands.plan`):
- every `escalate` action goes to the ticket of its dossier's procedure, version and cause: the
  dossier's first orphan finding (unknown_version, step_not_in_version, dead_end_step,
  unit_without_staff, assignee_inactive), or the migration target's problem
  (migration_target_without_staff, migration_target_invalid);
- when the system source is not writable (a mapping without `writable: true`, or an engine database),
  the confirmed `migrate`/`reassign`/`close`/`backfill` actions become tickets too (cause
  planned_<action>): the vendor runs the statements of `apply`'s dry run (engine databases: the values
  to set, no SQL; a backfill: the record to create).
  Guesses awaiting confirmation never go to the vendor.
Each ticket carries its dossiers with their evidence (system values, register file/sheet/row), the
proposed action, what is wrong, what the vendor must do, and the SQL. Personal data is masked
(reconcile.util.mask) unless `unmask` (internal use only).

`plan_path`: a reviewed plan file (`reconcile plan --out`, made for the same run) instead of the run's
plan as built now. Its actions carry no evidence: each dossier's procedure, version and system values
come from the run's dossier row in the store (what the plan's evidence copies), and the dry run's SQL
is that of the file itself.

Human texts (titles, paragraphs, headings, labels, the CSV header) come from the message catalog
(reconcile/data/messages.yaml, `tk.*`) in `lang`; English is the default and keeps the machine codes
the tickets always showed. So do the plan's reasons, from their reason codes (reconcile.fix.reasons); a
reason without a code, or edited by a reviewer, is quoted as the plan file says it (English). JSON keys
and codes are the same in every language.

Written as Markdown (index.md + one file per ticket), CSV (tickets.csv: one row per dossier per ticket,
UTF-8 with a byte order mark like the report CSVs) and JSON (tickets.json: everything) into a folder,
through a temporary folder and a rename; sorted, with no wall-clock time, so the same run gives the same
bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml

from reconcile.util.inlists import chunks
from reconcile.util import mask

from reconcile.fix import reasons
from reconcile.errors import BadInput, wrote
from reconcile.util.i18n import catalog, check_lang, day, number, t
from reconcile.fix.plan import Action, Plan
from reconcile.util.csvtext import to_csv
from reconcile.store import audit_run, dossier, finding, open_store, register_entry, wf_version
from reconcile.workflow.state import ORPHAN_KINDS

if TYPE_CHECKING:
    from reconcile.fix.planread import PlanFile

TICKETS_FORMAT = 1
DEFAULT_OUT = "tickets"
DEFAULT_LANG = "en"
FIX_ACTIONS = ("migrate", "reassign", "close", "backfill")
CAUSE_ORDER = [k.value for k in ORPHAN_KINDS] + ["migration_target_without_staff", "migration_target_invalid",
                                                 "other"] + [f"planned_{a}" for a in FIX_ACTIONS]
SYSTEM_FIELDS = ("status", "workflow_key", "workflow_version", "current_step", "assignee", "unit", "received_at",
                 "due_at", "applicant", "phone", "address")
REGISTER_FIELDS = ("file", "sheet", "row", "applicant", "address", "received_at", "returned_at", "outcome", "note")
CSV_COLUMNS = ("ticket", "procedure", "version", "cause", "dossier_code", "action", "rule", "reason", "findings",
               *(f"system_{f}" for f in SYSTEM_FIELDS), "register_rows", *(f"register_{f}" for f in REGISTER_FIELDS),
               "planned", "sql_state", "sql")
# Causes with their own templates (tk.<cause>.*); planned_<action> share tk.planned.*, the rest tk.other.*.
OWN_TEMPLATE = ("unknown_version", "step_not_in_version", "dead_end_step", "unit_without_staff",
                "migration_target_without_staff", "assignee_inactive")
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# Escalations by the migration target's problem: reason code -> cause.
TARGET_CAUSES = {"target_without_staff": "migration_target_without_staff", "target_invalid": "migration_target_invalid"}
# Fields whose values are codes with a label in the catalog: field -> key prefix.
CODED = {"status": "value", "outcome": "value", "action": "tk.action", "sql_state": "tk.state", "finding": "kind"}


@dataclass(frozen=True, slots=True)
class TicketDossier:
    dossier_code: str
    action: str  # the plan's action
    rule: str
    reason: str
    findings: tuple[str, ...]  # the dossier's orphan findings in this run
    system: dict[str, Any]  # SYSTEM_FIELDS (personal ones masked unless unmasked)
    register: tuple[dict[str, Any], ...]  # REGISTER_FIELDS per register row with the code
    planned: dict[str, Any]  # the values the plan would write, by field name
    sql_state: str | None = None  # dry run of apply: would_write, already_applied, stale, ... (fix tickets)
    sql: tuple[str, ...] = ()
    reason_code: str | None = None  # reconcile.fix.reasons (None: a plan file's own sentence); `reason` is in the language
    reason_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"dossier_code": self.dossier_code, "action": self.action, "rule": self.rule, "reason": self.reason,
                "reason_code": self.reason_code, "reason_args": self.reason_args, "findings": list(self.findings),
                "system": self.system, "register": list(self.register),
                "planned": self.planned, "sql_state": self.sql_state, "sql": list(self.sql)}


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str  # T01, T02, ... in (procedure, version, cause) order
    procedure: str
    procedure_name: str
    version: int | None
    cause: str
    title: str
    problem: str  # what is wrong
    request: str  # what the vendor must do
    dossiers: tuple[TicketDossier, ...]
    sql: str  # the group's script ("" for escalations)

    @property
    def file(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{self.procedure}-v{self.version if self.version is not None else 'none'}")
        return f"{self.id}-{slug}-{self.cause}.md"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.file, "procedure": self.procedure, "procedure_name": self.procedure_name,
                "version": self.version, "cause": self.cause, "title": self.title, "problem": self.problem,
                "request": self.request, "dossiers": [d.to_dict() for d in self.dossiers], "sql": self.sql}


@dataclass(frozen=True, slots=True)
class TicketBundle:
    run: dict[str, Any]  # id, as_of, fingerprint
    store: str
    system: dict[str, Any]  # profile, source, mapping, writable
    masked: bool
    tickets: tuple[Ticket, ...]
    not_ticketed: dict[str, int]  # planned actions the office applies itself, guesses awaiting confirmation
    lang: str = DEFAULT_LANG  # of the titles and paragraphs

    def to_dict(self) -> dict[str, Any]:
        # "lang" only when not English: English bundles keep the bytes they had before --lang.
        return {"tickets": {"format": TICKETS_FORMAT, "run": self.run, "store": self.store, "system": self.system,
                            "masked": self.masked, "count": len(self.tickets),
                            "dossiers": sum(len(t.dossiers) for t in self.tickets),
                            "not_ticketed": self.not_ticketed}
                | ({"lang": self.lang} if self.lang != DEFAULT_LANG else {}),
                "items": [t.to_dict() for t in self.tickets]}


# ------------------------------------------------------------------------------------ build

def build_tickets(store_url: str | None = None, run_id: int | None = None, *, unmask: bool = False,
                  system_url: str | None = None, mapping_path: str | None = None, plan_path: str | None = None,
                  lang: str = DEFAULT_LANG) -> TicketBundle:
    """The tickets of one audit run (default: the latest), from its plan (or the reviewed plan file
    `plan_path`, made for that run) and, for a source that is not writable, the statements of `apply`'s
    dry run; texts in `lang`."""
    from reconcile.store import resolve_run
    from reconcile.fix.commands import load_run_plan, plan as make_plan

    check_lang(lang)
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = resolve_run(store, conn, run_id)
            loaded = None if plan_path is None else load_run_plan(conn, plan_path, run_id)
    finally:
        store.engine.dispose()
    fix_plan = make_plan(store_url, run_id) if loaded is None else _file_plan(loaded)
    system = dict(fix_plan.header.get("system") or {})
    writable = _writable(system, mapping_path)
    system["writable"] = writable
    fixes = [] if writable else [a for a in fix_plan.actions if a.action in FIX_ACTIONS and a.confirmed]
    dry = _dry_run(fix_plan, fixes, plan_path, store_url, system_url, mapping_path) if fixes else ({}, "BEGIN;")
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            return _bundle(conn, fix_plan, run_id, fixes, dry, system, masked=not unmask, lang=lang)
    finally:
        store.engine.dispose()


def _file_plan(loaded: PlanFile) -> Plan:
    """A reviewed plan file as the builder's plan. Its actions keep what the reviewer decided (action,
    rule, reason, confirmed, set); they carry no evidence, so `_bundle` reads it from the store."""
    header = {"store": loaded.store, "run": loaded.run, "run_fingerprint": loaded.run_fingerprint,
              "system": dict(loaded.system)}
    actions = [Action(a.dossier_code, a.action, a.rule, a.reason, a.fingerprint, a.confirmed, dict(a.set),
                      reason_code=a.reason_code, reason_args=dict(a.reason_args)) for a in loaded.actions]
    return Plan(header, actions, {}, [])


def _writable(system: dict[str, Any], mapping_path: str | None) -> bool:
    """Whether `apply --yes` can write the run's source itself (then planned fixes need no ticket)."""
    profile = system.get("profile")
    if profile == "csv":
        return True  # the store's own snapshot
    if profile == "mapping":
        from reconcile.sources.system import load_mapping

        return load_mapping(mapping_path or system.get("mapping") or "").writable
    return False  # engine databases: the tool never writes their tables


def _dry_run(fix_plan: Plan, fixes: list[Action], plan_path: str | None, store_url: str | None,
             system_url: str | None, mapping_path: str | None) -> tuple[dict[str, tuple[str, tuple[str, ...]]], str]:
    """Per dossier the dry run's state and statements, and the script's BEGIN line (of the plan file
    when there is one, else of the built plan written to a temporary file). Engine databases have no
    SQL (apply refuses them): the ticket gives the values to set."""
    if fix_plan.header.get("system", {}).get("profile") != "mapping":
        return {a.dossier_code: ("values_only", ()) for a in fixes}, "BEGIN;"
    from reconcile.fix.apply import apply_plan

    with tempfile.TemporaryDirectory(prefix="reconcile-tickets-") as tmp:
        path = Path(tmp) / "plan.yaml"
        if plan_path is None:
            path.write_text(yaml.safe_dump(fix_plan.to_dict(), allow_unicode=True, sort_keys=False, width=120),
                            encoding="utf-8")
        result = apply_plan(plan_path or path, store_url, yes=False, system_url=system_url,
                            mapping_path=mapping_path)
    begin = next((line for line in result.script.splitlines() if line in ("BEGIN;", "START TRANSACTION;")), "BEGIN;")
    return {o.dossier_code: (o.state, o.statements) for o in result.outcomes}, begin


def _bundle(conn: sa.Connection, fix_plan: Plan, run_id: int, fixes: list[Action],
            dry: tuple[dict[str, tuple[str, tuple[str, ...]]], str], system: dict[str, Any],
            masked: bool, lang: str) -> TicketBundle:
    states, begin = dry
    escalations = [a for a in fix_plan.actions if a.action == "escalate"]
    chosen = escalations + fixes
    codes = sorted({a.dossier_code for a in chosen})
    kinds, details = _findings(conn, run_id, codes)
    systems, registers = _evidence(conn, run_id, codes)
    names = dict(conn.execute(sa.select(wf_version.c.procedure, wf_version.c.name)
                              .where(wf_version.c.run_id == run_id, wf_version.c.is_latest)).all())
    run = conn.execute(sa.select(audit_run.c.id, audit_run.c.as_of, audit_run.c.fingerprint)
                       .where(audit_run.c.id == run_id)).mappings().one()

    def m(values: dict[str, Any]) -> dict[str, Any]:
        return mask.record(values, masked)

    groups: dict[tuple[str, int | None, str], list[TicketDossier]] = {}
    group_details: dict[tuple[str, int | None, str], list[dict[str, Any]]] = {}
    for a in chosen:
        # A plan file's action has no evidence: the run's dossier row is what the plan copied into it.
        evidence = a.evidence or systems.get(a.dossier_code) or {}
        sys_row = systems.get(a.dossier_code) or {f: evidence.get(f) for f in SYSTEM_FIELDS}
        procedure = evidence.get("workflow_key") or sys_row.get("procedure") or a.set.get("workflow_key") or ""
        version = evidence.get("workflow_version")
        found = kinds.get(a.dossier_code, ())
        cause = f"planned_{a.action}" if a.action != "escalate" else _cause(a, found)
        state, statements = states.get(a.dossier_code, (None, ())) if a.action != "escalate" else (None, ())
        if masked and a.action == "backfill":  # its INSERT holds the applicant's name: no SQL unless unmasked
            statements = ()
        reason = reasons.text(a.reason, a.reason_code, a.reason_args, lang)
        args = {k: mask.text(v) if masked and isinstance(v, str) else v for k, v in a.reason_args.items()}
        item = TicketDossier(
            a.dossier_code, a.action, a.rule, (mask.text(reason) if masked else reason) or "", found,
            m({f: _plain(sys_row.get(f)) for f in SYSTEM_FIELDS}),
            tuple(m(r) for r in registers.get(a.dossier_code, ())),
            m({k: _plain(v) for k, v in sorted(a.set.items())}),  # by field: a plan file gives no order
            state, tuple(statements), a.reason_code, args)
        key = (str(procedure), version, cause)
        groups.setdefault(key, []).append(item)
        group_details.setdefault(key, []).append(details.get(a.dossier_code, {}))
    order = {c: i for i, c in enumerate(CAUSE_ORDER)}
    keys = sorted(groups, key=lambda k: (k[0], -1 if k[1] is None else k[1], order.get(k[2], 99), k[2]))
    width = max(2, len(str(len(keys))))
    tickets = []
    for n, key in enumerate(keys, 1):
        items = tuple(sorted(groups[key], key=lambda d: d.dossier_code))
        tickets.append(_ticket(f"T{n:0{width}d}", key, names.get(key[0], ""), items, group_details[key],
                               system, begin, lang))
    ticketed = {a.dossier_code for a in chosen}
    not_ticketed = Counter(f"{a.action}_applied_by_the_office" if a.confirmed else "guess_awaiting_confirmation"
                           for a in fix_plan.actions if a.dossier_code not in ticketed and a.action != "escalate")
    return TicketBundle({"id": int(run["id"]), "as_of": _plain(run["as_of"]), "fingerprint": run["fingerprint"]},
                        str(fix_plan.header.get("store", "")), system, masked, tuple(tickets),
                        dict(sorted(not_ticketed.items())), lang)


def _cause(a: Action, kinds: tuple[str, ...]) -> str:
    if a.reason_code in TARGET_CAUSES:
        return TARGET_CAUSES[a.reason_code]
    if a.reason_code is None and a.reason.startswith("target "):  # a plan file of an older version: no code
        return "migration_target_without_staff" if "no active account" in a.reason else "migration_target_invalid"
    return kinds[0] if kinds else "other"


def _target_unit(d: TicketDossier) -> str | None:
    """The unit without staff of a migration target (a plan file of an older version: from its English reason)."""
    m = re.search(r"unit (\S+)$", d.reason) if d.reason_code is None else None
    return m.group(1) if m else d.reason_args.get("unit")


def _ticket(tid: str, key: tuple[str, int | None, str], name: str, items: tuple[TicketDossier, ...],
            details: list[dict[str, Any]], system: dict[str, Any], begin: str, lang: str) -> Ticket:
    """One ticket: its cause's templates (tk.<cause>.title/problem/request) filled in `lang`."""
    procedure, version, cause = key
    steps = [d.system.get("current_step") for d in items]
    units = [d.system.get("unit") for d in items]
    n = len(items)
    p: dict[str, Any] = {
        "procedure": procedure, "version": version, "what": procedure + (f" ({name})" if name else ""),
        "v": t("tk.v", lang, version=version) if version is not None else t("tk.no_version", lang),
        "dossiers": t("tk.dossier" if n == 1 else "tk.dossiers", lang, n=_n(n, lang)),
        "steps": _counted(steps, lang), "step_names": _names(steps, lang), "units": _names(units, lang),
        "unit_counts": _counted(units, lang), "cause": cause, "label": _cause_label(cause, lang)}
    template = "planned" if cause.startswith("planned_") else cause if cause in OWN_TEMPLATE else "other"
    request_key, extra, sql = f"tk.{template}.request", "", ""
    if cause == "unknown_version":
        latest = sorted({int(x["latest_catalog_version"]) for x in details if x.get("latest_catalog_version")})
        p["latest"] = t("tk.unknown_version.latest", lang, latest=latest[-1]) if latest else ""
    elif cause == "step_not_in_version":
        earlier = sorted({int(x["earlier_version_with_step"]) for x in details if x.get("earlier_version_with_step")})
        p["earlier"] = (t("tk.step_not_in_version.earlier", lang, versions=", ".join(map(str, earlier)))
                        if earlier else "")
    elif cause == "dead_end_step":
        p["asks"] = " ".join(t("tk.dead_end_step.ask", lang, step=s) for s in p["step_names"].split(", "))
    elif cause == "migration_target_without_staff":
        p["units"] = ", ".join(sorted({u for d in items if (u := _target_unit(d))}))
    elif cause == "assignee_inactive":
        p["who"] = _counted((d.system.get("assignee") for d in items), lang)
    elif template == "planned":
        p["action"] = action = cause[len("planned_"):]
        p["action_text"] = _coded("action", action, lang)
        p["why"] = t("tk.planned.engine" if system.get("profile") not in ("mapping", "csv") else "tk.planned.mapping",
                     lang)
        if any(d.sql for d in items):
            sql = "\n".join([begin, *[line for d in items if d.sql for line in
                                      (f"-- {d.dossier_code} {d.action} ({d.rule})", *d.sql)], "COMMIT;"]) + "\n"
            request_key = "tk.planned.request_sql"
        if action == "backfill":  # records to create, not rows to change
            request_key = "tk.planned.request_insert_sql" if sql else "tk.planned.request_backfill"
        skipped = [d.sql_state for d in items if d.sql_state not in ("would_write", "values_only", None)]
        if skipped:
            extra = t("tk.planned.skipped", lang, states=_counted((_coded("sql_state", s, lang) for s in skipped),
                                                                  lang))
    elif template == "other":
        p["reasons"] = "; ".join(sorted({d.reason for d in items}))
    return Ticket(tid, procedure, name, version, cause, t(f"tk.{template}.title", lang, **p),
                  t(f"tk.{template}.problem", lang, **p), t(request_key, lang, **p) + extra, items, sql)


def _n(n: int, lang: str) -> str:
    """A count: thousands separated in Vietnamese; English keeps the plain digits it always had."""
    return str(n) if lang == "en" else number(n, lang)


def _coded(field: str, code: str, lang: str) -> str:
    """A code of `field` (CODED) as the reader sees it: English the code, Vietnamese its label."""
    entry = catalog().get(f"{CODED[field]}.{code}")
    return t("tk.code", lang, code=code, label=entry[lang] if entry else code)


def _cause_label(cause: str, lang: str) -> str:
    entry = catalog().get(f"kind.{cause}") or catalog().get(f"tk.cause.{cause}")
    return entry[lang] if entry else cause


def _counted(values: Any, lang: str) -> str:
    c = Counter(str(v) for v in values if v is not None)
    return ", ".join(f"{k} ({_n(n, lang)})" for k, n in sorted(c.items())) or t("tk.none", lang)


def _names(values: Any, lang: str) -> str:
    return ", ".join(sorted({str(v) for v in values if v is not None})) or t("tk.none", lang)


# ------------------------------------------------------------------------------------ reads

def _findings(conn: sa.Connection, run_id: int, codes: list[str]
              ) -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, Any]]]:
    """Per dossier its orphan finding kinds (in ORPHAN_KINDS order) and their merged details."""
    order = {k.value: i for i, k in enumerate(ORPHAN_KINDS)}
    kinds: dict[str, list[str]] = {}
    details: dict[str, dict[str, Any]] = {}
    for part in chunks(codes):
        for code, kind, det in conn.execute(
                sa.select(finding.c.dossier_code, finding.c.kind, finding.c.details)
                .where(finding.c.run_id == run_id, finding.c.dossier_code.in_(part),
                       finding.c.kind.in_(list(order)))):
            kinds.setdefault(code, []).append(kind)
            details.setdefault(code, {}).update(json.loads(det))
    return ({c: tuple(sorted(set(k), key=order.__getitem__)) for c, k in kinds.items()}, details)


def _evidence(conn: sa.Connection, run_id: int, codes: list[str]
              ) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The system row (the first, by source row) and every register row of each dossier."""
    d, r = dossier, register_entry
    systems: dict[str, dict[str, Any]] = {}
    registers: dict[str, list[dict[str, Any]]] = {}
    for part in chunks(codes):
        for row in conn.execute(sa.select(d.c.dossier_code, d.c.procedure, *[d.c[f] for f in SYSTEM_FIELDS])
                                .where(d.c.run_id == run_id, d.c.dossier_code.in_(part))
                                .order_by(d.c.dossier_code, d.c.source_row)).mappings():
            systems.setdefault(row["dossier_code"], dict(row))
        for row in conn.execute(sa.select(r.c.dossier_code, r.c.source_file, r.c.sheet, r.c.row_no, r.c.applicant,
                                          r.c.address, r.c.received_at, r.c.returned_at, r.c.outcome, r.c.note)
                                .where(r.c.run_id == run_id, r.c.dossier_code.in_(part))
                                .order_by(r.c.dossier_code, r.c.entry_id)).mappings():
            registers.setdefault(row["dossier_code"], []).append({
                "file": row["source_file"], "sheet": row["sheet"], "row": row["row_no"],
                "applicant": row["applicant"], "address": row["address"], "received_at": _plain(row["received_at"]),
                "returned_at": _plain(row["returned_at"]), "outcome": row["outcome"], "note": row["note"]})
    return systems, registers



def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, (date, datetime)) else v


# ------------------------------------------------------------------------------------ render

def _cell(v: Any) -> str:
    text = "" if v is None else str(v)
    return " ".join(text.replace("|", "\\|").split())


def _field(name: str, lang: str) -> str:
    entry = catalog().get(f"tk.field.{name}")
    return entry[lang] if entry else name


def _value(name: str, v: Any, lang: str) -> str:
    """A field's value as text: codes as _coded, dates (`*_at`, ISO) as i18n.day, None as ""."""
    if isinstance(v, str) and name in CODED:
        return _coded(name, v, lang)
    if isinstance(v, str) and name.endswith("_at") and ISO_DAY.fullmatch(v):
        return day(v, lang)
    return "" if v is None else str(v)


def _pairs(values: dict[str, Any], names: Any, lang: str, skip_none: bool = True) -> str:
    """`name=value, ...` (Vietnamese: `Nhãn: giá trị; ...`) of the names (that have a value)."""
    return t("tk.sep", lang).join(t("tk.pair", lang, name=_field(k, lang), value=_cell(_value(k, values.get(k), lang)))
                                  for k in names if values.get(k) is not None or not skip_none)


def _personal(bundle: TicketBundle) -> str:
    return t("tk.md.personal", bundle.lang, state=t("tk.masked" if bundle.masked else "tk.unmasked", bundle.lang))


def _version(version: int | None, lang: str) -> str:
    return str(version) if version is not None else t("tk.none", lang)


def ticket_markdown(ticket: Ticket, bundle: TicketBundle) -> str:
    run, lang = bundle.run, bundle.lang
    columns = ("dossier", "status", "step", "assignee", "unit", "received", "due", "applicant", "phone", "address",
               "register", "action")
    lines = [f"# {ticket.id}: {ticket.title}", "",
             "- " + t("tk.md.procedure", lang, procedure=ticket.procedure)
             + (f" ({ticket.procedure_name})" if ticket.procedure_name else ""),
             "- " + t("tk.md.version", lang, version=_version(ticket.version, lang)),
             "- " + t("tk.md.cause", lang, cause=t("tk.cause", lang, code=ticket.cause,
                                                   label=_cause_label(ticket.cause, lang))),
             "- " + t("tk.md.dossiers", lang, n=_n(len(ticket.dossiers), lang)),
             "- " + t("tk.md.run", lang, run=run["id"], as_of=day(run["as_of"], lang), fingerprint=run["fingerprint"]),
             "- " + _personal(bundle), "",
             f"## {t('tk.md.problem', lang)}", "", ticket.problem, "", f"## {t('tk.md.request', lang)}", "",
             ticket.request, "", f"## {t('tk.md.dossier_list', lang)}", "",
             "| " + " | ".join(t(f"tk.col.{c}", lang) for c in columns) + " |",
             "|" + "---|" * len(columns)]
    for d in ticket.dossiers:
        s = d.system
        reg = "; ".join(t("tk.reg_sheet_row" if r.get("sheet") else "tk.reg_row", lang, file=r["file"],
                          sheet=r.get("sheet"), row=r["row"]) for r in d.register) or t("tk.not_on_register", lang)
        lines.append("| " + " | ".join(_cell(x) for x in (
            d.dossier_code, _value("status", s.get("status"), lang), s.get("current_step"), s.get("assignee"),
            s.get("unit"), _value("received_at", s.get("received_at"), lang),
            _value("due_at", s.get("due_at"), lang), s.get("applicant"), s.get("phone"), s.get("address"), reg,
            _value("action", d.action, lang))) + " |")
    lines += ["", f"## {t('tk.md.evidence', lang)}", ""]
    for d in ticket.dossiers:
        lines.append(f"### {d.dossier_code}")
        lines.append("")
        lines.append("- " + t("tk.md.plan", lang, action=d.action, action_text=_value("action", d.action, lang),
                              rule=d.rule, reason=_cell(d.reason)))
        if d.findings:
            lines.append("- " + t("tk.md.findings", lang, kinds=t("tk.sep", lang).join(
                _value("finding", k, lang) for k in d.findings)))
        lines.append("- " + t("tk.md.system", lang, values=_pairs(d.system, SYSTEM_FIELDS, lang)))
        for r in d.register:
            lines.append("- " + t("tk.md.register", lang, values=_pairs(r, REGISTER_FIELDS, lang)))
        if d.planned:
            lines.append("- " + t("tk.md.planned", lang,
                                  values=_pairs(d.planned, sorted(d.planned), lang, skip_none=False)))
        if d.sql_state:
            lines.append("- " + t("tk.md.dry_run", lang, state=_value("sql_state", d.sql_state, lang)))
        lines.append("")
    if ticket.sql:
        lines += [f"## {t('tk.md.sql', lang)}", "", "```sql", ticket.sql.rstrip("\n"), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def index_markdown(bundle: TicketBundle) -> str:
    run, lang, system = bundle.run, bundle.lang, bundle.system
    columns = ("ticket", "procedure", "version", "cause", "dossiers", "title_col")
    lines = ["# " + t("tk.index.title", lang, run=run["id"], as_of=day(run["as_of"], lang)), "",
             "- " + t("tk.index.store", lang, store=bundle.store),
             "- " + t("tk.index.system", lang, profile=system.get("profile", ""), source=system.get("source", ""),
                      writable=t("tk.index.writable" if system.get("writable") else "tk.index.not_writable", lang)),
             "- " + t("tk.index.fingerprint", lang, fingerprint=run["fingerprint"]),
             "- " + _personal(bundle),
             "- " + t("tk.index.counts", lang, tickets=_n(len(bundle.tickets), lang),
                      dossiers=_n(sum(len(x.dossiers) for x in bundle.tickets), lang))]
    if bundle.not_ticketed:
        lines.append("- " + t("tk.index.not_ticketed", lang, items=t("tk.sep", lang).join(
            _not_ticketed(k, v, lang) for k, v in bundle.not_ticketed.items())))
    lines += ["", "| " + " | ".join(t(f"tk.index.{c}", lang) for c in columns) + " |", "|" + "---|" * len(columns)]
    for x in bundle.tickets:
        lines.append("| " + " | ".join([f"[{x.id}]({x.file})", _cell(x.procedure), _cell(_version(x.version, lang)),
                                         t("tk.cause", lang, code=x.cause, label=_cause_label(x.cause, lang)),
                                         _n(len(x.dossiers), lang), _cell(x.title)]) + " |")
    lines += ["", t("tk.index.also", lang)]
    return "\n".join(lines) + "\n"


def _not_ticketed(key: str, n: int, lang: str) -> str:
    """`close_applied_by_the_office 60` (Vietnamese: `kết thúc hồ sơ: 60 hồ sơ (cơ quan tự thực hiện)`)."""
    action = key.removesuffix("_applied_by_the_office")
    if action == key:
        return t("tk.index.guess", lang, code=key, n=_n(n, lang))
    return t("tk.index.applied_by_office", lang, code=key, action_text=_value("action", action, lang), n=_n(n, lang))


def _csv_header(lang: str) -> list[str]:
    """CSV_COLUMNS in `lang`; the system_*/register_* columns from the field labels."""
    out: list[str] = []
    for c in CSV_COLUMNS:
        side, _, name = c.partition("_")
        if side in ("system", "register") and name in (*SYSTEM_FIELDS, *REGISTER_FIELDS):
            out.append(t(f"tk.csv.{side}", lang, field=name, label=_field(name, lang)))
        else:
            out.append(t(f"tk.csv.{c}", lang))
    return out


def tickets_csv(bundle: TicketBundle) -> str:
    """One row per dossier, through util.csvtext.to_csv: a BOM so that Excel reads the UTF-8
    Vietnamese, and text cells a spreadsheet would run as a formula quoted."""
    lang = bundle.lang
    rows = [[x.id, x.procedure, x.version, t("tk.code", lang, code=x.cause, label=_cause_label(x.cause, lang)),
             d.dossier_code, _value("action", d.action, lang), d.rule, d.reason,
             t("tk.csv.findings_sep", lang).join(_value("finding", k, lang) for k in d.findings),
             *(_value(f, d.system.get(f), lang) for f in SYSTEM_FIELDS), len(d.register),
             *(_value(f, (d.register[0] if d.register else {}).get(f), lang) for f in REGISTER_FIELDS),
             json.dumps(d.planned, ensure_ascii=False, sort_keys=True) if d.planned else "",
             _value("sql_state", d.sql_state, lang), "\n".join(d.sql)]
            for x in bundle.tickets for d in x.dossiers]
    return to_csv(_csv_header(lang), rows)


def render_files(bundle: TicketBundle) -> dict[str, str]:
    """File name -> text of everything a bundle writes."""
    files = {"index.md": index_markdown(bundle), "tickets.csv": tickets_csv(bundle),
             "tickets.json": json.dumps(bundle.to_dict(), ensure_ascii=False, indent=2, sort_keys=False) + "\n"}
    for x in bundle.tickets:
        files[x.file] = ticket_markdown(x, bundle)
    return files


# ------------------------------------------------------------------------------------ write

def check_out(out: str | Path) -> Path:
    """The output folder can take a bundle: refused (exit 2) before anything is computed or written."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise BadInput(f"--out {path}: is a file, not a folder. Hint: pass a folder (created if missing), "
                       f"e.g. --out {DEFAULT_OUT}/.")
    if path.is_dir() and any(path.iterdir()) and not (path / "tickets.json").is_file():
        raise BadInput(f"--out {path}: the folder holds other files (no tickets.json of an earlier bundle). Hint: "
                       "pass a new or empty folder; an earlier tickets folder is replaced whole.")
    return path


def write_bundle(bundle: TicketBundle, out: str | Path) -> Path:
    """Write every file into a temporary folder beside OUT, then rename it into place (an earlier bundle
    in OUT is replaced whole): never a half-written folder."""
    path = check_out(out)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise BadInput(f"--out {path}: cannot create the folder: {exc.strerror}. Hint: check the parent folder "
                       "exists and is writable.") from None
    old = None
    try:
        for name, text in render_files(bundle).items():
            (tmp / name).write_text(text, encoding="utf-8")
        if path.is_dir():
            old = parent / f".{path.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.is_dir() and not path.exists():
            old.rename(path)
        raise BadInput(f"--out {path}: cannot write: {exc.strerror}. Hint: check the folder is writable.") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.is_dir() and not path.exists():
            old.rename(path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    wrote(str(path))
    return path


def tickets(store_url: str | None = None, out: str | Path = DEFAULT_OUT, run_id: int | None = None, *,
            unmask: bool = False, system_url: str | None = None, mapping_path: str | None = None,
            plan_path: str | None = None, lang: str = DEFAULT_LANG) -> TicketBundle:
    """`reconcile tickets`: check OUT, build the bundle, write it."""
    check_out(out)
    bundle = build_tickets(store_url, run_id, unmask=unmask, system_url=system_url, mapping_path=mapping_path,
                           plan_path=plan_path, lang=lang)
    write_bundle(bundle, out)
    return bundle

