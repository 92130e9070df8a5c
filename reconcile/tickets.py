"""Vendor tickets (DESIGN §6): what only the vendor can fix, grouped per (procedure, version, cause).

From an audit run and its plan (`commands.plan`):
- every `escalate` action goes to the ticket of its dossier's procedure, version and cause: the
  dossier's first orphan finding (unknown_version, step_not_in_version, dead_end_step,
  unit_without_staff, assignee_inactive), or the migration target's problem
  (migration_target_without_staff, migration_target_invalid);
- when the system source is not writable (a mapping without `writable: true`, or an engine database),
  the confirmed `migrate`/`reassign`/`close` actions become tickets too (cause planned_<action>): the
  vendor runs the statements of `apply`'s dry run (engine databases: the values to set, no SQL).
  Guesses awaiting confirmation never go to the vendor.
Each ticket carries its dossiers with their evidence (system values, register file/sheet/row), the
proposed action, what is wrong, what the vendor must do, and the SQL. Personal data is masked
(reconcile.mask) unless `unmask` (internal use only).

Written as Markdown (index.md + one file per ticket), CSV (tickets.csv: one row per dossier per ticket)
and JSON (tickets.json: everything) into a folder, through a temporary folder and a rename; sorted,
with no wall-clock time, so the same run gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from reconcile import mask
from reconcile.errors import BadInput
from reconcile.plan import Action, Plan
from reconcile.store import audit_run, dossier, finding, open_store, register_entry, wf_version
from reconcile.wfstate import ORPHAN_KINDS

TICKETS_FORMAT = 1
DEFAULT_OUT = "tickets"
FIX_ACTIONS = ("migrate", "reassign", "close")
CAUSE_ORDER = [k.value for k in ORPHAN_KINDS] + ["migration_target_without_staff", "migration_target_invalid",
                                                 "other"] + [f"planned_{a}" for a in FIX_ACTIONS]
SYSTEM_FIELDS = ("status", "workflow_key", "workflow_version", "current_step", "assignee", "unit", "received_at",
                 "due_at", "applicant", "phone", "address")
REGISTER_FIELDS = ("file", "sheet", "row", "applicant", "address", "received_at", "returned_at", "outcome", "note")
CSV_COLUMNS = ("ticket", "procedure", "version", "cause", "dossier_code", "action", "rule", "reason", "findings",
               *(f"system_{f}" for f in SYSTEM_FIELDS), "register_rows", *(f"register_{f}" for f in REGISTER_FIELDS),
               "planned", "sql_state", "sql")


@dataclass(frozen=True, slots=True)
class TicketDossier:
    dossier_code: str
    action: str  # the plan's action
    rule: str
    reason: str
    findings: tuple[str, ...]  # the dossier's orphan findings in this run
    system: dict[str, Any]  # SYSTEM_FIELDS (personal ones masked unless unmasked)
    register: tuple[dict[str, Any], ...]  # REGISTER_FIELDS per register row with the code
    planned: dict[str, Any]  # the values the plan would write
    sql_state: str | None = None  # dry run of apply: would_write, already_applied, stale, ... (fix tickets)
    sql: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"dossier_code": self.dossier_code, "action": self.action, "rule": self.rule, "reason": self.reason,
                "findings": list(self.findings), "system": self.system, "register": list(self.register),
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

    def to_dict(self) -> dict[str, Any]:
        return {"tickets": {"format": TICKETS_FORMAT, "run": self.run, "store": self.store, "system": self.system,
                            "masked": self.masked, "count": len(self.tickets),
                            "dossiers": sum(len(t.dossiers) for t in self.tickets),
                            "not_ticketed": self.not_ticketed},
                "items": [t.to_dict() for t in self.tickets]}


# ------------------------------------------------------------------------------------ build

def build_tickets(store_url: str | None = None, run_id: int | None = None, *, unmask: bool = False,
                  system_url: str | None = None, mapping_path: str | None = None) -> TicketBundle:
    """The tickets of one audit run (default: the latest), from its plan and, for a source that is not
    writable, the statements of `apply`'s dry run."""
    from reconcile.commands import _resolve_run, plan as make_plan

    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = _resolve_run(store, conn, run_id)
    finally:
        store.engine.dispose()
    fix_plan = make_plan(store_url, run_id)
    system = dict(fix_plan.header.get("system") or {})
    writable = _writable(system, mapping_path)
    system["writable"] = writable
    fixes = [] if writable else [a for a in fix_plan.actions if a.action in FIX_ACTIONS and a.confirmed]
    dry = _dry_run(fix_plan, fixes, store_url, system_url, mapping_path) if fixes else ({}, "BEGIN;")
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            return _bundle(conn, fix_plan, run_id, fixes, dry, system, masked=not unmask)
    finally:
        store.engine.dispose()


