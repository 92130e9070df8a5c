"""One dossier's differences: its register row against its system row field by field, and what the plan
would set against the system's values (DeepDiff on the few values of one dossier, never on a table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from reconcile.model import OUTCOME_STATUSES, Outcome
from reconcile.util.normalize import compare_key
from reconcile.util.structdiff import differing_keys

# The fields a register row and a system row both describe, in the order they are shown. The address is
# left out: the register writes the phone number into it, the system keeps it apart.
PAIRED = ("procedure", "applicant", "agency", "received_at", "due_at", "returned_at", "outcome")
# Status -> what the register would write for it: an open dossier has no outcome on paper yet.
_OUTCOME_OF = {status.value: outcome.value for outcome, statuses in OUTCOME_STATUSES.items() for status in statuses}


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs: between paper and system (`plan` unset), or between the system and what a
    plan action would set (`register` unset). Values as each side writes them (dates ISO)."""

    between: str  # "register-system" | "plan-system"
    field: str
    system: Any
    register: Any = None
    plan: Any = None
    register_row: int | None = None  # 1-based, among the dossier's register rows, when it has several
    system_row: int | None = None  # 1-based, among its system rows, when it has several
    action: str | None = None  # the plan action setting the value (plan-system only)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.field}
        if self.between == "register-system":
            d["register"] = self.register
        d["system"] = self.system
        if self.between == "plan-system":
            d["plan"], d["action"] = self.plan, self.action
        for k in ("register_row", "system_row"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d


def differences(register_rows: Sequence[Mapping[str, Any]], system_rows: Sequence[Mapping[str, Any]],
                catalog_names: Mapping[str, Mapping[int, str]], actions: Sequence[Mapping[str, Any]]
                ) -> list[Difference]:
    """Paper against system for every pair of the dossier's rows (one each, but for duplicates), then each
    plan action's `set` against each system row (against nothing when the dossier is not in the system:
    a backfill). `catalog_names`: the run's catalog, procedure -> version -> name (the system names a
    procedure by its code, the register by its name). Rows and values as the store and plan give them."""
    several_reg, several_sys = len(register_rows) > 1, len(system_rows) > 1
    shown: dict[tuple[Any, ...], tuple[Any, Any]] = {}  # key -> (left value as written, system value as written)
    left: dict[tuple[Any, ...], Any] = {}
    right: dict[tuple[Any, ...], Any] = {}
    for i, reg in enumerate(register_rows, 1):
        for j, sys_ in enumerate(system_rows, 1):
            paper = _paper(reg)
            system, procedure_keys = _system(sys_, catalog_names)
            for f in PAIRED:
                (p_shown, p_key), (s_shown, s_key) = paper[f], system[f]
                if f == "procedure" and s_key is None:
                    continue  # the catalog does not know the system's procedure: nothing to compare with
                if f == "procedure" and p_key in procedure_keys:
                    s_key = p_key  # the register may name any version of the procedure
                key = ("register-system", i, j, "", f)
                left[key], right[key], shown[key] = p_key, s_key, (p_shown, s_shown)
    targets = list(enumerate(system_rows, 1)) or [(1, {})]
    for a in actions:
        for j, sys_ in targets:
            for f, value in a["set"].items():
                key = ("plan-system", 0, j, a["action"], f)
                left[key], right[key] = _plain(value), _plain(sys_.get(f))
                shown[key] = (left[key], right[key])
    found = differing_keys(left, right)
    out = []
    for key in left:  # in insertion order: register rows, then plan actions; fields in PAIRED / `set` order
        if key not in found:
            continue
        between, i, j, action, f = key
        theirs, system = shown[key]
        out.append(Difference(
            between, f, system, register=theirs if between == "register-system" else None,
            plan=theirs if between == "plan-system" else None,
            register_row=i if several_reg and between == "register-system" else None,
            system_row=j if several_sys else None, action=action or None))
    return out


def _paper(reg: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each PAIRED field of a register row: (as written, as compared)."""
    out = {f: (_plain(reg.get(f)), _plain(reg.get(f))) for f in ("received_at", "due_at", "returned_at", "outcome")}
    out["applicant"] = (reg.get("applicant"), reg.get("applicant_key"))
    for f in ("procedure", "agency"):
        out[f] = (reg.get(f), compare_key(reg.get(f)))
    return out


def _system(sys_: Mapping[str, Any], catalog_names: Mapping[str, Mapping[int, str]]
            ) -> tuple[dict[str, tuple[Any, Any]], set[str | None]]:
    """Each PAIRED field of a system row: (as written, as compared); and the name keys of every catalog
    version of its procedure. Its procedure is written as the catalog names its version (else the latest)."""
    due = sys_.get("due_at_revised") or sys_.get("due_at")
    status = sys_.get("status")
    out = {f: (_plain(sys_.get(f)), _plain(sys_.get(f))) for f in ("received_at", "returned_at")}
    out["due_at"] = (_plain(due), _plain(due))
    out["outcome"] = (status, _OUTCOME_OF.get(status, Outcome.NONE.value))
    out["applicant"] = (sys_.get("applicant"), sys_.get("applicant_key"))
    out["agency"] = (sys_.get("agency"), compare_key(sys_.get("agency")))
    versions = catalog_names.get(sys_.get("workflow_key") or "", {})
    name = versions.get(sys_.get("workflow_version")) or (versions[max(versions)] if versions else None)
    out["procedure"] = (name, compare_key(name) if name else None)
    return out, {compare_key(n) for n in versions.values()}


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, (date, datetime)) else v
