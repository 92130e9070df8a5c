"""Migration rules: YAML files next to the workflow catalog that say where a dossier goes when its
version changes (or lost its step), validated against the catalog, file:line:col.

Where: every ``rules*.yaml`` or ``*.rules.yaml`` file below the catalog folder, usually one
``rules.yaml`` in a procedure's folder beside its ``v1.yaml``, ``v2.yaml``... Files are read in path
order; within a file, rules keep their order.

Format (one procedure per file)::

    procedure: "1.004227.000.00.00.H48"
    assign: {VPDKDD: vpdkdd.default, THUE: thue.default}  # unit -> default account (all rules)
    rules:
      - id: v1-to-v2            # unique within the procedure; plans cite it
        from: 1                 # version the dossier is on
        to: 2                   # version it goes to
        steps: {S02: S03, S05: S06, S05B: S06}  # source step -> target step (many-to-one allowed)
        same_ids: true          # steps not listed that exist under the same id in `to` move there
      - id: v2-edited           # from == to: an in-place edit; the source steps are steps the
        from: 2                 # version lost (absent from it, known from another version)
        to: 2
        steps: {S02: S03}
      - id: v3-to-v4-returned
        from: 3
        to: 4
        when: {paper_outcome: returned}  # conditions on the dossier's facts, all must hold
        steps:
          S06A: {to: S09, guess: true, confirmed_by: "Nguyễn Văn A"}  # a guess, confirmed
        assign: {MOTCUA: motcua.default}  # overrides the file's table for this rule
      - id: reform-2025
        from: 4
        to_procedure: "1.003003.000.00.00.H48"  # move to another procedure (01/07/2025 reform)
        to: 1
        when: {received_before: 2025-07-01, unit: [VPDKDD, LANHDAO]}
        steps: {S07: S05}
        guess: true             # the whole rule needs a person's confirmation (confirmed_by: ...)

Conditions (``when``): ``paper_outcome`` (one or a list of ``returned``: the register shows the
result returned; ``not_returned``: the register row has no return date; ``missing``: no register
row), ``unit`` (one or a list of unit codes: the dossier's current unit), ``received_from``
(inclusive) and ``received_before`` (exclusive) ISO dates. A condition on a fact that is not known
does not hold. Conditions are evaluated on the dossier as found, for every hop.

Resolving (`RuleSet.resolve`): from (procedure, version, step), take the first rule from that
(procedure, version) whose conditions hold and that maps the step, move, and repeat until no rule
applies: v1 -> v2 -> v3. The result names the rules used, the guesses not yet confirmed (a plan
must not apply those) and the default account of the final step's unit from the last rule's
``assign`` table (over its file's).

Validation: unknown procedure, version or step (a source step must be in the from-version, a
target step in the to-version), a target step from which no final step can be reached, a chain of
versions with a cycle, two rules claiming the same (procedure, version, step) with overlapping
conditions (allowed only when the earlier rule's conditions are strictly narrower: an exception
listed before its fallback), an empty date range, an unknown unit in an ``assign`` table,
``confirmed_by`` without ``guess``, duplicate keys, YAML syntax and schema errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from reconcile import errors

from reconcile.util import yamlio
from reconcile.workflow.catalog import VERSION_FILE, Catalog
from reconcile.workflow.model import MAX_VERSION
from reconcile.util.yamlio import at as _at, key_node as _key, node_at as _node_at, value_node as _value

RULES_FILE = re.compile(r"^(rules.*|.*\.rules)\.yaml$")
OUTCOMES = ("returned", "not_returned", "missing")
FORMAT_HINT = ("Hint: see the migration rules format (procedure, assign, rules: id, from, to, steps, when) in "
               "docs/file-formats.md.")

# One name or a list of names (string keywords apply to strings, array ones to arrays).
_NAMES = {"type": ["string", "array"], "minLength": 1, "minItems": 1, "items": {"type": "string", "minLength": 1}}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["procedure", "rules"],
    "additionalProperties": False,
    "properties": {
        "procedure": {"type": "string", "minLength": 1},
        "assign": {"$ref": "#/$defs/assign"},
        "rules": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/rule"}},
    },
    "$defs": {
        "assign": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
        "rule": {
            "type": "object",
            "required": ["id", "from", "to", "steps"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$"},
                "from": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                "to": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                "to_procedure": {"type": "string", "minLength": 1},
                "steps": {"type": "object", "additionalProperties": {"$ref": "#/$defs/target"}},
                "same_ids": {"type": "boolean"},
                "when": {"$ref": "#/$defs/when"},
                "assign": {"$ref": "#/$defs/assign"},
                "guess": {"type": "boolean"},
                "confirmed_by": {"type": "string", "minLength": 1},
                "note": {"type": "string"},
            },
        },
        # A step id, or {to, guess, confirmed_by}: string keywords apply to strings, object ones to objects.
        "target": {
            "type": ["string", "object"],
            "minLength": 1,
            "required": ["to"],
            "additionalProperties": False,
            "properties": {
                "to": {"type": "string", "minLength": 1},
                "guess": {"type": "boolean"},
                "confirmed_by": {"type": "string", "minLength": 1},
                "note": {"type": "string"},
            },
        },
        "when": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "paper_outcome": _NAMES,
                "unit": _NAMES,
                "received_before": {"type": "string", "format": "date"},
                "received_from": {"type": "string", "format": "date"},
            },
        },
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


# ---------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known of a dossier for `when` conditions; None = not known."""

    paper_outcome: str | None = None  # returned / not_returned / missing
    unit: str | None = None  # the dossier's current unit
    received_at: date | None = None