def _writable(system: dict[str, Any], mapping_path: str | None) -> bool:
    """Whether `apply --yes` can write the run's source itself (then planned fixes need no ticket)."""
    profile = system.get("profile")
    if profile == "csv":
        return True  # the store's own snapshot
    if profile == "mapping":
        from reconcile.sources.system import load_mapping

        return load_mapping(mapping_path or system.get("mapping") or "").writable
    return False  # engine databases: the tool never writes their tables


def _dry_run(fix_plan: Plan, fixes: list[Action], store_url: str | None, system_url: str | None,
             mapping_path: str | None) -> tuple[dict[str, tuple[str, tuple[str, ...]]], str]:
    """Per dossier the dry run's state and statements, and the script's BEGIN line. Engine
    databases have no SQL (apply refuses them): the ticket gives the values to set."""
    if fix_plan.header.get("system", {}).get("profile") != "mapping":
        return {a.dossier_code: ("values_only", ()) for a in fixes}, "BEGIN;"
    from reconcile.apply import apply_plan

    with tempfile.TemporaryDirectory(prefix="reconcile-tickets-") as tmp:
        path = Path(tmp) / "plan.yaml"
        path.write_text(yaml.safe_dump(fix_plan.to_dict(), allow_unicode=True, sort_keys=False, width=120),
                        encoding="utf-8")
        result = apply_plan(path, store_url, yes=False, system_url=system_url, mapping_path=mapping_path)
    begin = next((line for line in result.script.splitlines() if line in ("BEGIN;", "START TRANSACTION;")), "BEGIN;")
    return {o.dossier_code: (o.state, o.statements) for o in result.outcomes}, begin


def _bundle(conn: sa.Connection, fix_plan: Plan, run_id: int, fixes: list[Action],
            dry: tuple[dict[str, tuple[str, tuple[str, ...]]], str], system: dict[str, Any],
            masked: bool) -> TicketBundle:
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
        sys_row = systems.get(a.dossier_code) or {f: a.evidence.get(f) for f in SYSTEM_FIELDS}
        procedure = a.evidence.get("workflow_key") or sys_row.get("procedure") or ""
        version = a.evidence.get("workflow_version")
        found = kinds.get(a.dossier_code, ())
        cause = f"planned_{a.action}" if a.action != "escalate" else _cause(a, found)
        state, statements = states.get(a.dossier_code, (None, ())) if a.action != "escalate" else (None, ())
        reason = mask.text(a.reason) if masked else a.reason
        item = TicketDossier(
            a.dossier_code, a.action, a.rule, reason or "", found,
            m({f: _plain(sys_row.get(f)) for f in SYSTEM_FIELDS}),
            tuple(m(r) for r in registers.get(a.dossier_code, ())), {k: _plain(v) for k, v in a.set.items()},
            state, tuple(statements))
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
                               system, begin))
    ticketed = {a.dossier_code for a in chosen}
    not_ticketed = Counter(f"{a.action}_applied_by_the_office" if a.confirmed else "guess_awaiting_confirmation"
                           for a in fix_plan.actions if a.dossier_code not in ticketed and a.action != "escalate")
    return TicketBundle({"id": int(run["id"]), "as_of": _plain(run["as_of"]), "fingerprint": run["fingerprint"]},
                        str(fix_plan.header.get("store", "")), system, masked, tuple(tickets),
                        dict(sorted(not_ticketed.items())))


