"""Compose the notices (one message per phone and dossier), honour the opt-out list and what was listed
before, then write the gateway CSV and its list of skipped dossiers and record the notices in the store,
all or nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconcile.errors import BadInput, Refused
from reconcile.model import Status
from reconcile.notify import candidates as cand
from reconcile.notify import templates as tpl
from reconcile.notify.phones import Phone, Unreachable, in_cell, in_text, normalise
from reconcile.notify.sms import Cost, cost
from reconcile.store import Store, notice, notice_batch, open_store, resolve_run
from reconcile.util import mask
from reconcile.util.inlists import chunks
from reconcile.util.stamps import actor_name, now_text

SMS_COLUMNS = ("phone", "phone_national", "message", "segments", "encoding", "characters", "dossier_code", "kind",
               "state", "phone_source", "converted_from")
SKIPPED_COLUMNS = ("dossier_code", "kind", "state", "reason", "detail", "phone", "phone_source")
UNREACHABLE = ("missing", "invalid", "not_mobile", "not_vietnamese")  # a number to fix: listed until it is
SKIP_REASONS = (*UNREACHABLE, "opted_out", "already_notified")


@dataclass(frozen=True)
class NotifyRequest:
    overdue: bool = False  # overdue dossiers at the run's audit date, instead of what apply batches did
    run_id: int | None = None
    batches: tuple[int, ...] = ()
    templates: str | None = None  # default: the shipped templates
    diacritics: bool | None = None  # default: the templates file's
    opt_out: str | None = None
    out: str = "notices"
    dry_run: bool = False
    actor: str | None = None
    listed_at: str | None = None  # default: now (the demo fixes it)


@dataclass(frozen=True, slots=True)
class Notice:
    phone: Phone
    phone_source: str  # system | register
    candidate: cand.Candidate
    message: str
    cost: Cost


@dataclass(frozen=True, slots=True)
class Skipped:
    candidate: cand.Candidate
    reason: str  # one of SKIP_REASONS
    detail: str
    phone_masked: str | None
    phone_source: str | None


@dataclass
class NoticeList:
    mode: str  # applied | overdue
    runs: tuple[int, ...]
    batches: tuple[int, ...]  # the apply batches read (mode applied)
    diacritics: bool
    notices: list[Notice] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    dry_run: bool = False
    notice_batch: int | None = None  # as recorded in the store
    files: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Counts only: nothing here is personal data."""
        told = {n.candidate.dossier_code for n in self.notices}
        return {
            "mode": self.mode, "runs": list(self.runs), "batches": list(self.batches),
            "diacritics": self.diacritics, "dossiers": len(told | {s.candidate.dossier_code for s in self.skipped}),
            "messages": len(self.notices), "dossiers_told": len(told),
            "phones": len({n.phone.e164 for n in self.notices}),
            "segments": sum(n.cost.segments for n in self.notices),
            "by_encoding": dict(sorted(Counter(n.cost.encoding for n in self.notices).items())),
            "by_state": dict(sorted(Counter(f"{n.candidate.kind}:{n.candidate.status}" for n in self.notices)
                                    .items())),
            "old_numbers_converted": sum(1 for n in self.notices if n.phone.converted_from),
            "from_register": sum(1 for n in self.notices if n.phone_source == "register"),
            "skipped": {r: sum(1 for s in self.skipped if s.reason == r) for r in SKIP_REASONS},
            "dry_run": self.dry_run, "notice_batch": self.notice_batch, "files": list(self.files),
        }

    def preview(self, limit: int = 5) -> list[dict[str, Any]]:
        """The first messages as the CSV has them, phones masked (for a terminal or a log)."""
        return [{"phone": mask.phone(n.phone.national), "dossier_code": n.candidate.dossier_code,
                 "segments": n.cost.segments, "encoding": n.cost.encoding, "message": n.message}
                for n in self.notices[:limit]]


def notify(store_url: str | None, request: NotifyRequest) -> NoticeList:
    """The notice list of the store's live apply batches (or overdue dossiers); unless a dry run, written to
    request.out and recorded. Bad input (templates, opt-out list, batches) raises before anything is written."""
    templates = tpl.load(request.templates)
    opted_out = read_opt_out(request.opt_out) if request.opt_out else set()
    diacritics = templates.diacritics if request.diacritics is None else request.diacritics
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            if request.overdue:
                if request.batches:
                    raise BadInput("notify: --overdue lists open dossiers of an audit run; --batch is for what "
                                   "apply did. Hint: pick one.")
                runs = (resolve_run(store, conn, request.run_id),)
                found, batches = cand.overdue(conn, runs[0]), ()
            else:
                if request.run_id is not None:
                    resolve_run(store, conn, request.run_id)
                live = cand.live_batches(conn, request.run_id, request.batches)
                found, batches = cand.applied(conn, live), tuple(b.id for b in live)
                runs = tuple(sorted({b.run_id for b in live}))
            result = NoticeList("overdue" if request.overdue else "applied", runs, batches, diacritics,
                                dry_run=request.dry_run)
            earlier = _listed_before(conn, [c.dossier_code for c in found])
            for run_id in runs:
                mine = [c for c in found if c.run_id == run_id]
                _compose(result, mine, cand.contacts(conn, run_id, [c.dossier_code for c in mine]),
                         cand.catalog(conn, run_id), templates, opted_out, earlier)
        result.notices.sort(key=lambda n: (n.candidate.dossier_code, n.phone.e164))
        result.skipped.sort(key=lambda s: (s.candidate.dossier_code, s.reason, s.phone_masked or ""))
        if not request.dry_run and (result.notices or any(s.reason in UNREACHABLE for s in result.skipped)):
            _write_and_record(store, result, request)
        return result
    finally:
        store.engine.dispose()


