"""The project file (`reconcile.yaml`): read, every key and type checked, file:line:col."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from reconcile import errors
from reconcile.audit.inputs import PROFILES
from reconcile.errors import BadInput
from reconcile.stats.model import CONVENTIONS
from reconcile.util import yamlio
from reconcile.util.calendar import parse_as_of

MAX_TOLERANCE_DAYS = 3650  # ten years: a bigger tolerance compares nothing
MAX_STALL_FACTOR = 100.0
MAX_STALL_DAYS = 10_000

_TEXT = {"type": "string", "minLength": 1}
_PATH = {**_TEXT, "hint": "a path (relative to this file) or a URL, as text"}
_TEXTS = {"type": "array", "items": _TEXT}
_DATE = {**_TEXT, "hint": "a date, YYYY-MM-DD"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "as_of": _DATE,
        "register": {"type": ["string", "array"], "minLength": 1, "minItems": 1, "items": _TEXT,
                     "hint": "a register file, or a list of them"},
        "system": _PATH, "mapping": _PATH, "workflows": _PATH, "sidecars": _PATH, "register_mapping": _PATH,
        "store": _PATH, "staff": _PATH,
        "profile": {"enum": list(PROFILES)},
        "tenant": {**_TEXT, "hint": "the engine's TENANT_ID_, as text (quoted if it looks like a number)"},
        "schema": {**_TEXT, "hint": "the database schema holding the ACT_* tables"},
        "paper_only_units": {"type": ["string", "array"], "minLength": 1, "items": _TEXT,
                             "hint": "a list of unit names"},
        "date_tolerance_days": {"type": "integer", "minimum": 0, "maximum": MAX_TOLERANCE_DAYS},
        "stalled": {"type": "object", "additionalProperties": False,
                    "properties": {"factor": {"type": "number", "minimum": 0, "maximum": MAX_STALL_FACTOR},
                                   "min_working_days": {"type": "integer", "minimum": 0,
                                                        "maximum": MAX_STALL_DAYS}}},
        "period": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                   "properties": {"from": _DATE, "to": _DATE}},
        "statistics": {"type": "object", "additionalProperties": False, "properties": {
            "convention": {"enum": list(CONVENTIONS)},
            "fields": _TEXTS,
            "groups": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                  "required": ["label", "fields"],
                                                  "properties": {"label": _TEXT, "fields": _TEXTS}}},
            "online_channels": {"type": "array", "items": {"type": ["string", "integer"]}}}},
        "district": {"type": "string"},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)
HINT = 'Hint: see "Project file" in docs/file-formats.md.'


def load_project(path: Path) -> dict[str, Any]:
    """The project file's settings; BadInput (one line per problem, file:line:col) when a key is unknown, a
    value has the wrong type or is out of range, or a date is not a date."""
    where = str(path)
    node, data = yamlio.load(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise errors.BadInput(f"{where}:1:1: expected a mapping of settings (store, as_of, paper_only_units, ...). "
                              f"{HINT}")
    problems = yamlio.schema_problems(where, node, _VALIDATOR, data, HINT)
    if not problems:
        dates = [("as_of",), ("period", "from"), ("period", "to")]
        for keys in dates:
            value: Any = data
            for k in keys:
                value = value.get(k) if isinstance(value, dict) else None
            if value is not None:
                try:
                    parse_as_of(value, f"{yamlio.at(where, yamlio.node_at(node, keys))}: {'.'.join(keys)}")
                except errors.BadInput as e:
                    problems += e.problems
    errors.collect(problems, f"{where}: {len(problems)} problems in the project file")
    return data


def project_period(project: dict[str, Any], where: str = "reconcile.yaml") -> tuple[date, date] | None:
    """The project file's `period: {from, to}` (the statistics' reporting period), if any."""
    period = project.get("period")
    if period is None:
        return None
    if not isinstance(period, dict) or "from" not in period or "to" not in period:
        raise BadInput(f"{where}: period: expected {{from: DATE, to: DATE}}.")
    return parse_as_of(str(period["from"]), f"{where}: period.from"), parse_as_of(str(period["to"]), f"{where}: period.to")
