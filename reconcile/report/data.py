"""Typed data of one audit report: what `report` renders into HTML, Markdown, XLSX, JSON and CSV."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from reconcile.stats.model import StatsTable

# Age of stuck dossiers: working days since they last moved, in these buckets (lower bounds).
AGE_BUCKETS = (0, 11, 31, 61, 121)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a clerk finds the dossier on paper (register file, sheet, row); None when not on paper."""

    file: str | None = None
    sheet: str | None = None
    row: int | None = None


@dataclass(frozen=True, slots=True)
class FindingItem:
    dossier_code: str | None
    unit: str  # the system's unit, else the register's agency ("" when neither)
    field: str
    details: dict[str, Any]  # the finding's details as stored (kind-specific keys)
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class FindingSection:
    kind: str  # FindingKind value
    severity: str
    count: int
    by_unit: list[tuple[str, int]]  # (unit, findings), most first then by name
    items: list[FindingItem]  # all of them, sorted by dossier code (HTML/Markdown list ReportData.limit)


@dataclass(frozen=True, slots=True)
class CensusLine:
    procedure: str
    name: str  # the procedure's name in its latest catalog version
    version: int | None
    step: str | None
    open: int
    orphaned: int
    by_reason: dict[str, int]  # census kind -> dossiers


@dataclass(frozen=True, slots=True)
class RateChange:
    """On-time rate of one statistics row before and after the plan: (early + on time, resolved)."""

    label: str  # the field's name, "" for the grand total
    kind: str  # field | total | group
    before: tuple[int, int]
    after: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Action:
    action: str  # migrate | reassign | close | backfill | escalate | none (no plan action)
    params: dict[str, Any]  # for the message action.<action>: step, version, assignee, date
    rule: str | None = None
    confirmed: bool = True


@dataclass(frozen=True, slots=True)
class WorkItem:
    dossier_code: str
    applicant: str | None  # unmasked: the worklists stay in the office
    step: str | None  # current step id
    step_name: str | None
    issues: list[str]  # finding kinds, in FindingKind order
    action: Action
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Worklist:
    unit: str  # "" when unknown
    items: list[WorkItem]  # sorted by dossier code; complete (renderers with a limit cut it)


@dataclass(frozen=True, slots=True)
class Summary:
    register_entries: int
    system_dossiers: int
    findings: int
    by_kind: dict[str, int]  # FindingKind order, zero counts left out
    open_dossiers: int
    orphaned: int  # open dossiers that cannot reach the end (census)
    plan_actions: dict[str, int]  # action -> count (confirmed and unconfirmed)
    plan_unconfirmed: int
    on_time_before: tuple[int, int]  # grand total's (early + on time, resolved), system view
    on_time_after: tuple[int, int]  # the same after the plan


@dataclass(frozen=True, slots=True)
class ReportData:
    run: dict[str, Any]  # id, as_of, started_at, tool_version, fingerprint, periods, paper_only_units
    district: str | None  # from the project file, e.g. "huyện Bình Sơn"
    limit: int  # HTML and Markdown list at most this many dossiers per section (CSV/XLSX: all)
    summary: Summary
    census: list[CensusLine]
    findings: list[FindingSection]  # FindingKind order
    stats_before: StatsTable  # system view
    stats_after: StatsTable  # after-plan view
    stats_register: StatsTable  # paper register view
    rates: list[RateChange]  # per row of the statistics (fields, total, groups)
    stuck_age: list[tuple[int, int | None, int]]  # (from, to or None, dossiers) per AGE_BUCKETS bucket
    worklists: list[Worklist]  # one per unit, sorted by unit

    def to_dict(self) -> dict[str, Any]:
        doc = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("stats_before", "stats_after", "stats_register"):
            doc[name] = getattr(self, name).to_dict()
        for name in ("summary", "census", "findings", "rates", "worklists"):
            value = getattr(self, name)
            doc[name] = asdict(value) if not isinstance(value, list) else [asdict(v) for v in value]
        return doc