def read_opt_out(path: str) -> set[str]:
    """The opted-out numbers as E.164: one per line, in any form; blank lines and `#` comments skipped. A
    line that is not a mobile number is bad input (a person asked not to be messaged: never guess)."""
    from reconcile.util.yamlio import read_text

    numbers, problems = set(), []
    for i, line in enumerate(read_text(path, max_bytes=64 << 20).splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        found = normalise(text)
        if isinstance(found, Phone):
            numbers.add(found.e164)
        else:
            problems.append(f"{path}:{i}: {found.detail} ({mask.phone(text)}). Hint: one phone number per line, "
                            "e.g. 0912 345 678 or +84912345678; # starts a comment.")
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{path}: {len(problems)} lines are not phone numbers",
                       problems)
    return numbers


def digest(phone: Phone) -> str:
    return hashlib.sha256(phone.e164.encode()).hexdigest()


def _listed_before(conn: sa.Connection, codes: list[str]) -> set[tuple[str, str, str]]:
    """(dossier, notice key, phone digest) of every notice listed before for these dossiers."""
    out: set[tuple[str, str, str]] = set()
    for part in chunks(sorted(set(codes))):
        stmt = sa.select(notice.c.dossier_code, notice.c.notice_key, notice.c.phone_digest).where(
            notice.c.dossier_code.in_(part))
        out.update((a, b, c) for a, b, c in conn.execute(stmt))
    return out


def _phones(contact: cand.Contact) -> tuple[list[Phone], str, Unreachable | None]:
    """The dossier's mobile numbers: the system's, else the register's; with their source, and the reason
    when there is none."""
    first: Unreachable | None = None
    for source, found in (("system", [in_cell(p) for p in contact.phones]),
                          ("register", [in_text(t) for t in contact.register_texts])):
        good = [p for p in found if isinstance(p, Phone)]
        if good:
            return list({p.e164: p for p in good}.values()), source, None
        bad = [p for p in found if isinstance(p, Unreachable) and p.reason != "missing"]
        first = first or (bad[0] if bad else None)
    return [], "system" if contact.phones else "register", first or Unreachable("missing", "no phone number")


def _compose(result: NoticeList, found: list[cand.Candidate], contacts: dict[str, tuple[cand.Contact, dict[str, Any]]],
             catalog: cand.Catalog, templates: tpl.Templates, opted_out: set[str],
             earlier: set[tuple[str, str, str]]) -> None:
    for c in found:
        contact, row = contacts.get(c.dossier_code, (cand.Contact((), (), None, None), {}))
        if not c.status:  # a move keeps the system's status (so may a hand-written close)
            c = _replace_status(c, row.get("status") or Status.IN_PROGRESS.value)
        phones, source, why = _phones(contact)
        if not phones:
            raw = contact.phones[0] if contact.phones else None
            result.skipped.append(Skipped(c, why.reason if why else "missing", why.detail if why else "",
                                          mask.phone(raw) if raw else None, source if raw else None))
            continue
        values = _values(c, contact, row, catalog, templates)
        for p in phones:
            if p.e164 in opted_out:
                result.skipped.append(Skipped(c, "opted_out", "on the opt-out list", mask.phone(p.national), source))
            elif (c.dossier_code, c.notice_key, digest(p)) in earlier:
                result.skipped.append(Skipped(c, "already_notified", "listed in an earlier notice batch",
                                              mask.phone(p.national), source))
            else:
                text = templates.render(c.kind, values, result.diacritics)
                result.notices.append(Notice(p, source, c, text, cost(text)))


def _replace_status(c: cand.Candidate, status: str) -> cand.Candidate:
    return cand.Candidate(c.run_id, c.dossier_code, c.kind, status, c.when, c.procedure, c.version, c.step, c.unit,
                          c.batch)


