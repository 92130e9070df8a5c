"""Store one audit run (register, system, catalog, rules) and audit it, in one transaction."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import sqlalchemy as sa

from reconcile import __version__
from reconcile.audit.inputs import Loaded
from reconcile.audit.run import AuditSettings, run_audit
from reconcile.audit.serverload import load_batches
from reconcile.errors import BadInput
from reconcile.faults import fault
from reconcile.sources.workbench import (
    DOSSIER_TEXTS, REGISTER_TEXTS, SystemDigest, account_sql, check_stored_dossiers, check_stored_register,
    dossier_sql, event_sql, register_sql, with_normalised_text,
)
from reconcile.store import (
    Store, account, audit_run, begin_fill, dossier, filled, insert_select, insert_stream, migration_step,
    register_book, register_entry, step_event, text_key, wf_step, wf_transition, wf_version,
)
from reconcile.util.normalize import compare_key
from reconcile.util.progress import QUIET, Progress
from reconcile.util.stamps import now_text
from reconcile.workflow.catalog import Catalog


def _catalog_tables(catalog: Catalog, run_id: int) -> tuple[list[dict[str, Any]], ...]:
    versions, steps, transitions = [], [], []
    for v in catalog.versions:
        latest = catalog.latest(v.procedure)
        versions.append({"run_id": run_id, "procedure": v.procedure, "version": v.version, "name": v.name,
                         "name_key": compare_key(v.name) or "", "field": v.field, "valid_from": v.valid_from,
                         "path": v.path, "is_latest": latest is not None and latest.version == v.version})
        good = v.reachable_final()
        for s in v.steps:
            steps.append({"run_id": run_id, "procedure": v.procedure, "version": v.version, "step_id": s.id,
                          "name": s.name, "unit": s.unit, "days": float(s.days), "final": s.final,
                          "reaches_final": s.id in good, "line": s.line, "may_end": s.may_end})
            transitions += [{"run_id": run_id, "procedure": v.procedure, "version": v.version,
                             "from_step": s.id, "to_step": t} for t in s.next]
    return versions, steps, transitions


def _books(book_years: dict[str, dict[int | None, int]], declared: dict[str, tuple[date, date]]
           ) -> list[dict[str, Any]]:
    """Each book covers a period: as declared, else the calendar year most of its entries were received in."""
    out = []
    for book in sorted(book_years):
        years = {y: n for y, n in book_years[book].items() if y is not None}
        if book in declared:
            start, end = declared[book]
        elif years:
            year = max(years.items(), key=lambda kv: (kv[1], kv[0]))[0]
            start, end = date(year, 1, 1), date(year, 12, 31)
        else:
            raise BadInput(f"{book}: no entry has a received date, so the period the book covers is unknown. "
                           "Hint: declare period: {from, to} in --register-mapping.")
        out.append({"book": book, "period_from": start, "period_to": end,
                    "entries": sum(book_years[book].values())})
    return out


def _migration_rows(ruleset: Any, run_id: int) -> list[dict[str, Any]]:
    """migration_step rows: the steps the rules move on from (see rules.superseded_steps)."""
    from reconcile.workflow.rules import superseded_steps

    return [{"run_id": run_id, "procedure": p, "version": v, "step": s, "to_procedure": res.procedure,
             "to_version": res.version, "to_step": res.step, "rules": ",".join(res.rules),
             "needs_confirmation": res.needs_confirmation}
            for (p, v, s), res in superseded_steps(ruleset)]


def _rules_digest(ruleset: Any) -> str:
    h = hashlib.sha256()
    for path in ruleset.files:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def _catalog_digest(catalog: Catalog) -> str:
    h = hashlib.sha256()
    for v in catalog.versions:
        h.update(repr((v.procedure, v.version, v.name, v.field, v.valid_from, v.steps)).encode())
    return h.hexdigest()[:16]


def record_run(store: Store, loaded: Loaded, settings: AuditSettings, progress: Progress = QUIET,
               started_at: str | None = None) -> int:
    """Read, store, check and audit one run in one transaction: all of it lands, or none. Stored rows
    are checked before the audit; a value that does not parse rolls the whole run back."""
    system = loaded.system
    with store.begin() as conn:
        run_id = store.next_run_id(conn)
        dropped = begin_fill(conn)  # a first run on PostgreSQL: indexes built after the loads
        progress.stage("storing the register")
        n_reg = _store_batches(store, conn, run_id, register_entry, register_sql, loaded.register.batches(),
                               progress.rows, texts=REGISTER_TEXTS)
        fault("audit-register", 1)
        filled(conn, dropped, register_entry)
        progress.stage("checking the register")
        reg_checks = check_stored_register(conn, run_id, settings.as_of)
        _store_text_keys(conn, run_id)
        books = _books(reg_checks.book_years, loaded.register.periods)
        loaded.warnings.extend(reg_checks.warnings)
        sys_digest = SystemDigest()
        progress.stage("storing the system", "dossiers")
        n_sys = _store_batches(store, conn, run_id, dossier, partial(dossier_sql, open_fingerprints=True),
                               system.dossier_batches(), progress.rows, sys_digest.add, DOSSIER_TEXTS)
        filled(conn, dropped, dossier)
        progress.stage("checking the system")
        check_stored_dossiers(conn, run_id, system.where.get("dossier", "dossiers"))
        fault("audit-system", 1)
        insert_select(store, conn, account, account_sql, system.accounts, run_id)
        progress.stage("storing the system's step events", "events")
        _store_batches(store, conn, run_id, step_event, event_sql, system.event_batches(), progress.rows)
        versions, steps, transitions = _catalog_tables(loaded.catalog, run_id)
        migrations = _migration_rows(loaded.rules, run_id) if loaded.rules is not None else []
        for table, rows in ((wf_version, versions), (wf_step, steps), (wf_transition, transitions),
                            (migration_step, migrations)):
            if rows:
                conn.execute(sa.insert(table), rows)
        if books:
            conn.execute(sa.insert(register_book), [{"run_id": run_id, **b} for b in books])
        filled(conn, dropped, account, step_event, text_key, wf_version, wf_step, wf_transition, migration_step,
               register_book)
        run_audit(conn, run_id, settings, progress, dropped)
        progress.stage("committing")
        # Contents, not paths: the same data audited from anywhere has the same fingerprint.
        if loaded.hashes is not None:
            loaded.inputs_doc["register"] = loaded.hashes.result()
        content = {"register": [d["sha256"] for d in loaded.inputs_doc.get("register", [])],
                   "system": sys_digest.digest(system.accounts), "catalog": _catalog_digest(loaded.catalog),
                   **({"rules": _rules_digest(loaded.rules)} if loaded.rules is not None else {})}
        fingerprint = hashlib.sha256(json.dumps([content, settings.to_dict(), __version__],
                                                sort_keys=True, default=str).encode()).hexdigest()[:16]
        conn.execute(sa.insert(audit_run).values(
            id=run_id, as_of=settings.as_of, started_at=started_at or now_text(), tool_version=__version__,
            fingerprint=fingerprint, inputs=json.dumps(loaded.inputs_doc, ensure_ascii=False, sort_keys=True),
            settings=json.dumps(settings.to_dict(), ensure_ascii=False, sort_keys=True),
            periods=json.dumps(books, ensure_ascii=False, default=str),
            register_entries=n_reg, system_dossiers=n_sys,
        ))
        fault("audit-commit", 1)
    return run_id


def _store_batches(store: Store, conn: sa.Connection, run_id: int, table: sa.Table, select: Callable[..., str],
                   batches: Iterator[pa.Table], progress: Callable[[int], None] = lambda _: None,
                   inspect: Callable[[pa.Table], None] = lambda _: None, texts: tuple[str, ...] = ()) -> int:
    """Store every batch through a workbench SELECT; each batch is released once stored, so peak
    memory is a batch or three (server stores prepare the next one ahead), not the source. On a DuckDB
    store all batches are one streamed INSERT
    (store.insert_stream), the `texts` columns normalised on the Arrow side so the stream is read
    once; elsewhere each batch goes through serverload.load_batches (the same normalising SELECT, a batch
    ahead in a worker thread)."""
    def seen() -> Iterator[pa.Table]:
        n = 0
        for batch in batches:
            inspect(batch)
            n += batch.num_rows
            yield batch
            progress(n)

    try:
        if store.dialect == "duckdb":
            stream = (with_normalised_text(b, texts) for b in seen())
            return insert_stream(conn, table, (lambda raw: select(raw, texts)) if texts else select, stream, run_id)
        # Each distinct repeated name normalised once on the Arrow side here too (not by the SELECT's
        # regexes on every row), as on a DuckDB store; the next batch while the server takes this one.
        sql = (lambda raw: select(raw, texts)) if texts else select
        return load_batches(conn, table, sql, (with_normalised_text(batch, texts) for batch in seen()), run_id)
    finally:
        # Arrow's allocator keeps freed pieces for reuse; hand them back before the next source and
        # the audit queries, when DuckDB needs the memory (peak 0.98 -> 0.83 GB at 1M).
        pa.default_memory_pool().release_unused()


def _store_text_keys(conn: sa.Connection, run_id: int) -> None:
    """Comparison keys of the register's distinct procedure and agency names (see store.text_key)."""
    re_ = register_entry
    values = {v for col in (re_.c.procedure, re_.c.agency) for (v,) in conn.execute(
        sa.select(col).where(re_.c.run_id == run_id, col.is_not(None)).distinct())}
    rows = [{"run_id": run_id, "value": v, "key": compare_key(v)} for v in sorted(values)]
    if rows:
        conn.execute(sa.insert(text_key), rows)