@dataclass(frozen=True, slots=True)
class When:
    """Conditions, all of which must hold; None = no condition on that fact."""

    outcomes: frozenset[str] | None = None
    units: frozenset[str] | None = None
    received_from: date | None = None  # inclusive
    received_before: date | None = None  # exclusive

    def matches(self, facts: Facts) -> bool:
        if self.outcomes is not None and facts.paper_outcome not in self.outcomes:
            return False
        if self.units is not None and facts.unit not in self.units:
            return False
        if self.received_from is None and self.received_before is None:
            return True
        got = facts.received_at
        return got is not None and (self.received_from is None or got >= self.received_from) and (
            self.received_before is None or got < self.received_before)

    def overlaps(self, other: When) -> bool:
        """Some dossier can satisfy both."""
        for a, b in ((self.outcomes, other.outcomes), (self.units, other.units)):
            if a is not None and b is not None and not a & b:
                return False
        lo = max((d for d in (self.received_from, other.received_from) if d), default=None)
        hi = min((d for d in (self.received_before, other.received_before) if d), default=None)
        return lo is None or hi is None or lo < hi

    def covers(self, other: When) -> bool:
        """Every dossier that satisfies `other` satisfies this."""
        for a, b in ((self.outcomes, other.outcomes), (self.units, other.units)):
            if a is not None and (b is None or not b <= a):
                return False
        if self.received_from and (other.received_from is None or other.received_from < self.received_from):
            return False
        return not (self.received_before and (other.received_before is None
                                              or other.received_before > self.received_before))

    def describe(self) -> str:
        parts = []
        if self.outcomes is not None:
            parts.append("paper " + "/".join(sorted(self.outcomes)))
        if self.units is not None:
            parts.append("unit " + "/".join(sorted(self.units)))
        if self.received_from:
            parts.append(f"received from {self.received_from}")
        if self.received_before:
            parts.append(f"received before {self.received_before}")
        return ", ".join(parts) or "always"


@dataclass(frozen=True, slots=True)
class StepMap:
    source: str
    target: str
    guess: bool = False
    confirmed_by: str | None = None

    @property
    def pending(self) -> bool:
        """A guess no person has confirmed yet: it must not be applied."""
        return self.guess and not self.confirmed_by


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    procedure: str
    from_version: int
    to_procedure: str  # the procedure itself unless to_procedure: says otherwise
    to_version: int
    steps: tuple[StepMap, ...]  # as listed (the rule's own guess folded into each)
    when: When
    assign: Mapping[str, str]  # unit -> default account: the rule's table over its file's
    same_ids: bool
    where: str  # file:line:col of the rule

    def target(self, step: str, catalog: Catalog) -> StepMap | None:
        """Where this rule sends a dossier on `step` (None: not a step it maps)."""
        for m in self.steps:
            if m.source == step:
                return m
        if self.same_ids:
            src = catalog.get(self.procedure, self.from_version)
            dst = catalog.get(self.to_procedure, self.to_version)
            if src and dst and src.step(step) and dst.step(step):
                return StepMap(step, step)
        return None

    def claims(self, catalog: Catalog) -> set[str]:
        """Every source step this rule maps, the implicit same-id ones included."""
        claimed = {m.source for m in self.steps}
        if self.same_ids:
            src = catalog.get(self.procedure, self.from_version)
            dst = catalog.get(self.to_procedure, self.to_version)
            if src and dst:
                claimed |= {s.id for s in src.steps if dst.step(s.id)}
        return claimed


