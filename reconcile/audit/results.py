"""An audit run read back from the store: summary, breakdown, findings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import sqlalchemy as sa

from reconcile.model import FindingKind, MatchClass
from reconcile.store import (
    resolve_run, Store, audit_run, code_match, dossier, finding, iter_rows, open_store, reconciliation, register_entry,
    text_key, wf_version,
)
from reconcile.util import jsonio


@dataclass(frozen=True, slots=True)
class RunReport:
    """One audit run as reports show it."""

    run: dict[str, Any]
    summary: dict[str, int]
    findings: list[dict[str, Any]]
    breakdown: list[dict[str, Any]] = field(default_factory=list)  # kind x field x unit counts
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "summary": self.summary, "breakdown": self.breakdown, "findings": self.findings}


def findings_of(store_url: str | None, run_id: int) -> Iterator[dict[str, Any]]:
    """iter_findings of a run in the store at `store_url`."""
    store = open_store(store_url, create=False)
    try:
        yield from iter_findings(store, run_id)
    finally:
        store.engine.dispose()


def iter_findings(store: Store, run_id: int) -> Iterator[dict[str, Any]]:
    """The run's findings sorted so that the same run always renders the same (kind, code, details),
    each parsed only as it is yielded: while they are sorted the rows stay the JSON text they are
    stored as (at 10M dossiers the parsed findings took 0.9 GB)."""
    order = {k.value: i for i, k in enumerate(FindingKind)}
    stmt = sa.select(finding.c.kind, finding.c.severity, finding.c.dossier_code, finding.c.details,
                     finding.c.evidence).where(finding.c.run_id == run_id)
    with store.connect() as conn:
        rows = [((order.get(kind, 99), code or "", jsonio.dumps(jsonio.loads(details), sort_keys=True)),
                 kind, severity, code, details, evidence)
                for kind, severity, code, details, evidence in iter_rows(conn, stmt)]
    rows.sort(key=lambda row: row[0])
    for _, kind, severity, code, details, evidence in rows:
        yield {"kind": kind, "severity": severity, "dossier_code": code, "details": jsonio.loads(details),
               "evidence": jsonio.loads(evidence)}


def run_report(store: Store, run_id: int | None = None, with_findings: bool = True) -> RunReport:
    """Read one run back from the store: its summary, breakdown and (unless `with_findings` is false,
    for a caller that streams them with iter_findings) its findings."""
    with store.connect() as conn:
        run_id = resolve_run(store, conn, run_id)
        run = conn.execute(sa.select(audit_run).where(audit_run.c.id == run_id)).mappings().one()
        counts = dict(conn.execute(sa.select(finding.c.kind, sa.func.count()).where(finding.c.run_id == run_id)
                                   .group_by(finding.c.kind)).all())
        classes = dict(conn.execute(
            sa.select(reconciliation.c["class"], sa.func.count()).where(reconciliation.c.run_id == run_id)
            .group_by(reconciliation.c["class"])).all())
        paper_only = conn.execute(
            sa.select(register_entry.c.agency, sa.func.count())
            .select_from(reconciliation.join(register_entry, sa.and_(
                register_entry.c.run_id == reconciliation.c.run_id,
                *code_match(conn, register_entry.c.dossier_code, reconciliation.c.dossier_code),
                register_entry.c.entry_id == reconciliation.c.entry_id)))
            .where(reconciliation.c.run_id == run_id,
                   reconciliation.c["class"] == MatchClass.PAPER_ONLY_UNIT.value)
            .group_by(register_entry.c.agency)).all()
        breakdown = _breakdown(conn, run_id)
    summary = {k.value: int(counts[k.value]) for k in FindingKind if counts.get(k.value)}
    run_doc = {
        "id": run["id"], "as_of": run["as_of"].isoformat(), "started_at": run["started_at"],
        "tool_version": run["tool_version"], "fingerprint": run["fingerprint"],
        "counts": {"register_entries": run["register_entries"], "system_dossiers": run["system_dossiers"]},
        "periods": json.loads(run["periods"]),
        "classes": {c: int(n) for c, n in sorted(classes.items())},
        "paper_only_units": {a or "": int(n) for a, n in sorted(paper_only, key=lambda x: x[0] or "")},
        "inputs": json.loads(run["inputs"]), "settings": json.loads(run["settings"]),
    }
    findings = list(iter_findings(store, run_id)) if with_findings else []
    return RunReport(run_doc, summary, findings, breakdown)


def _breakdown(conn: sa.Connection, run_id: int) -> list[dict[str, Any]]:
    """Findings per kind, statistics field and unit (the system's unit, else the register's agency)."""
    rc, d, r, f = reconciliation, dossier, register_entry, finding
    from_, by_code, by_name = join_catalog_field(
        f.outerjoin(rc, sa.and_(rc.c.run_id == f.c.run_id, rc.c.dossier_code == f.c.dossier_code))
        .outerjoin(d, sa.and_(d.c.run_id == f.c.run_id, *code_match(conn, d.c.dossier_code, rc.c.dossier_code),
                              d.c.source_row == rc.c.source_row))
        .outerjoin(r, sa.and_(r.c.run_id == f.c.run_id, *code_match(conn, r.c.dossier_code, rc.c.dossier_code),
                              r.c.entry_id == rc.c.entry_id)), run_id, d, r)
    field_ = sa.func.coalesce(by_code, by_name, "")
    unit = sa.func.coalesce(d.c.unit, r.c.agency, "")
    stmt = (sa.select(f.c.kind, field_.label("field"), unit.label("unit"), sa.func.count().label("n"))
            .select_from(from_).where(f.c.run_id == run_id).group_by(f.c.kind, field_, unit))
    rows = [{"kind": k, "field": fl, "unit": u, "count": int(n)} for k, fl, u, n in conn.execute(stmt)]
    return sorted(rows, key=lambda x: (x["kind"], x["field"], x["unit"]))


def join_catalog_field(from_: Any, run_id: int, d: Any, r: Any) -> tuple[Any, Any, Any]:
    """`from_` (which holds the system row `d` and the register row `r`) joined to the catalog's field of
    the system's procedure code and of the register's procedure name: (from_, field by code, by name)."""
    v = wf_version
    by_code = (sa.select(v.c.procedure, sa.func.max(v.c.field).label("field")).where(v.c.run_id == run_id)
               .group_by(v.c.procedure).subquery("fk"))
    by_name = (sa.select(v.c.name_key, sa.func.max(v.c.field).label("field")).where(v.c.run_id == run_id)
               .group_by(v.c.name_key).subquery("fn"))
    from_ = (from_.outerjoin(by_code, by_code.c.procedure == d.c.workflow_key)
             .outerjoin(text_key, sa.and_(text_key.c.run_id == run_id, text_key.c.value == r.c.procedure))
             .outerjoin(by_name, by_name.c.name_key == text_key.c.key))
    return from_, by_code.c.field, by_name.c.field
