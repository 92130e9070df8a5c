"""Canonical vocabulary shared by every module: statuses, finding kinds, severities."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Canonical dossier status; `code` is the national portal code (DOMAIN §3)."""

    SUBMITTED = "submitted"
    RECEIVED = "received"
    REJECTED = "rejected"
    IN_PROGRESS = "in_progress"
    SUPPLEMENT_REQUESTED = "supplement_requested"
    AWAITING_PAYMENT = "awaiting_payment"
    WITHDRAWN = "withdrawn"
    STOPPED = "stopped"
    FINISHED = "finished"
    RETURNED = "returned"

    @property
    def code(self) -> int:
        return list(Status).index(self) + 1


# The system's lifecycle has ended for these; every other status still needs someone to act
# (FINISHED waits for the hand-over at the counter).
CLOSED_STATUSES = frozenset({Status.RETURNED, Status.WITHDRAWN, Status.REJECTED, Status.STOPPED})
OPEN_STATUSES = frozenset(set(Status) - CLOSED_STATUSES)


class Outcome(str, Enum):
    """What the paper register says happened to a dossier."""

    NONE = "none"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"


# Which closed system statuses agree with which paper outcome.
OUTCOME_STATUSES: dict[Outcome, frozenset[Status]] = {
    Outcome.RETURNED: frozenset({Status.RETURNED}),
    Outcome.WITHDRAWN: frozenset({Status.WITHDRAWN}),
    Outcome.REJECTED: frozenset({Status.REJECTED, Status.STOPPED}),
}


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class FindingKind(str, Enum):
    """Stable finding names (DESIGN §5); reports, rules, JSON and tests use exactly these."""

    MISSING_IN_SYSTEM = "missing_in_system"
    MISSING_IN_REGISTER = "missing_in_register"
    RESOLVED_NOT_CLOSED = "resolved_not_closed"
    CLOSED_NOT_RESOLVED = "closed_not_resolved"
    STATUS_MISMATCH = "status_mismatch"
    DATE_MISMATCH = "date_mismatch"
    FIELD_MISMATCH = "field_mismatch"
    DUPLICATE_CODE = "duplicate_code"
    REGISTER_NUMBERING_GAP = "register_numbering_gap"
    UNKNOWN_VERSION = "unknown_version"
    STEP_NOT_IN_VERSION = "step_not_in_version"
    DEAD_END_STEP = "dead_end_step"
    ASSIGNEE_INACTIVE = "assignee_inactive"
    UNIT_WITHOUT_STAFF = "unit_without_staff"
    STALLED = "stalled"
    SUPERSEDED_VERSION = "superseded_version"

    @property
    def severity(self) -> Severity:
        return _SEVERITY.get(self, Severity.WARNING)


_SEVERITY = {
    FindingKind.MISSING_IN_SYSTEM: Severity.ERROR,
    FindingKind.RESOLVED_NOT_CLOSED: Severity.ERROR,
    FindingKind.CLOSED_NOT_RESOLVED: Severity.ERROR,
    FindingKind.STATUS_MISMATCH: Severity.ERROR,
    FindingKind.STEP_NOT_IN_VERSION: Severity.ERROR,
    FindingKind.UNKNOWN_VERSION: Severity.ERROR,
    FindingKind.DEAD_END_STEP: Severity.ERROR,
    FindingKind.REGISTER_NUMBERING_GAP: Severity.INFO,
    FindingKind.FIELD_MISMATCH: Severity.INFO,
}


class MatchClass(str, Enum):
    """Exactly one of these per dossier code in the union of both sides."""

    MATCHED = "matched"
    MISSING_IN_SYSTEM = "missing_in_system"
    MISSING_IN_REGISTER = "missing_in_register"
    RESOLVED_NOT_CLOSED = "resolved_not_closed"
    CLOSED_NOT_RESOLVED = "closed_not_resolved"
    STATUS_MISMATCH = "status_mismatch"
    PAPER_ONLY_UNIT = "paper_only_unit"  # on paper, unit not on the software yet
    OUTSIDE_PERIOD = "outside_period"  # in the system, received outside every loaded book

