"""The `audit` command: open the inputs, record and audit the run, read its report."""

from __future__ import annotations

from dataclasses import replace

from reconcile.audit.inputs import AuditInputs, load_inputs
from reconcile.audit.record import record_run
from reconcile.audit.results import RunReport, run_report
from reconcile.audit.run import AuditSettings
from reconcile.errors import BadInput, Refused, wrote
from reconcile.faults import fault
from reconcile.store import open_store, store_name
from reconcile.util.calendar import FIRST_DAY, LAST_DAY
from reconcile.util.dberrors import disk_full
from reconcile.util.progress import QUIET, Progress
from reconcile.util.stamps import now_text


def audit(inputs: AuditInputs, store_url: str | None = None, progress: Progress = QUIET,
          started_at: str | None = None, with_findings: bool = True) -> RunReport:
    """Open and check every input, then read, store and audit them in one transaction; the report
    of the run (without its findings when `with_findings` is false: see findings_of)."""
    if not FIRST_DAY <= inputs.as_of <= LAST_DAY:
        raise BadInput(f"--as-of: {inputs.as_of.isoformat()} is outside the dates an audit can be as of, "
                       f"{FIRST_DAY.isoformat()}..{LAST_DAY.isoformat()}. Hint: give the date the register and the "
                       "system were read (working days count Vietnam's holidays, known up to 2100).")
    started_at = started_at or now_text()  # when the audit started, not when its long run is recorded
    loaded = load_inputs(inputs, progress)
    settings = AuditSettings(inputs.as_of, inputs.date_tolerance_days, inputs.paper_only_units, inputs.stall,
                             inputs.period)
    store = open_store(store_url)
    try:
        run_id = record_run(store, loaded, settings, progress, started_at)
    except BaseException as exc:
        store.discard_if_created()
        if isinstance(exc, Exception) and disk_full(exc):
            raise Refused(f"store {store_name(store)}: the disk it is on is full: the audit was rolled back, nothing "
                          "written. Hint: free space on that disk, or pass --store on another one.") from None
        raise
    wrote(f"audit run {run_id} to the store {store_name(store)}")
    fault("audit-committed", 1)
    progress.stage("reading the results")
    try:
        report = run_report(store, run_id, with_findings)
    finally:
        store.engine.dispose()
    return replace(report, warnings=loaded.warnings)