def _cause(a: Action, kinds: tuple[str, ...]) -> str:
    if a.reason.startswith("target "):
        return "migration_target_without_staff" if "no active account" in a.reason else "migration_target_invalid"
    return kinds[0] if kinds else "other"


def _ticket(tid: str, key: tuple[str, int | None, str], name: str, items: tuple[TicketDossier, ...],
            details: list[dict[str, Any]], system: dict[str, Any], begin: str) -> Ticket:
    procedure, version, cause = key
    v = f"v{version}" if version is not None else "(no version)"
    what = f"{procedure}" + (f" ({name})" if name else "")
    steps = _counted(d.system.get("current_step") for d in items)
    units = _counted(d.system.get("unit") for d in items)
    n = len(items)
    dossiers = f"{n} dossier{'s' if n != 1 else ''}"
    sql = ""
    if cause == "unknown_version":
        latest = sorted({int(x["latest_catalog_version"]) for x in details if x.get("latest_catalog_version")})
        title = f"{procedure} {v} is missing from the catalog export ({dossiers})"
        problem = (f"{dossiers} of {what} are pinned to version {version}, which the catalog export does not hold"
                   + (f" (its latest is version {latest[-1]})" if latest else "") + f"; they sit on steps {steps}. "
                   "Their steps cannot be checked, so nobody can tell whether they can finish.")
        request = (f"Deploy the missing version {version} of {procedure} into the catalog export (its steps, "
                   "transitions, units and days), or tell us which catalog version these dossiers run on. We then "
                   "audit again.")
    elif cause == "step_not_in_version":
        earlier = sorted({int(x["earlier_version_with_step"]) for x in details if x.get("earlier_version_with_step")})
        title = f"{procedure} {v}: dossiers on steps the version does not have ({dossiers})"
        problem = (f"{dossiers} of {what} sit on steps {steps}, which version {version} does not have"
                   + (f" (version {', '.join(map(str, earlier))} has them: the definition was changed while the "
                      "dossiers sat on them)" if earlier else "")
                   + "; no migration rule or later version gives them a step to move to.")
        request = (f"Restore the step(s) {_names(steps)} in version {version} of {procedure}, or move these "
                   "dossiers to a step of a current version (tell us which, and we add a migration rule).")
    elif cause == "dead_end_step":
        title = f"{procedure} {v}: dossiers stuck on steps with no way to the end ({dossiers})"
        problem = (f"{dossiers} of {what} sit on steps {steps} of version {version}, from which no path leads to a "
                   "final step; no later version pairs these steps with one of its own.")
        request = " ".join(f"Add an outgoing flow to step {s} (a transition to a step that reaches the end)."
                           for s in _names(steps).split(", ")) + " Then the dossiers can move on."
    elif cause in ("unit_without_staff", "migration_target_without_staff"):
        unit_list = (_names(units) if cause == "unit_without_staff" else
                     ", ".join(sorted({m.group(1) for d in items if (m := re.search(r"unit (\S+)$", d.reason))})))
        title = f"{procedure} {v}: no active account in unit {unit_list} ({dossiers})"
        problem = (f"{dossiers} of {what} wait on steps {steps} handled by unit {unit_list}, which has no active "
                   "account: nobody can act on them." if cause == "unit_without_staff" else
                   f"{dossiers} of {what} would be migrated to a step of unit {unit_list}, which has no active "
                   "account.")
        request = (f"Activate or add an account in unit {unit_list}, and assign these dossiers to it"
                   + ("." if cause == "unit_without_staff" else " (then we migrate them)."))
    elif cause == "assignee_inactive":
        who = _counted(d.system.get("assignee") for d in items)
        title = f"{procedure} {v}: inactive assignees with no active colleague ({dossiers})"
        problem = f"{dossiers} of {what} are assigned to inactive accounts {who} in units {units} with no active colleague."
        request = f"Activate or add an account in unit {_names(units)}, and assign these dossiers to it."
    elif cause.startswith("planned_"):
        action = cause[len("planned_"):]
        title = f"{procedure} {v}: planned {action} for the vendor to run ({dossiers})"
        problem = (f"The plan fixes {dossiers} of {what} by `{action}`, but the system source is not writable "
                   "by this tool" + (" (an engine database: the tool never writes engine tables)"
                                     if system.get("profile") not in ("mapping", "csv") else
                                     " (its mapping does not declare `writable: true`)") + ".")
        if any(d.sql for d in items):
            sql = "\n".join([begin, *[line for d in items if d.sql for line in
                                      (f"-- {d.dossier_code} {d.action} ({d.rule})", *d.sql)], "COMMIT;"]) + "\n"
            request = ("Run the SQL below on the system database. Each UPDATE is compare-and-set: it changes its row "
                       "only if the row still holds the values of the audit; an UPDATE that changes no row means the "
                       "dossier moved since: leave it and tell us. Then we audit again.")
        else:
            request = ("Set the planned values of each dossier below in the system (for an engine: through its "
                       "process-instance migration and task assignment), then we audit again.")
        skipped = [d.sql_state for d in items if d.sql_state not in ("would_write", "values_only", None)]
        if skipped:
            request += f" No statement for dossiers the dry run found {_counted(skipped)}."
    else:
        title = f"{procedure} {v}: {cause} ({dossiers})"
        problem = f"{dossiers} of {what}: " + "; ".join(sorted({d.reason for d in items}))
        request = "Look into these dossiers; no rule or default of the plan fixes them."
    return Ticket(tid, procedure, name, version, cause, title, problem, request, items, sql)