@dataclass(frozen=True, slots=True)
class Hop:
    rule: str
    procedure: str
    version: int
    step: str
    to_procedure: str
    to_version: int
    to_step: str
    guess: bool
    confirmed_by: str | None


@dataclass(frozen=True, slots=True)
class Resolution:
    procedure: str
    version: int
    step: str
    hops: tuple[Hop, ...]
    unit: str | None  # the final step's unit in the catalog (None: step not in the catalog)
    assignee: str | None  # that unit's default account from the last rule's assign table

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(h.rule for h in self.hops)

    @property
    def moved(self) -> bool:
        return bool(self.hops)

    @property
    def needs_confirmation(self) -> bool:
        """Some hop is a guess no person has confirmed: do not apply it."""
        return any(h.guess and not h.confirmed_by for h in self.hops)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    files: tuple[str, ...]
    catalog: Catalog
    _by_version: dict[tuple[str, int], tuple[Rule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, int], list[Rule]] = {}
        for r in self.rules:
            index.setdefault((r.procedure, r.from_version), []).append(r)
        object.__setattr__(self, "_by_version", {k: tuple(v) for k, v in index.items()})

    def procedures(self) -> list[str]:
        return sorted({r.procedure for r in self.rules})

    def of(self, procedure: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.procedure == procedure)

    def resolve(self, procedure: str, version: int, step: str, facts: Facts = Facts()) -> Resolution:
        """Walk the chain from (procedure, version, step): per hop the first rule whose conditions
        hold and that maps the step; stop where no rule applies."""
        hops: list[Hop] = []
        seen = {(procedure, version, step)}
        last: Rule | None = None
        while True:
            found = next(((r, m) for r in self._by_version.get((procedure, version), ())
                          if r.when.matches(facts) and (m := r.target(step, self.catalog)) is not None), None)
            if found is None:
                break
            rule, m = found
            hops.append(Hop(rule.id, procedure, version, step, rule.to_procedure, rule.to_version, m.target,
                            m.guess, m.confirmed_by))
            procedure, version, step, last = rule.to_procedure, rule.to_version, m.target, rule
            if (procedure, version, step) in seen:  # only in a set that failed validation
                break
            seen.add((procedure, version, step))
        wv = self.catalog.get(procedure, version)
        found_step = wv.step(step) if wv else None
        unit = found_step.unit if found_step else None
        assignee = last.assign.get(unit) if last is not None and unit is not None else None
        return Resolution(procedure, version, step, tuple(hops), unit, assignee)


def superseded_steps(rules: RuleSet) -> list[tuple[tuple[str, int, str], Resolution]]:
    """Every (procedure, version, step) the rules move to a later version or another procedure, with no
    facts (so conditional rules do not count): the chain from each step a rule claims, kept when it
    ends elsewhere (an in-place rule counts when the chain goes on to a later version). Pairs of the
    source (procedure, version, step) and where the chain ends."""
    out: dict[tuple[str, int, str], Resolution] = {}
    for r in rules.rules:
        for step in sorted(r.claims(rules.catalog)):
            key = (r.procedure, r.from_version, step)
            if key in out:
                continue
            res = rules.resolve(*key)
            if res.moved and (res.procedure != r.procedure or res.version > r.from_version):
                out[key] = res
    return sorted(out.items())


# ---------------------------------------------------------------- loading and validation