def _values(c: cand.Candidate, contact: cand.Contact, row: dict[str, Any], catalog: cand.Catalog,
            templates: tpl.Templates) -> dict[str, str]:
    """The placeholders' values of one dossier's message."""
    procedure = c.procedure or row.get("workflow_key") or row.get("procedure")
    version = c.version if c.version is not None else row.get("workflow_version")
    step = c.step or row.get("current_step")
    step_name, step_unit = catalog.steps.get((procedure, version, step), (None, None)) if procedure else (None, None)
    unit = step_unit or c.unit or row.get("unit")
    agency = contact.agency or ""
    return {
        "code": c.dossier_code,
        "procedure": catalog.names.get(procedure or "") or contact.procedure_name or procedure or "",
        "state": templates.state(c.status),
        "date": _shown(c.when) if c.kind == "closed" else "",
        "due": _shown(row.get("due_at_revised") or row.get("due_at")) if c.kind != "overdue" else _shown(c.when),
        "step": step_name or step or "",
        "unit": templates.units.get(unit or "", "") or agency or unit or "",
        "agency": agency,
        "office": templates.office or agency,
    }


def _shown(d: date | None) -> str:
    return d.strftime("%d/%m/%Y") if d else ""


def _csv(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def sms_rows(result: NoticeList) -> list[tuple[Any, ...]]:
    return [(n.phone.e164, n.phone.national, n.message, n.cost.segments, n.cost.encoding, n.cost.units,
             n.candidate.dossier_code, n.candidate.kind, n.candidate.status, n.phone_source,
             n.phone.converted_from or "") for n in result.notices]


def skipped_rows(result: NoticeList) -> list[tuple[Any, ...]]:
    return [(s.candidate.dossier_code, s.candidate.kind, s.candidate.status, s.reason, s.detail,
             s.phone_masked or "", s.phone_source or "") for s in result.skipped]


def _write_and_record(store: Store, result: NoticeList, request: NotifyRequest) -> None:
    """Record the notices as one batch (also when there are only numbers to fix) and write OUT/sms-<batch>.csv and OUT/skipped-<batch>.csv inside the
    store's transaction: a failed commit removes the files, so what is written is what is recorded."""
    from reconcile.util.files import write_atomically

    out = Path(request.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{out}: cannot create the folder: {exc.strerror}. Hint: --out DIR names a writable "
                       "folder.") from None
    actor, now = request.actor or actor_name(), request.listed_at or now_text()
    written: list[Path] = []
    try:
        with store.begin() as conn:
            _lock_batches(conn)
            # another notify on a server store may have listed some of these since they were read: never twice
            meanwhile = _listed_before(conn, [n.candidate.dossier_code for n in result.notices]) & {
                (n.candidate.dossier_code, n.candidate.notice_key, digest(n.phone)) for n in result.notices}
            if meanwhile:
                raise Refused(f"{len(meanwhile)} of these notices were listed by another notify run meanwhile: nothing "
                              "written. Hint: run notify again; it leaves them out.")
            batch = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(notice_batch.c.id), 0))).scalar_one()) + 1
            sms, skipped = out / f"sms-{batch}.csv", out / f"skipped-{batch}.csv"
            conn.execute(sa.insert(notice_batch).values(
                id=batch, mode=result.mode, sources=json.dumps({"runs": result.runs, "batches": result.batches}),
                actor=actor, listed_at=now, messages=len(result.notices), skipped=len(result.skipped), out=str(sms)))
            if result.notices:
                conn.execute(sa.insert(notice), [
                    {"batch_id": batch, "seq": i, "run_id": n.candidate.run_id,
                     "dossier_code": n.candidate.dossier_code, "kind": n.candidate.kind,
                     "notice_key": n.candidate.notice_key, "phone_masked": mask.phone(n.phone.national),
                     "phone_digest": digest(n.phone), "segments": n.cost.segments}
                    for i, n in enumerate(result.notices, 1)])
            write_atomically(skipped, _csv(SKIPPED_COLUMNS, skipped_rows(result)))
            written.append(skipped)
            write_atomically(sms, _csv(SMS_COLUMNS, sms_rows(result)))
            written.append(sms)
    except sa.exc.IntegrityError:  # another notify took the same batch id: its commit came first
        for p in written:
            p.unlink(missing_ok=True)
        raise Refused("another notify run recorded a notice batch at the same time: nothing written. Hint: run "
                      "notify again.") from None
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    result.notice_batch, result.files = batch, (str(sms), str(skipped))


def _lock_batches(conn: sa.Connection) -> None:
    """Two notify runs on one server store take turns from here to their commit (the next batch id, the
    check for notices listed meanwhile, the files named after the batch). An embedded store has one writer."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql('LOCK TABLE "notice_batch" IN SHARE ROW EXCLUSIVE MODE')
    elif conn.dialect.name in ("mysql", "mariadb"):  # InnoDB locks the scanned range, the gap past it too
        conn.execute(sa.select(notice_batch.c.id).with_for_update())