def _counted(values: Any) -> str:
    c = Counter(str(v) for v in values if v is not None)
    return ", ".join(f"{k} ({n})" for k, n in sorted(c.items())) or "(none)"


def _names(counted: str) -> str:
    return ", ".join(part.rsplit(" (", 1)[0] for part in counted.split(", ")) if counted != "(none)" else "(none)"


# ------------------------------------------------------------------------------------ reads

def _findings(conn: sa.Connection, run_id: int, codes: list[str]
              ) -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, Any]]]:
    """Per dossier its orphan finding kinds (in ORPHAN_KINDS order) and their merged details."""
    order = {k.value: i for i, k in enumerate(ORPHAN_KINDS)}
    kinds: dict[str, list[str]] = {}
    details: dict[str, dict[str, Any]] = {}
    for part in _chunks(codes):
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
    for part in _chunks(codes):
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


def _chunks(items: list[str], n: int = 500) -> list[list[str]]:
    return [items[i:i + n] for i in range(0, len(items), n)]


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, (date, datetime)) else v


# ------------------------------------------------------------------------------------ render

def _cell(v: Any) -> str:
    text = "" if v is None else str(v)
    return " ".join(text.replace("|", "\\|").split())


def ticket_markdown(t: Ticket, bundle: TicketBundle) -> str:
    run = bundle.run
    lines = [f"# {t.id}: {t.title}", "",
             f"- procedure: {t.procedure}" + (f" ({t.procedure_name})" if t.procedure_name else ""),
             f"- version: {t.version if t.version is not None else '(none)'}",
             f"- cause: `{t.cause}`",
             f"- dossiers: {len(t.dossiers)}",
             f"- audit run {run['id']} as of {run['as_of']} (fingerprint {run['fingerprint']})",
             f"- personal data: {'masked' if bundle.masked else 'NOT MASKED (internal use only)'}", "",
             "## What is wrong", "", t.problem, "", "## What we ask", "", t.request, "",
             "## Dossiers", "",
             "| dossier | status | step | assignee | unit | received | due | applicant | phone | address | "
             "register | action |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in t.dossiers:
        s = d.system
        reg = "; ".join(f"{r['file']}" + (f", {r['sheet']}" if r.get("sheet") else "") + f", row {r['row']}"
                        for r in d.register) or "not on the register"
        lines.append("| " + " | ".join(_cell(x) for x in (
            d.dossier_code, s.get("status"), s.get("current_step"), s.get("assignee"), s.get("unit"),
            s.get("received_at"), s.get("due_at"), s.get("applicant"), s.get("phone"), s.get("address"), reg,
            d.action)) + " |")
    lines += ["", "## Evidence per dossier", ""]
    for d in t.dossiers:
        lines.append(f"### {d.dossier_code}")
        lines.append("")
        lines.append(f"- plan: `{d.action}` ({d.rule}): {_cell(d.reason)}")
        if d.findings:
            lines.append(f"- findings: {', '.join(d.findings)}")
        s = d.system
        lines.append("- system: " + ", ".join(f"{k}={_cell(s.get(k))}" for k in SYSTEM_FIELDS if s.get(k) is not None))
        for r in d.register:
            lines.append("- register: " + ", ".join(f"{k}={_cell(r.get(k))}" for k in REGISTER_FIELDS
                                                    if r.get(k) is not None))
        if d.planned:
            lines.append("- planned values: " + ", ".join(f"{k}={_cell(v)}" for k, v in sorted(d.planned.items())))
        if d.sql_state:
            lines.append(f"- dry run: {d.sql_state}")
        lines.append("")
    if t.sql:
        lines += ["## SQL", "", "```sql", t.sql.rstrip("\n"), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def index_markdown(bundle: TicketBundle) -> str:
    run = bundle.run
    lines = [f"# Vendor tickets: audit run {run['id']} as of {run['as_of']}", "",
             f"- store: {bundle.store}",
             f"- system: {bundle.system.get('profile', '')} {bundle.system.get('source', '')}"
             + (" (writable by the tool: planned fixes are applied by the office)" if bundle.system.get("writable")
                else " (not writable by the tool: planned fixes are tickets)"),
             f"- run fingerprint: {run['fingerprint']}",
             f"- personal data: {'masked' if bundle.masked else 'NOT MASKED (internal use only)'}",
             f"- tickets: {len(bundle.tickets)}, dossiers: {sum(len(t.dossiers) for t in bundle.tickets)}"]
    if bundle.not_ticketed:
        lines.append("- not in any ticket: " + ", ".join(f"{k} {v}" for k, v in bundle.not_ticketed.items()))
    lines += ["", "| ticket | procedure | version | cause | dossiers | title |", "|---|---|---|---|---|---|"]
    for t in bundle.tickets:
        lines.append("| " + " | ".join([f"[{t.id}]({t.file})", _cell(t.procedure),
                                         _cell(t.version if t.version is not None else "(none)"), f"`{t.cause}`",
                                         str(len(t.dossiers)), _cell(t.title)]) + " |")
    lines += ["", "Also: `tickets.csv` (one row per dossier per ticket), `tickets.json` (everything)."]
    return "\n".join(lines) + "\n"


def tickets_csv(bundle: TicketBundle) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for t in bundle.tickets:
        for d in t.dossiers:
            first = d.register[0] if d.register else {}
            w.writerow([t.id, t.procedure, "" if t.version is None else t.version, t.cause, d.dossier_code, d.action,
                        d.rule, d.reason, " ".join(d.findings),
                        *("" if d.system.get(f) is None else d.system[f] for f in SYSTEM_FIELDS), len(d.register),
                        *("" if first.get(f) is None else first[f] for f in REGISTER_FIELDS),
                        json.dumps(d.planned, ensure_ascii=False, sort_keys=True) if d.planned else "",
                        d.sql_state or "", "\n".join(d.sql)])
    return buf.getvalue()


def render_files(bundle: TicketBundle) -> dict[str, str]:
    """File name -> text of everything a bundle writes."""
    files = {"index.md": index_markdown(bundle), "tickets.csv": tickets_csv(bundle),
             "tickets.json": json.dumps(bundle.to_dict(), ensure_ascii=False, indent=2, sort_keys=False) + "\n"}
    for t in bundle.tickets:
        files[t.file] = ticket_markdown(t, bundle)
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
    return path


def tickets(store_url: str | None = None, out: str | Path = DEFAULT_OUT, run_id: int | None = None, *,
            unmask: bool = False, system_url: str | None = None, mapping_path: str | None = None) -> TicketBundle:
    """`reconcile tickets`: check OUT, build the bundle, write it."""
    check_out(out)
    bundle = build_tickets(store_url, run_id, unmask=unmask, system_url=system_url, mapping_path=mapping_path)
    write_bundle(bundle, out)
    return bundle