def rule_files(directory: str | os.PathLike[str]) -> list[str]:
    """Rules files below the catalog folder, in path order."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(os.path.join(os.fspath(directory), *p.relative_to(root).parts)
                  for p in root.rglob("*.yaml") if RULES_FILE.match(p.name) and p.is_file())


def has_catalog(directory: str | os.PathLike[str]) -> bool:
    root = Path(directory)
    return root.is_dir() and any(VERSION_FILE.match(p.name) for p in root.rglob("v*") if p.is_file())


def load_rules(directory: str | os.PathLike[str], catalog: Catalog) -> RuleSet:
    """Every rules file below `directory`, validated against `catalog`; one BadInput lists all problems.
    No rules files: an empty set."""
    return load_rule_files(rule_files(directory), catalog)


@dataclass(frozen=True, slots=True)
class _Parsed:
    rule: Rule
    node: yaml.MappingNode  # the rule's mapping, for positions
    path: str
    steps_node: Any


def load_rule_files(paths: Iterable[str], catalog: Catalog) -> RuleSet:
    paths = list(paths)
    problems: list[str] = []
    parsed: list[_Parsed] = []
    for path in paths:
        file_problems: list[str] = []
        parsed.extend(_load_file(path, catalog, file_problems))
        problems.extend(sorted(file_problems, key=lambda line: yamlio.position(line, path)))
    problems.extend(_check_ids(parsed))
    problems.extend(_check_claims(parsed, catalog))
    problems.extend(_check_cycles(parsed))
    errors.collect(problems, f"{len(problems)} problems in the migration rules.")
    return RuleSet(tuple(p.rule for p in parsed), tuple(paths), catalog)


def _load_file(path: str, catalog: Catalog, problems: list[str]) -> list[_Parsed]:
    try:
        node, data = yamlio.load(path)
    except errors.BadInput as e:
        problems.extend(e.problems)
        return []
    if node is None:
        problems.append(f"{path}:1:1: empty file. Hint: expected keys procedure, rules (and optionally assign).")
        return []
    schema_problems = yamlio.schema_problems(path, node, _VALIDATOR, data, FORMAT_HINT)
    if schema_problems:
        problems.extend(schema_problems)
        return []
    return _check_file(path, node, data, catalog, problems)


def _check_file(path: str, node: yaml.MappingNode, data: dict[str, Any], catalog: Catalog,
                problems: list[str]) -> list[_Parsed]:
    procedure = data["procedure"]
    versions = catalog.versions_of(procedure)
    if not versions:
        known = sorted({v.procedure for v in catalog.versions})
        problems.append(f"{_at(path, _value(node, 'procedure'))}: unknown procedure '{procedure}'. "
                        f"Hint: procedures in the catalog: {', '.join(known)}.")
        return []
    file_assign = dict(data.get("assign", {}))
    units = {s.unit for v in versions for s in v.steps if s.unit}
    _check_units(path, _value(node, "assign"), file_assign, units, procedure, problems)
    out = []
    for i, raw in enumerate(data["rules"]):
        rnode = _value(node, "rules").value[i]
        rule = _check_rule(path, rnode, raw, procedure, file_assign, catalog, problems)
        if rule is not None:
            out.append(_Parsed(rule, rnode, path, _value(rnode, "steps")))
    return out


def _check_units(path: str, anode: Any, table: Mapping[str, str], units: set[str], procedure: str,
                 problems: list[str]) -> None:
    for unit in table:
        if unit not in units:
            problems.append(f"{_at(path, _key(anode, unit))}: unit '{unit}' is not the unit of any step of "
                            f"procedure '{procedure}'. Hint: units there: {', '.join(sorted(units))}.")


def _check_rule(path: str, rnode: yaml.MappingNode, raw: dict[str, Any], procedure: str,
                file_assign: dict[str, str], catalog: Catalog, problems: list[str]) -> Rule | None:
    def at(*keys: Any) -> str:
        return _at(path, _node_at(rnode, keys))

    rid = raw["id"]
    ok = True
    src = catalog.get(procedure, raw["from"])
    if src is None:
        have = ", ".join(str(v.version) for v in catalog.versions_of(procedure))
        problems.append(f"{at('from')}: rule '{rid}': procedure '{procedure}' has no version {raw['from']}. "
                        f"Hint: versions in the catalog: {have}.")
        ok = False
    to_proc = raw.get("to_procedure", procedure)
    dst = catalog.get(to_proc, raw["to"])
    if not catalog.versions_of(to_proc):
        known = sorted({v.procedure for v in catalog.versions})
        problems.append(f"{at('to_procedure')}: rule '{rid}': unknown procedure '{to_proc}'. "
                        f"Hint: procedures in the catalog: {', '.join(known)}.")
        ok = False
    elif dst is None:
        have = ", ".join(str(v.version) for v in catalog.versions_of(to_proc))
        problems.append(f"{at('to')}: rule '{rid}': procedure '{to_proc}' has no version {raw['to']}. "
                        f"Hint: versions in the catalog: {have}.")
        ok = False

    in_place = to_proc == procedure and raw["from"] == raw["to"]
    rule_guess, rule_confirmed = bool(raw.get("guess", False)), raw.get("confirmed_by")
    if rule_confirmed and not rule_guess:
        problems.append(f"{at('confirmed_by')}: rule '{rid}': confirmed_by on a rule that is not a guess. "
                        "Hint: add guess: true, or remove confirmed_by.")
    steps: list[StepMap] = []
    for source, target in raw["steps"].items():
        if isinstance(target, str):
            m = StepMap(source, target, rule_guess, rule_confirmed)
        else:
            if target.get("confirmed_by") and not target.get("guess"):
                problems.append(f"{at('steps', source, 'confirmed_by')}: rule '{rid}': confirmed_by on a "
                                f"mapping that is not a guess. Hint: add guess: true, or remove confirmed_by.")
            guess = rule_guess or bool(target.get("guess", False))
            m = StepMap(source, target["to"], guess, target.get("confirmed_by") or rule_confirmed)
        steps.append(m)
        if src is not None:
            _check_source(path, rnode, rid, m, src, in_place, catalog, problems)
        if dst is not None:
            tat = at("steps", source) if isinstance(target, str) else at("steps", source, "to")
            _check_target(tat, rid, m.target, dst, problems)
    if not steps and not raw.get("same_ids"):
        problems.append(f"{at('steps')}: rule '{rid}' maps no step. Hint: list source: target steps, or set "
                        "same_ids: true to move steps that keep their id.")
    if in_place and raw.get("same_ids"):
        problems.append(f"{at('same_ids')}: rule '{rid}': same_ids on a rule from a version to itself maps "
                        "nothing. Hint: remove same_ids.")
    if src is not None and dst is not None and raw.get("same_ids") and not in_place:
        listed = set(raw["steps"])
        for s in src.steps:
            if s.id not in listed and dst.step(s.id):
                _check_target(at("same_ids"), rid, s.id, dst, problems, implicit=True)

    when = _check_when(at, rid, raw.get("when"), problems)
    table = dict(raw.get("assign", {}))
    if dst is not None:
        _check_units(path, _value(rnode, "assign"), table, {s.unit for s in dst.steps if s.unit}, to_proc, problems)
    if not ok or when is None:
        return None
    return Rule(rid, procedure, raw["from"], to_proc, raw["to"], tuple(steps), when, {**file_assign, **table},
                bool(raw.get("same_ids", False)), _at(path, rnode))


def _check_source(path: str, rnode: yaml.MappingNode, rid: str, m: StepMap, src: Any, in_place: bool,
                  catalog: Catalog, problems: list[str]) -> None:
    at = _at(path, _key(_value(rnode, "steps"), m.source))
    here = ", ".join(s.id for s in src.steps)
    if not in_place and src.step(m.source) is None:
        problems.append(f"{at}: rule '{rid}': step '{m.source}' is not in version {src.version} of "
                        f"'{src.procedure}'. Hint: steps there: {here}.")
    elif in_place and src.step(m.source) is not None:
        problems.append(f"{at}: rule '{rid}': step '{m.source}' is still in version {src.version}; a rule "
                        "from a version to itself maps only steps the version lost. Hint: map it in a rule "
                        "to another version, or remove it.")
    elif in_place and not any(v.step(m.source) for v in catalog.versions_of(src.procedure)):
        problems.append(f"{at}: rule '{rid}': step '{m.source}' is in no version of '{src.procedure}'. "
                        f"Hint: a rule from a version to itself maps steps an earlier edit removed; "
                        f"steps of version {src.version}: {here}.")


def _check_target(at: str, rid: str, target: str, dst: Any, problems: list[str], implicit: bool = False) -> None:
    what = f"rule '{rid}': {'same-id ' if implicit else ''}target step '{target}'"
    if dst.step(target) is None:
        problems.append(f"{at}: {what} is not in version {dst.version} of '{dst.procedure}'. "
                        f"Hint: steps there: {', '.join(s.id for s in dst.steps)}.")
    elif target not in dst.reachable_final():
        problems.append(f"{at}: {what} cannot reach a final step of version {dst.version} of "
                        f"'{dst.procedure}': a dossier sent there can never finish. Hint: map it to a "
                        "step on a path to a final step.")


def _check_when(at: Any, rid: str, raw: dict[str, Any] | None, problems: list[str]) -> When | None:
    if raw is None:
        return When()

    def names(key: str) -> frozenset[str] | None:
        value = raw.get(key)
        return None if value is None else frozenset([value] if isinstance(value, str) else value)

    outcomes = names("paper_outcome")
    bad = sorted((outcomes or frozenset()) - set(OUTCOMES))
    if bad:
        problems.append(f"{at('when', 'paper_outcome')}: rule '{rid}': paper_outcome '{bad[0]}' is not known. "
                        f"Hint: one or a list of {', '.join(OUTCOMES)}.")
        return None
    start = date.fromisoformat(raw["received_from"]) if "received_from" in raw else None
    end = date.fromisoformat(raw["received_before"]) if "received_before" in raw else None
    if start and end and start >= end:
        problems.append(f"{at('when', 'received_from')}: rule '{rid}': received_from {start} is not before "
                        f"received_before {end}: no dossier can match. Hint: swap the dates, or drop one.")
        return None
    return When(outcomes, names("unit"), start, end)


def _check_ids(parsed: list[_Parsed]) -> list[str]:
    first: dict[tuple[str, str], str] = {}
    out = []
    for p in parsed:
        key = (p.rule.procedure, p.rule.id)
        if key in first:
            out.append(f"{_at(p.path, _value(p.node, 'id'))}: rule id '{p.rule.id}' is also used at {first[key]}. "
                       "Hint: rule ids must be unique within a procedure (plans cite them).")
        else:
            first[key] = p.rule.where
    return out


def _check_claims(parsed: list[_Parsed], catalog: Catalog) -> list[str]:
    """Two rules claiming the same (procedure, version, step) with overlapping conditions; allowed only
    when the earlier one's conditions are strictly narrower (an exception before its fallback)."""
    out = []
    groups: dict[tuple[str, int], list[_Parsed]] = {}
    for p in parsed:
        groups.setdefault((p.rule.procedure, p.rule.from_version), []).append(p)
    for (procedure, version), items in groups.items():
        claims = [p.rule.claims(catalog) for p in items]
        for j, later in enumerate(items):
            for i in range(j):
                earlier = items[i]
                both = sorted(claims[i] & claims[j])
                a, b = earlier.rule.when, later.rule.when
                if not both or not a.overlaps(b) or (b.covers(a) and not a.covers(b)):
                    continue
                step = both[0]
                key = _key(later.steps_node, step)
                at = _at(later.path, key) if key is not None else _at(later.path, _value(later.node, "id"))
                steps = ", ".join(both)
                if a == b:
                    why = (f"rule '{earlier.rule.id}' at {earlier.rule.where} claims it too, under the same "
                           f"conditions ({a.describe()}). Hint: keep the step in one rule, or make the conditions "
                           "exclusive.")
                elif a.covers(b):
                    why = (f"rule '{earlier.rule.id}' at {earlier.rule.where} claims it first for "
                           f"{a.describe()}, which covers this rule's {b.describe()}, so this rule never applies "
                           "there. Hint: put the narrower rule first, or drop the step from one rule.")
                else:
                    why = (f"rule '{earlier.rule.id}' at {earlier.rule.where} claims it too and the conditions "
                           f"overlap ({a.describe()} / {b.describe()}). Hint: make them exclusive (e.g. "
                           "received_before / received_from the same date), or make the earlier one narrower.")
                out.append(f"{at}: rule '{later.rule.id}' claims procedure '{procedure}' version {version} "
                           f"step(s) {steps}; {why}")
                break  # one message per rule is enough
    return out


def _check_cycles(parsed: list[_Parsed]) -> list[str]:
    """Versions linked by rules must not loop (2 -> 3 -> 2); a rule from a version to itself is an
    in-place repair, not a link."""
    edges: dict[tuple[str, int], list[_Parsed]] = {}
    for p in parsed:
        r = p.rule
        if (r.procedure, r.from_version) != (r.to_procedure, r.to_version):
            edges.setdefault((r.procedure, r.from_version), []).append(p)
    out: list[str] = []
    reported: set[frozenset[tuple[str, int]]] = set()
    state: dict[tuple[str, int], int] = {}  # 1 on the path, 2 done
    path: list[tuple[tuple[str, int], _Parsed | None]] = []

    def visit(node: tuple[str, int], via: _Parsed | None) -> None:
        state[node] = 1
        path.append((node, via))
        for p in edges.get(node, ()):
            nxt = (p.rule.to_procedure, p.rule.to_version)
            if state.get(nxt) == 1:
                start = next(k for k, (n, _) in enumerate(path) if n == nxt)
                loop = [*path[start + 1:], (nxt, p)]
                nodes = frozenset(n for n, _ in loop)
                if nodes not in reported:
                    reported.add(nodes)
                    chain = " -> ".join(_name(n, nxt[0]) for n in [nxt] + [n for n, _ in loop])
                    rules = ", ".join(f"'{q.rule.id}' ({q.rule.where})" for _, q in loop if q is not None)
                    out.append(f"{_at(p.path, _value(p.node, 'to'))}: rule '{p.rule.id}' closes a cycle of "
                               f"versions {chain} (rules {rules}). Hint: a chain must end; remove or "
                               "redirect one of these rules.")
            elif nxt not in state:
                visit(nxt, p)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, None)
    return out


def _name(node: tuple[str, int], home: str) -> str:
    return f"v{node[1]}" if node[0] == home else f"{node[0]} v{node[1]}"


# ---------------------------------------------------------------- `rules check`


@dataclass(frozen=True, slots=True)
class ProcedureSummary:
    procedure: str
    hops: tuple[str, ...]  # "v1 -> v2 (rule-id when ...) at file:line:col"
    steps_mapped: int
    pending: tuple[str, ...]  # "rule-id: S05 -> S06"


def summarize(rules: RuleSet) -> list[ProcedureSummary]:
    out = []
    for procedure in rules.procedures():
        hops, mapped, pending = [], 0, []
        for r in rules.of(procedure):
            target = _name((r.to_procedure, r.to_version), procedure)
            cond = "" if r.when == When() else f" when {r.when.describe()}"
            hops.append(f"v{r.from_version} -> {target} ({r.id}{cond}) at {r.where}")
            mapped += len(r.claims(rules.catalog))
            pending += [f"{r.id}: {m.source} -> {m.target}" for m in r.steps if m.pending]
        out.append(ProcedureSummary(procedure, tuple(hops), mapped, tuple(pending)))
    return out


def check(directory: str, catalog: Catalog | None = None) -> tuple[RuleSet, list[ProcedureSummary]]:
    """Load and validate the rules below `directory` against the catalog there (or `catalog`)."""
    from reconcile.workflow.catalog import load_catalog

    files = rule_files(directory)
    if not Path(directory).is_dir():
        raise errors.BadInput(f"{directory}: no such directory. Hint: give the workflow catalog folder "
                              "(the one holding <procedure>/v<N>.yaml and rules.yaml files).")
    if not files:
        raise errors.BadInput(f"{directory}: no migration rules files (rules*.yaml or *.rules.yaml). Hint: "
                              "write rules.yaml next to a procedure's v<N>.yaml files.")
    if catalog is None:
        if not has_catalog(directory):
            errors.collect([f"{f}: no workflow catalog to check these rules against (no v<N>.yaml or "
                            f"v<N>.bpmn below {directory}). Hint: put the rules next to the version files, "
                            "or pass the catalog folder with --workflows DIR." for f in files],
                           f"{len(files)} rules files without a catalog.")
        catalog = load_catalog(directory)
    rules = load_rule_files(files, catalog)
    return rules, summarize(rules)
