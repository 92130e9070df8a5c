"""Compare two versions of a procedure: steps added, removed, replaced (paired guesses), changed, transitions.

A step present in both versions under the same id is compared field by field. The steps left over
(removed from the first, added in the second) are then paired, in this order, each pairing a guess
labelled with how it was made:
1. the same id after normalisation (case, spaces, punctuation, diacritics: 'S 04' ~ 's04');
2. the same name (compare_key: Unicode NFC, spaces, case);
3. the same unit and the same place in the graph: a shared predecessor or successor (through the
   pairings already made), the closest position in the step list breaking ties.
Pairing is one to one, greedy, in the first version's step order. Transitions are compared after
renaming the first version's paired steps to their partners, so a replaced step does not also show
up as transitions removed and added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from reconcile.util.normalize import compare_key, fold
from reconcile.workflow.catalog import Step, WorkflowVersion

COMPARED = ("name", "unit", "days", "final", "may_end", "start", "side_of")


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str  # one of COMPARED
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class ChangedStep:
    step: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class Replacement:
    removed: str  # step id in the first version
    added: str  # step id in the second version
    paired_by: str  # "id" | "name" | "unit+position"
    why: str  # one line for people: what made the pairing
    changes: tuple[FieldChange, ...]
    guess: bool = True


@dataclass(frozen=True, slots=True)
class VersionDiff:
    procedure: str
    version_a: int
    version_b: int
    added: tuple[str, ...]  # ids in b, not paired
    removed: tuple[str, ...]  # ids in a, not paired
    replaced: tuple[Replacement, ...]
    changed: tuple[ChangedStep, ...]  # same id in both versions, some field differs
    transitions_added: tuple[tuple[str, str], ...]  # in b's ids
    transitions_removed: tuple[tuple[str, str], ...]  # in a's ids

    @property
    def affected_steps(self) -> tuple[str, ...]:
        """Steps of the first version whose dossiers the change touches: removed, replaced, changed."""
        return (*self.removed, *(r.removed for r in self.replaced), *(c.step for c in self.changed))

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.replaced or self.changed
                    or self.transitions_added or self.transitions_removed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["transitions_added"] = [list(t) for t in self.transitions_added]
        data["transitions_removed"] = [list(t) for t in self.transitions_removed]
        return data


def diff_versions(a: WorkflowVersion, b: WorkflowVersion) -> VersionDiff:
    a_ids = {s.id for s in a.steps}
    b_ids = {s.id for s in b.steps}
    a_index = {s.id: i for i, s in enumerate(a.steps)}
    b_index = {s.id: i for i, s in enumerate(b.steps)}
    removed = [s for s in a.steps if s.id not in b_ids]
    added = [s for s in b.steps if s.id not in a_ids]
    partner: dict[str, str] = {s: s for s in a_ids & b_ids}  # a id -> b id
    replaced: list[Replacement] = []

    def pair(rule: str, match: Callable[[Step, list[Step]], tuple[Step, str] | None]) -> None:
        for old in list(removed):
            found = match(old, added)
            if found is not None:
                new, why = found
                removed.remove(old)
                added.remove(new)
                partner[old.id] = new.id
                replaced.append(Replacement(old.id, new.id, rule, why, _changes(old, new)))

    def same_id(old: Step, pool: list[Step]) -> tuple[Step, str] | None:
        key = fold(old.id)
        new = next((s for s in pool if key and fold(s.id) == key), None)
        return (new, f"same id after normalisation ('{old.id}' ~ '{new.id}')") if new else None

    def same_name(old: Step, pool: list[Step]) -> tuple[Step, str] | None:
        key = compare_key(old.name)
        new = next((s for s in pool if key and compare_key(s.name) == key), None)
        return (new, f"same name '{new.name}'") if new else None

    a_pred = _predecessors(a)
    b_pred = _predecessors(b)

    def same_place(old: Step, pool: list[Step]) -> tuple[Step, str] | None:
        before = {partner[p] for p in a_pred[old.id] if p in partner}
        after = {partner[n] for n in old.next if n in partner}
        best: tuple[int, int, Step, set[str], set[str]] | None = None
        for new in pool:
            if new.unit is None or new.unit != old.unit:
                continue
            shared_before = before & set(b_pred[new.id])
            shared_after = after & set(new.next)
            shared = len(shared_before) + len(shared_after)
            if not shared:
                continue
            rank = (-shared, abs(a_index[old.id] - b_index[new.id]))
            if best is None or rank < best[:2]:
                best = (*rank, new, shared_before, shared_after)
        if best is None:
            return None
        new, shared_before, shared_after = best[2], best[3], best[4]
        place = ", ".join(filter(None, (
            f"after {', '.join(sorted(shared_before))}" if shared_before else "",
            f"before {', '.join(sorted(shared_after))}" if shared_after else "",
        )))
        return new, f"same unit '{new.unit}' and same place ({place})"

    pair("id", same_id)
    pair("name", same_name)
    pair("unit+position", same_place)

    changed = []
    for old in a.steps:
        new = b.step(old.id)
        if new is not None and (changes := _changes(old, new)):
            changed.append(ChangedStep(old.id, changes))

    b_edges = {(s.id, t) for s in b.steps for t in s.next}
    a_edges = [(s.id, t) for s in a.steps for t in s.next]
    renamed = {(partner.get(s, s), partner.get(t, t)) for s, t in a_edges}
    transitions_removed = tuple(e for e in a_edges if (partner.get(e[0], e[0]), partner.get(e[1], e[1])) not in b_edges)
    transitions_added = tuple((s.id, t) for s in b.steps for t in s.next if (s.id, t) not in renamed)

    return VersionDiff(
        procedure=a.procedure, version_a=a.version, version_b=b.version,
        added=tuple(s.id for s in added), removed=tuple(s.id for s in removed),
        replaced=tuple(sorted(replaced, key=lambda r: a_index[r.removed])),
        changed=tuple(changed),
        transitions_added=transitions_added, transitions_removed=transitions_removed,
    )


def _changes(old: Step, new: Step) -> tuple[FieldChange, ...]:
    """The compared fields that differ, in COMPARED order, with the values as written. DeepDiff finds
    them; names are compared as compare_key sees them, numbers by value (a days of 5 equals 5.0)."""
    before, after = _compared(old), _compared(new)
    if before == after:  # most steps: DeepDiff costs ~30x a dict comparison, so only where something differs
        return ()
    from deepdiff import DeepDiff  # imported here: it takes about a second, which a plan with no edits never pays

    found = DeepDiff(before, after, ignore_numeric_type_changes=True, view="tree")
    differ = {level.path(output_format="list")[0] for levels in found.values() for level in levels}
    return tuple(FieldChange(f, getattr(old, f), getattr(new, f)) for f in COMPARED if f in differ)


def _compared(s: Step) -> dict[str, Any]:
    return {f: compare_key(s.name) if f == "name" else getattr(s, f) for f in COMPARED}


def _predecessors(v: WorkflowVersion) -> dict[str, list[str]]:
    pred: dict[str, list[str]] = {s.id: [] for s in v.steps}
    for s in v.steps:
        for t in s.next:
            pred.setdefault(t, []).append(s.id)
    return pred
