"""The workflow catalog's data: versions, their steps, the version-file schema and its limits (no IO)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from reconcile.util.normalize import compare_key

MAX_DAYS = 1000  # working days of one step: about four years; more is a typo (and deadlines overflow)
MAX_VERSION = 2**31 - 1  # the store's INTEGER

# The keys that describe a version (also what a BPMN sidecar may give).
VERSION_KEYS: dict[str, Any] = {
    "procedure": {"type": "string", "minLength": 1},
    "name": {"type": "string", "minLength": 1},
    "field": {"type": "string"},
    "version": {"type": "integer", "minimum": 0, "maximum": MAX_VERSION},
    "valid_from": {"type": "string", "format": "date"},
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["procedure", "name", "version", "steps"],
    "properties": {
        **VERSION_KEYS,
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"},
                  "hint": "a version lists its steps, e.g. - {id: S01, name: Tiếp nhận, days: 1, next: [S02]}"},
    },
    "$defs": {
        "step": {
            "type": "object",
            "required": ["id", "name", "days"],
            "additionalProperties": False,  # a misspelt key (`may-end`) is an error, not silently nothing
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "name": {"type": "string"},
                "unit": {"type": "string"},
                "days": {"type": "number", "minimum": 0, "maximum": MAX_DAYS},
                "next": {"type": "array", "items": {"type": "string"}},
                "final": {"type": "boolean"},
                "may_end": {"type": "boolean"},
                "start": {"type": "boolean"},
                "side_of": {"type": "string", "minLength": 1},
            },
        }
    },
}


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    name: str
    unit: str | None
    days: float
    next: tuple[str, ...]
    final: bool  # the result step: every path after it ends with no other step
    line: int
    may_end: bool = False  # the procedure may end right after it on some branch (a rejection); not the result
    start: bool = False  # an entry (a first step after a start event) when a version has several
    side_of: str | None = None  # first step of a side path a non-interrupting event opens while this step waits


@dataclass(frozen=True, slots=True)
class WorkflowVersion:
    procedure: str
    name: str
    field: str | None
    version: int
    valid_from: date | None
    steps: tuple[Step, ...]
    path: str

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def reachable_final(self) -> frozenset[str]:
        """Ids of the steps from which the end can be reached: final steps, steps that may end the
        procedure, and the steps leading to them."""
        backwards: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for target in s.next:
                backwards.setdefault(target, []).append(s.id)
        return frozenset(reachable(backwards, (s.id for s in self.steps if s.final or s.may_end)))

    def starts(self) -> tuple[Step, ...]:
        """The entries: the steps marked start, else the first step."""
        return tuple(s for s in self.steps if s.start) or self.steps[:1]


@dataclass(frozen=True, slots=True)
class Catalog:
    versions: tuple[WorkflowVersion, ...]
    warnings: tuple[str, ...] = ()
    # get() runs once per dossier, so it must not scan the catalog.
    _index: dict[tuple[str, int], WorkflowVersion] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {(v.procedure, v.version): v for v in self.versions})

    def get(self, procedure: str, version: int) -> WorkflowVersion | None:
        return self._index.get((procedure, version))

    def versions_of(self, procedure: str) -> tuple[WorkflowVersion, ...]:
        return tuple(v for v in self.versions if v.procedure == procedure)

    def latest(self, procedure: str) -> WorkflowVersion | None:
        found = self.versions_of(procedure)
        return found[-1] if found else None

    def procedure_by_name(self) -> dict[str, str]:
        """compare_key(name) -> procedure, over every version's name; names shared by several
        procedures are left out, since a register row with such a name cannot be attributed."""
        owners: dict[str, set[str]] = {}
        for v in self.versions:
            if key := compare_key(v.name):
                owners.setdefault(key, set()).add(v.procedure)
        return {key: next(iter(procs)) for key, procs in owners.items() if len(procs) == 1}


def reachable(edges: Mapping[str, Iterable[str]], start: Iterable[str]) -> set[str]:
    """Nodes reachable from `start` along `edges` (the start nodes included)."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen
