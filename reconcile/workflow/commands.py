"""The `workflows` commands as plain functions: import a BPMN file, check a catalog, diff two versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconcile.errors import BadInput
from reconcile.store import audit_run, open_store, resolve_run, wf_version
from reconcile.util.files import write_atomically
from reconcile.workflow import bpmn
from reconcile.workflow.catalog import Catalog, WorkflowVersion, _catalog_from_docs, load_catalog
from reconcile.workflow.diff import VersionDiff, diff_versions
from reconcile.workflow.state import CENSUS_KINDS, CensusRow
from reconcile.workflow.state import census as census_rows


@dataclass(frozen=True, slots=True)
class ImportResult:
    text: str  # the version YAML
    warnings: tuple[str, ...]
    out: str | None  # the file written, if any


def import_bpmn(path: str, *, procedure: str | None = None, version: int | None = None,
                process_id: str | None = None, sidecar: str | None = None, out: str | None = None) -> ImportResult:
    """Convert a BPMN file into version YAML; with `out`, write it whole (temp file + rename) or not at all."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror}. Hint: give the path of a .bpmn file.") from None
    side = bpmn.load_sidecar(sidecar) if sidecar else None
    imported = bpmn.parse_bpmn(data, path, procedure=procedure, version=version, process_id=process_id,
                               sidecar=side)
    # The result must load as a catalog version: the same checks, and the same graph warnings (steps no
    # entry leads to, steps with no way on), as the file gets in a catalog folder from `workflows check`.
    checked = _catalog_from_docs([(imported.doc, path, imported.step_lines, imported.line)])
    text = bpmn.to_yaml(imported.doc)
    if out:
        write_atomically(out, text)
    warnings = sorted(imported.warnings + checked.warnings, key=lambda w: bpmn.line_of(w, path))
    return ImportResult(text, tuple(warnings), out)


@dataclass(frozen=True, slots=True)
class CheckResult:
    directory: str
    procedures: int
    versions: int
    steps: int
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "procedures": self.procedures, "versions": self.versions,
                "steps": self.steps, "warnings": list(self.warnings)}


def check(directory: str) -> CheckResult:
    catalog = load_catalog(directory)
    return CheckResult(directory, len({v.procedure for v in catalog.versions}), len(catalog.versions),
                       sum(len(v.steps) for v in catalog.versions), catalog.warnings)


@dataclass(frozen=True, slots=True)
class DiffReport:
    diff: VersionDiff
    path_a: str
    path_b: str
    open_dossiers: dict[str, int] | None  # step of version A -> open dossiers there; None: not known
    store_note: str  # where the counts come from, or why there are none

    def to_dict(self) -> dict[str, Any]:
        counts = self.open_dossiers
        return {
            **self.diff.to_dict(),
            "path_a": self.path_a,
            "path_b": self.path_b,
            "open_dossiers": None if counts is None else {s: counts.get(s, 0) for s in self.diff.affected_steps},
            "store": self.store_note,
        }


def diff(procedure: str, version_a: int, version_b: int, workflows: str, store_url: str | None) -> DiffReport:
    catalog = load_catalog(workflows)
    a, b = (_version(catalog, workflows, procedure, n) for n in (version_a, version_b))
    result = diff_versions(a, b)
    counts, note = open_dossiers_on(store_url, procedure, version_a, result.affected_steps)
    return DiffReport(result, a.path, b.path, counts, note)


def _version(catalog: Catalog, workflows: str, procedure: str, number: int) -> WorkflowVersion:
    found = catalog.get(procedure, number)
    if found is not None:
        return found
    versions = catalog.versions_of(procedure)
    if not versions:
        known = ", ".join(sorted({v.procedure for v in catalog.versions}))
        raise BadInput(f"{workflows}: no procedure '{procedure}'. Procedures here: {known}.")
    raise BadInput(f"{workflows}: procedure '{procedure}' has no version {number}. "
                   f"Versions here: {', '.join(str(v.version) for v in versions)}.")


def open_dossiers_on(store_url: str | None, procedure: str, version: int, steps: tuple[str, ...]
                     ) -> tuple[dict[str, int] | None, str]:
    """Open dossiers per current step of (procedure, version) in the store's latest audit run (the
    version each runs on: pinned, else inferred, as in the census).
    No store, or no run in it, is not an error: the counts are None and the note says why."""
    from reconcile.util.db import begin_read_only
    from reconcile.store import audit_run, mask_url, open_store, wf_state

    try:
        store = open_store(store_url, create=False)
    except BadInput as e:
        return None, f"no store: {e}"
    shown = mask_url(store_url or store.url)
    try:
        with store.connect() as conn:
            begin_read_only(conn)
            run_id = conn.execute(sa.select(sa.func.max(audit_run.c.id))).scalar_one_or_none()
            if run_id is None:
                return None, f"store {shown} holds no audit run. Hint: run `reconcile audit` first."
            if not steps:
                return {}, f"store {shown}, audit run {run_id}"
            w = wf_state.c  # open dossiers on the version they run on: pinned, else inferred
            rows = conn.execute(
                sa.select(w.step, sa.func.count())
                .where(w.run_id == run_id, w.procedure == procedure, w.version == version, w.step.in_(steps))
                .group_by(w.step)
            ).all()
    finally:
        store.engine.dispose()
    return {step: int(n) for step, n in rows}, f"store {shown}, audit run {run_id}"


@dataclass(frozen=True, slots=True)
class Census:
    run_id: int
    as_of: date
    rows: list[CensusRow]
    names: dict[str, str]  # procedure -> name in its latest catalog version

    def to_dict(self) -> dict[str, Any]:
        total = {"open": sum(r.open for r in self.rows), "orphaned": sum(r.orphaned for r in self.rows),
                 "by_reason": {k.value: sum(r.by_reason[k.value] for r in self.rows) for k in CENSUS_KINDS},
                 "version_assumed": sum(r.version_assumed for r in self.rows)}
        return {"run": {"id": self.run_id, "as_of": self.as_of.isoformat()}, "total": total,
                "procedures": self.names, "rows": [r.to_dict() for r in self.rows]}


def census(store_url: str | None = None, run_id: int | None = None) -> Census:
    """Open dossiers per procedure x version x step across every version, orphans by reason."""
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            run_id = resolve_run(store, conn, run_id)
            as_of = conn.execute(sa.select(audit_run.c.as_of).where(audit_run.c.id == run_id)).scalar_one()
            names = dict(conn.execute(sa.select(wf_version.c.procedure, wf_version.c.name)
                                      .where(wf_version.c.run_id == run_id, wf_version.c.is_latest)).all())
            return Census(run_id, as_of, census_rows(conn, run_id), names)
    finally:
        store.engine.dispose()
