"""Convert one BPMN 2.0 process (Activiti, Flowable, Camunda 7/8, bpmn-js exports) into a catalog version.

Tasks and call activities become steps; events, gateways and sequence flows become transitions, read
as the standard and the engines read them:
- a step's `next` are the steps reachable from it through gateways and events without passing another
  step; a link throw event continues at the link catch event of the same name; an interrupting boundary
  event is a way out of its task;
- a flow node with no outgoing sequence flow ends its token there (an implicit end), with a warning;
- `final` is the result step: every path after it reaches an end with no other task. A step after
  which the process may end on one branch only (a rejection) gets `may_end`, and counts as a way to
  the end, but a dossier waiting there is still in progress;
- a non-interrupting boundary event opens a side path: not a way out of its task, its timer is not
  the task's duration, and the side path's first steps get `side_of: TASK` (never final because of it);
- the entries are the first steps after every start event (else, with no start event, after every node
  no flow leads to); several entries are each marked `start`;
- event subprocesses and compensation handlers are left out, with a warning naming them.

Precedence (the first that gives a value wins):
- procedure: the `procedure` argument, the sidecar's `procedure`, the process id;
- name: the sidecar's `name`, the process name, the name of the pool (participant) holding it, its id;
- version: the `version` argument, the sidecar's `version`, 1;
- a step's unit: candidate groups (a `candidateGroups` attribute in any namespace, or Camunda 8
  `zeebe:assignmentDefinition candidateGroups`; the first group when several), then the groups of the
  standard's `potentialOwner`/`humanPerformer` expressions (`group(X)`; a bare name in potentialOwner),
  then the innermost named lane, then the sidecar's unit, then the pool's name, then the assignee (the
  `assignee` attribute, `zeebe:assignmentDefinition assignee`, a `user(X)` or a humanPerformer's bare
  name). Expressions (`${...}`, `#{...}`, `=...`) are skipped with a warning; an element id is never a
  unit. Candidate groups come first because the engine routes tasks with them; a lane or a pool is only
  a drawing, and an assignee is a person, not a unit.
- a step's working days: a `dueDate` duration on the task (activiti:/camunda:/flowable:, or
  `zeebe:taskSchedule dueDate`), then an interrupting timer boundary event's `timeDuration` on it, then
  the sidecar, else 0 (one warning per file names those steps). ISO 8601 durations: days and weeks
  (7 days) count as given, hours as 8 to the working day (PT4H = 0.5); years and months are refused with
  a warning.
- a step's name: the task's name, then the sidecar's, then its id (with a warning).
When the BPMN and the sidecar disagree on a step's unit (from groups or lanes), days or name, the BPMN
wins with a warning. A parallel join is read as an exclusive one (each branch leads on by itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from lxml import etree

from reconcile import errors

from reconcile.util import yamlio
from reconcile.workflow.model import MAX_DAYS, VERSION_KEYS, reachable
from reconcile.util.normalize import normalize_text

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"

STEP_KINDS = frozenset({
    "task", "userTask", "serviceTask", "manualTask", "scriptTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity",
})
SUBPROCESS_KINDS = frozenset({"subProcess", "transaction", "adHocSubProcess"})  # a step; insides not imported
PASS_KINDS = frozenset({
    "startEvent", "endEvent", "exclusiveGateway", "parallelGateway", "inclusiveGateway",
    "eventBasedGateway", "complexGateway", "intermediateCatchEvent", "intermediateThrowEvent",
})
FLOW_KINDS = STEP_KINDS | SUBPROCESS_KINDS | PASS_KINDS | {"boundaryEvent"}
# Process children that carry no step or transition and are dropped without a word.
QUIET_KINDS = frozenset({
    "documentation", "extensionElements", "laneSet", "sequenceFlow", "textAnnotation", "association",
})
HOURS_PER_DAY = 8
SHOWN_IDS = 10  # a warning about many steps names this many
GROUP_LISTS = {"candidateGroups": "candidate groups", "potentialOwner": "potentialOwner groups"}

SIDECAR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **VERSION_KEYS,
        "process": {"type": "string", "minLength": 1},
        "steps": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "days": {"type": "number", "minimum": 0, "maximum": MAX_DAYS},
                    "unit": {"type": "string", "minLength": 1},
                    "name": {"type": "string", "minLength": 1},
                },
            },
        },
    },
}
SIDECAR_HINT = ("Hint: a sidecar holds procedure, name, field, version, valid_from, process and steps: "
                "{TASK_ID: {days, unit, name}}.")
PICK_HINT = "Hint: pick one with --process ID (in a catalog folder: process: ID in the sidecar v<N>.bpmn.yaml)."
EXPORT_HINT = "Hint: open the file in a BPMN modeller and export it again."
_SIDECAR = Draft202012Validator(SIDECAR_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
_DURATION = re.compile(
    r"^P(?:(?P<y>\d+(?:[.,]\d+)?)Y)?(?:(?P<mo>\d+(?:[.,]\d+)?)M)?(?:(?P<w>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<d>\d+(?:[.,]\d+)?)D)?(?:T(?:(?P<h>\d+(?:[.,]\d+)?)H)?(?:(?P<mi>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?$"
)
_ASSIGNMENT = re.compile(r"^(user|group)\((.*)\)$")


@dataclass(frozen=True, slots=True)
class ImportedBpmn:
    doc: dict[str, Any]  # the version-file shape of reconcile.workflow.catalog.SCHEMA
    warnings: tuple[str, ...]  # "<source>:<line>: ..." one line each
    step_lines: dict[str, int] = field(default_factory=dict)  # step id -> line of its element
    line: int = 0  # line of the <process> element: where messages about the whole version point


def parse_bpmn(data: bytes, source: str, *, procedure: str | None = None, version: int | None = None,
               process_id: str | None = None, sidecar: Mapping[str, Any] | None = None) -> ImportedBpmn:
    """One catalog version from BPMN XML bytes: the process `process_id`, else the one picked as the
    module says; BadInput (every problem, one line each) when unusable."""
    side = dict(sidecar or {})
    _check_sidecar(side, f"sidecar of {source}")
    root = _parse_xml(data, source)
    process = _pick_process(root, source, process_id or side.get("process"))
    warnings: list[str] = []
    graph = _Graph.build(process, source, warnings)
    shape = graph.shape(warnings)

    side_steps: dict[str, dict[str, Any]] = side.get("steps") or {}
    pool = _participant_name(root, process)
    steps, no_days = [], []
    for node in shape.order:
        step = _step(graph.nodes[node], node, graph, pool, source, side_steps.get(node, {}), warnings)
        if step["days"] is None:
            no_days.append(node)
            step["days"] = 0
        steps.append({**step, **shape.flags(node)})
    if not any(s["final"] or s.get("may_end") for s in steps):
        raise errors.BadInput(f"{source}:{process.sourceline}: no path of process '{process.get('id')}' reaches an "
                              "end: every task leads on to another for ever. Hint: connect the task that ends the "
                              "procedure to an end event in the modeller.")
    if no_days:
        warnings.append(f"{source}:{process.sourceline}: {_count(len(no_days), 'step')} of {len(steps)} "
                        f"{'has' if len(no_days) == 1 else 'have'} no duration (no dueDate, interrupting timer or "
                        f"sidecar entry), so {'its' if len(no_days) == 1 else 'their'} days are set to 0: "
                        f"{_ids(no_days)}.")
    for unknown in sorted(set(side_steps) - {s["id"] for s in steps}):
        warnings.append(f"{source}:{process.sourceline}: the sidecar describes step '{unknown}', "
                        f"which process '{process.get('id')}' does not have; ignored.")

    doc: dict[str, Any] = {
        "procedure": procedure or side.get("procedure") or process.get("id"),
        "name": side.get("name") or _text(process.get("name")) or pool or process.get("id"),
    }
    if side.get("field"):
        doc["field"] = side["field"]
    doc["version"] = version if version is not None else int(side.get("version", 1))
    if side.get("valid_from"):
        doc["valid_from"] = str(side["valid_from"])
    doc["steps"] = steps
    lines = {node: graph.nodes[node].sourceline or 0 for node in shape.order}
    return ImportedBpmn(doc, tuple(sorted(warnings, key=lambda w: line_of(w, source))), lines,
                        process.sourceline or 0)


def load_sidecar(path: str) -> dict[str, Any]:
    """Read and check a sidecar YAML file (durations, units, names per task id), file:line:col."""
    node, data = yamlio.load(path)
    data = {} if data is None else data
    if not isinstance(data, dict):
        _check_sidecar(data, path)
    problems = yamlio.schema_problems(path, node, _SIDECAR, data, SIDECAR_HINT)
    errors.collect(problems, f"{path}: {len(problems)} problems in the sidecar.")
    return data


def to_yaml(doc: dict[str, Any]) -> str:
    """A version file a person can read and edit: catalog key order, one block per step."""
    order = ("procedure", "name", "field", "version", "valid_from")
    head = {k: doc[k] for k in order if doc.get(k) is not None}
    text = yaml.dump(head, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    steps = []
    for s in doc["steps"]:
        step = {"id": s["id"], "name": s["name"]}
        if s.get("unit") is not None:
            step["unit"] = s["unit"]
        step["days"] = _number(s["days"])
        for key in ("start", "side_of"):
            if s.get(key):
                step[key] = s[key]
        if s.get("next"):
            step["next"] = _Flow(s["next"])
        for key in ("final", "may_end"):
            if s.get(key):
                step[key] = True
        steps.append(step)
    return text + yaml.dump({"steps": steps}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


# ---------------------------------------------------------------- XML


def _parse_xml(data: bytes, source: str) -> etree._Element:
    """The document root. Whatever is well-formed XML parses: libxml2's namespace checks (a namespace
    URI holding a space, an undeclared prefix) are Namespaces-in-XML rules, not XML's, so they are let
    through; every other parser error refuses the file. Entities are never resolved."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True,
                             recover=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        root = None  # recover mode gave up; the error log says why
    fatal = [e for e in parser.error_log if e.domain_name != "NAMESPACE" and e.level_name in ("ERROR", "FATAL")]
    if fatal:
        first = fatal[0]
        message = first.message.strip().split(", line ")[0].rstrip(".")
        raise errors.BadInput(f"{source}:{first.line or 1}:{first.column or 1}: malformed XML: {message}. "
                              f"{EXPORT_HINT}")
    if root is None:
        raise errors.BadInput(f"{source}:1:1: empty document. Hint: export the process as BPMN 2.0 XML.")
    return root


def _pick_process(root: etree._Element, source: str, process_id: str | None) -> etree._Element:
    """The process named, else the only one, else the only one marked executable, else the only one
    holding a task; otherwise every pool is named in the refusal."""
    processes = list(root.iter(f"{{{BPMN_NS}}}process"))
    if not processes:
        raise errors.BadInput(f"{source}:{root.sourceline}: no BPMN <process> element (root <{_local(root)}>). "
                              "Hint: export a BPMN 2.0 process diagram, not a collaboration-only or DMN file.")
    listed = ", ".join(_pool(root, p) for p in processes)
    if process_id is not None:
        for p in processes:
            if p.get("id") == process_id:
                return p
        raise errors.BadInput(f"{source}:{processes[0].sourceline}: no process '{process_id}'; the processes here: "
                              f"{listed}. {PICK_HINT}")
    if len(processes) == 1:
        return _identified(processes[0], source)
    executable = [p for p in processes if p.get("isExecutable") == "true"]
    if len(executable) == 1:
        return _identified(executable[0], source)
    # Pools of outside parties (the applicant, another agency) are often empty processes.
    with_tasks = [p for p in processes if any(_local(c) in STEP_KINDS | SUBPROCESS_KINDS for c in p)]
    if len(with_tasks) == 1:
        return _identified(with_tasks[0], source)
    marked = "none" if not executable else f"{len(executable)}"
    holding = f"{len(with_tasks)} hold tasks" if with_tasks else "none holds a task"
    raise errors.BadInput(f"{source}:{processes[1].sourceline}: {len(processes)} processes, {marked} marked "
                          f"isExecutable=\"true\" and {holding}: {listed}. {PICK_HINT}")


def _identified(process: etree._Element, source: str) -> etree._Element:
    if not process.get("id"):
        raise errors.BadInput(f"{source}:{process.sourceline}: the <process> element has no id. Hint: give the "
                              "process an id in the modeller (it is the procedure's key).")
    return process


def _pool(root: etree._Element, process: etree._Element) -> str:
    """A process as a person finds it in the modeller: 'pool name' (id), or its id alone."""
    name = _participant_name(root, process) or _text(process.get("name"))
    return f"'{name}' ({process.get('id')})" if name else str(process.get("id"))


def _participant_name(root: etree._Element, process: etree._Element) -> str | None:
    for part in root.iter(f"{{{BPMN_NS}}}participant"):
        if part.get("processRef") == process.get("id"):
            return _text(part.get("name"))
    return None


def line_of(message: str, source: str) -> int:
    """The line a `source:line: ...` message points at (0 when it names none), for sorting."""
    head = message[len(source) + 1:].split(":", 1)[0]
    return int(head) if head.isdigit() else 0


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _text(raw: str | None) -> str | None:
    return normalize_text(raw)


def _definitions(el: etree._Element) -> list[str]:
    """The event definitions of an event: ['timer'], ['message', 'signal'], [] for a plain one."""
    return [_local(d).removesuffix("EventDefinition") for d in el if _local(d).endswith("EventDefinition")]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _ids(ids: Iterable[str]) -> str:
    ids = list(ids)
    shown = ", ".join(f"'{i}'" for i in ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


# ---------------------------------------------------------------- the flow graph


@dataclass
class _Graph:
    source: str
    process_id: str
    nodes: dict[str, etree._Element]  # flow node id -> element (direct children of the process)
    steps: list[str]  # step ids in document order
    outgoing: dict[str, list[str]]  # sequence flows, link continuations, task -> interrupting boundary event
    ends: frozenset[str]  # nodes where a token ends: end events, and nodes no sequence flow leaves
    side: dict[str, str]  # non-interrupting boundary event -> the task it is attached to
    boundaries: dict[str, list[etree._Element]]  # task id -> its interrupting boundary events
    lanes: dict[str, str]  # flow node id -> its innermost named lane
    step_set: frozenset[str] = frozenset()

    @classmethod
    def build(cls, process: etree._Element, source: str, warnings: list[str]) -> _Graph:
        problems: list[str] = []
        nodes: dict[str, etree._Element] = {}
        left_out: set[str] = set()  # compensation handlers, event subprocesses: not part of the flow
        first_line: dict[str, int] = {}
        steps: list[str] = []
        flows: list[etree._Element] = []
        pid = str(process.get("id"))
        for el in process:
            kind = _local(el)
            if not kind:
                continue
            node = el.get("id") or "(no id)"
            if kind in FLOW_KINDS:
                if not el.get("id"):
                    problems.append(f"{source}:{el.sourceline}: {kind} with no id. Hint: give every element an "
                                    "id in the modeller (flows refer to them by id).")
                    continue
                if node in first_line:
                    problems.append(f"{source}:{el.sourceline}: duplicate element id '{node}'; first at line "
                                    f"{first_line[node]}. Hint: element ids must be unique.")
                    continue
                first_line[node] = el.sourceline or 0
                if _left_out(el, kind, node, source, warnings):
                    left_out.add(node)
                    continue
                nodes[node] = el
                if kind in STEP_KINDS | SUBPROCESS_KINDS:
                    steps.append(node)
                if kind in SUBPROCESS_KINDS:
                    inner = sum(1 for c in el.iter() if _local(c) in STEP_KINDS | SUBPROCESS_KINDS) - 1
                    warnings.append(f"{source}:{el.sourceline}: {kind} '{node}' imported as one step; "
                                    f"its {inner} inner task(s) are not imported.")
            elif kind == "sequenceFlow":
                flows.append(el)
            elif kind not in QUIET_KINDS:
                warnings.append(f"{source}:{el.sourceline}: {kind} '{node}' not imported "
                                "(the catalog has no place for it).")

        for node in [n for n, el in nodes.items() if el.get("attachedToRef") in left_out]:
            left_out.add(node)  # a boundary event of what was left out goes with it
            del nodes[node]
        outgoing: dict[str, list[str]] = {n: [] for n in nodes}
        flowing: set[str] = set()  # nodes a sequence flow or a link leaves
        for f in flows:
            ends = [(end, f.get(f"{end}Ref")) for end in ("source", "target")]
            if any(ref in left_out for _, ref in ends):
                continue  # part of what was left out, with its warning
            bad = [(end, ref) for end, ref in ends if ref not in nodes]
            for end, ref in bad:
                what = f"has no {end}Ref" if ref is None else f"{end} '{ref}': no such element in process '{pid}'"
                problems.append(f"{source}:{f.sourceline}: sequence flow '{f.get('id')}' {what}. "
                                "Hint: reconnect the flow in the modeller.")
            if not bad:
                outgoing[f.get("sourceRef")].append(f.get("targetRef"))
                flowing.add(f.get("sourceRef"))
        problems += _link(nodes, outgoing, flowing, source, pid)

        side: dict[str, str] = {}
        boundaries: dict[str, list[etree._Element]] = {}
        for node, el in nodes.items():
            if _local(el) != "boundaryEvent":
                continue
            task = el.get("attachedToRef")
            if task not in nodes:
                problems.append(f"{source}:{el.sourceline}: boundary event '{node}' is attached to '{task}': no such "
                                f"element in process '{pid}'. Hint: attach it to a task in the modeller.")
            elif el.get("cancelActivity") == "false":
                side[node] = task
            else:
                outgoing[task].append(node)  # the event cancels the task: a way out of it
                boundaries.setdefault(task, []).append(el)
        problems.sort(key=lambda p: line_of(p, source))
        errors.collect(problems, f"{source}: {len(problems)} problems in the BPMN process '{pid}'.")

        ends = frozenset(n for n, el in nodes.items() if _local(el) == "endEvent" or n not in flowing)
        for node in sorted(ends - set(side), key=lambda n: nodes[n].sourceline or 0):
            kind = _local(nodes[node])
            if kind != "endEvent":
                warnings.append(f"{source}:{nodes[node].sourceline}: {kind} '{node}' has no outgoing sequence flow: "
                                "its token ends there (an implicit end).")
        if not steps:
            raise errors.BadInput(f"{source}:{process.sourceline}: process '{pid}' has no task: a catalog version "
                                  "needs at least one step. Hint: export the process that holds the procedure's "
                                  "tasks.")
        lanes: dict[str, str] = {}
        for lane in process.iter(f"{{{BPMN_NS}}}lane"):  # outer lanes first: the innermost named one wins
            named = (_text(x.get("name")) for x in (lane, *lane.iterancestors(f"{{{BPMN_NS}}}lane")))
            label = next((name for name in named if name), None)  # an unnamed lane: the lane around it
            for ref in lane.iterchildren(f"{{{BPMN_NS}}}flowNodeRef") if label else ():
                lanes[(ref.text or "").strip()] = label
        return cls(source, pid, nodes, steps, outgoing, ends, side, boundaries, lanes, frozenset(steps))

    def exits(self, node: str) -> tuple[list[str], bool]:
        """Steps reachable from `node` through non-step nodes (in flow order), and whether an end is."""
        found: list[str] = []
        ends = node in self.ends
        seen: set[str] = set()
        todo = list(reversed(self.outgoing[node]))
        while todo:
            here = todo.pop()
            if here in seen:
                continue
            seen.add(here)
            if here in self.step_set:
                found.append(here)
            else:
                ends = ends or here in self.ends
                todo.extend(reversed(self.outgoing[here]))
        return found, ends

    def starts(self) -> list[str]:
        """Start events; with none, every node no flow leads to (the standard's implicit start)."""
        found = [n for n, el in self.nodes.items() if _local(el) == "startEvent"]
        if found:
            return found
        targets = {t for out in self.outgoing.values() for t in out}
        return [n for n, el in self.nodes.items() if n not in targets and _local(el) != "boundaryEvent"]

    def shape(self, warnings: list[str]) -> _Shape:
        """Entries, side paths, and each step's next, final and may_end; warnings name side paths."""
        exits = {s: self.exits(s) for s in self.steps}
        entries: list[str] = []
        for start in self.starts():
            entries += [s for s in self.exits(start)[0] + ([start] if start in self.step_set else [])
                        if s not in entries]
        following = {s: exits[s][0] for s in self.steps}
        main = reachable(following, entries)
        side_of: dict[str, str] = {}
        for event, task in self.side.items():
            el = self.nodes[event]
            first = self.exits(event)[0]
            side_of.update({s: task for s in first if s not in main and s not in side_of})
            kinds = ", ".join(_definitions(el)) or "none"
            path = f"opens a side path to {_ids(first)}" if first else "leads to no task"
            timer = "; its timer is not the task's duration" if "timer" in _definitions(el) else ""
            warnings.append(f"{self.source}:{el.sourceline}: non-interrupting boundary event '{event}' ({kinds}) on "
                            f"'{task}' {path}: not a way out of the task{timer}.")
        side_only = reachable(following, side_of) - main
        order = self.order()
        if not entries:
            warnings.append(f"{self.source}:{self.nodes[order[0]].sourceline}: no task follows a start event; the "
                            f"first task in the file, '{order[0]}', is taken as the first step.")
        return _Shape(order, exits, entries if len(entries) > 1 else [], side_of, side_only)

    def order(self) -> list[str]:
        """Steps breadth-first from the starts, then any unreached steps in document order."""
        order: list[str] = []
        seen: set[str] = set()
        queue = self.starts()
        while queue:
            following: list[str] = []
            for node in queue:
                if node in seen:
                    continue
                seen.add(node)
                if node in self.step_set:
                    order.append(node)
                following.extend(self.outgoing[node])
            queue = following
        return order + [s for s in self.steps if s not in seen]


@dataclass(frozen=True, slots=True)
class _Shape:
    order: list[str]
    exits: dict[str, tuple[list[str], bool]]  # step -> (next steps, whether an end is reachable)
    entries: list[str]  # marked `start` (only when there are several)
    side_of: dict[str, str]  # first step of a side path -> the task its boundary event is attached to
    side_only: set[str]  # steps reached only through side paths: never final

    def flags(self, step: str) -> dict[str, Any]:
        nxt, ends = self.exits[step]
        out: dict[str, Any] = {"next": nxt}
        if step in self.entries:
            out["start"] = True
        if step in self.side_of:
            out["side_of"] = self.side_of[step]
        out["final"] = ends and not nxt and step not in self.side_only
        if ends and not out["final"]:
            out["may_end"] = True
        return out


def _left_out(el: etree._Element, kind: str, node: str, source: str, warnings: list[str]) -> bool:
    """Compensation handlers and event subprocesses run only when something is thrown, beside the flow:
    not steps, and not part of the graph (a warning says so); a compensation boundary event goes with them."""
    at = f"{source}:{el.sourceline}"
    if el.get("isForCompensation") == "true":
        warnings.append(f"{at}: compensation handler '{node}' ({kind}) not imported: it runs only when "
                        "compensation is thrown.")
        return True
    if kind in SUBPROCESS_KINDS and el.get("triggeredByEvent") == "true":
        triggers = []
        for start in el.iterchildren(f"{{{BPMN_NS}}}startEvent"):
            what = "/".join(_definitions(start)) or "none"
            triggers.append(what if start.get("isInterrupting") != "false" else f"{what}, non-interrupting")
        inner = sum(1 for c in el.iter() if _local(c) in STEP_KINDS | SUBPROCESS_KINDS) - 1
        trigger = f"triggered by {'; '.join(triggers)}" if triggers else "with no start event"
        warnings.append(f"{at}: event subprocess '{node}' ({trigger}) "
                        f"not imported: it runs only when its trigger fires; its {inner} inner task(s) are not "
                        "steps.")
        return True
    return kind == "boundaryEvent" and "compensate" in _definitions(el)


def _link(nodes: dict[str, etree._Element], outgoing: dict[str, list[str]], flowing: set[str], source: str,
          pid: str) -> list[str]:
    """Each link throw event continues at the link catch events of the same name (the link's name, else
    the event's); problems for a throw event no catch event answers."""
    catches: dict[str | None, list[str]] = {}
    throws: list[tuple[str, str | None]] = []
    for node, el in nodes.items():
        link = el.find(f"{{{BPMN_NS}}}linkEventDefinition")
        if link is None:
            continue
        name = link.get("name") if link.get("name") is not None else el.get("name")
        if _local(el) == "intermediateCatchEvent":
            catches.setdefault(name, []).append(node)
        elif _local(el) == "intermediateThrowEvent":
            throws.append((node, name))
    problems = []
    for node, name in throws:
        if name not in catches:
            problems.append(f"{source}:{nodes[node].sourceline}: link throw event '{node}' (link '{name}'): no link "
                            f"catch event of that name in process '{pid}'. Hint: give the catch event's link the "
                            "same name in the modeller.")
            continue
        outgoing[node] += catches[name]
        flowing.add(node)
    return problems


def _step(el: etree._Element, node: str, graph: _Graph, pool: str | None, source: str, side: Mapping[str, Any],
          warnings: list[str]) -> dict[str, Any]:
    """The step's id, name, unit and days (None when nothing gives them)."""
    at = f"{source}:{el.sourceline}"
    kind = _local(el)
    name = _text(el.get("name"))
    if name is None:
        name = side.get("name") or node
        if "name" not in side:
            warnings.append(f"{at}: {kind} '{node}' has no name; its id is used.")
    elif side.get("name") and side["name"] != name:
        warnings.append(f"{at}: step '{node}': the sidecar names it '{side['name']}', the BPMN '{name}'; "
                        "the BPMN wins.")

    unit, source_of_unit = _unit(el, graph, at, warnings)
    if unit is None:  # a pool names the organisation and an assignee is a person: the sidecar's unit is better
        unit = side.get("unit") or _pool_or_person(el, pool, at, warnings)
    elif side.get("unit") and side["unit"] != unit:
        warnings.append(f"{at}: step '{node}': the sidecar puts it in unit '{side['unit']}', the BPMN "
                        f"({source_of_unit}) in '{unit}'; the BPMN wins.")

    days = _days(el, graph.boundaries.get(node, []), at, warnings)
    if days is None:
        days = side.get("days")
    elif side.get("days") is not None and float(side["days"]) != days:
        warnings.append(f"{at}: step '{node}': the sidecar gives {side['days']} days, the BPMN {_number(days)}; "
                        "the BPMN wins.")

    step: dict[str, Any] = {"id": node, "name": name}
    if unit is not None:  # the version-file shape has no null unit: the key is left out
        step["unit"] = unit
    return {**step, "days": None if days is None else _number(days)}


def _attr(el: etree._Element, attr: str) -> str | None:
    """An engine extension attribute in any namespace (activiti:, camunda:, flowable:, or a vendor's own)."""
    for key, value in el.attrib.items():
        if etree.QName(key).localname == attr and value.strip():
            return value.strip()
    return None


def _zeebe(el: etree._Element, child: str, attr: str) -> str | None:
    found = el.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}{child}")
    value = found.get(attr) if found is not None else None
    return value.strip() if value and value.strip() else None


def _performers(el: etree._Element, want: str) -> str | None:
    """`group` or `user` entries of the task's potentialOwner/humanPerformer expressions, comma-joined:
    `group(X)`, `user(X)`; a bare name is a group in potentialOwner and a user in humanPerformer (as the
    engines read them)."""
    found = []
    for role, bare in (("potentialOwner", "group"), ("humanPerformer", "user")):
        for expr in el.iterfind(f"{{{BPMN_NS}}}{role}/{{{BPMN_NS}}}resourceAssignmentExpression/"
                                f"{{{BPMN_NS}}}formalExpression"):
            for item in (expr.text or "").split(","):
                item = item.strip().strip("'\"")
                m = _ASSIGNMENT.match(item)
                kind, value = (m[1], m[2].strip()) if m else (bare, item)
                if kind == want and value:
                    found.append(value)
    return ",".join(found) or None


def _unit(el: etree._Element, graph: _Graph, at: str, warnings: list[str]) -> tuple[str | None, str | None]:
    """The step's unit from the BPMN's groups and lanes, and where it came from."""
    node = str(el.get("id"))
    candidates = (
        ("candidateGroups", _attr(el, "candidateGroups") or _zeebe(el, "assignmentDefinition", "candidateGroups")),
        ("potentialOwner", _performers(el, "group")),
        ("lane", graph.lanes.get(node)),
    )
    return _first_unit(candidates, node, at, warnings)


def _pool_or_person(el: etree._Element, pool: str | None, at: str, warnings: list[str]) -> str | None:
    """With no group, lane or sidecar unit: the pool's name, else the assignee."""
    assignee = _attr(el, "assignee") or _zeebe(el, "assignmentDefinition", "assignee") or _performers(el, "user")
    return _first_unit((("pool", pool), ("assignee", assignee)), str(el.get("id")), at, warnings)[0]


def _first_unit(candidates: Iterable[tuple[str, str | None]], node: str, at: str, warnings: list[str]
                ) -> tuple[str | None, str | None]:
    for what, value in candidates:
        if value is None:
            continue
        listed = what in GROUP_LISTS  # comma-separated groups; a lane's or pool's name is one name
        groups = [g.strip() for g in value.split(",") if g.strip()] if listed else [value]
        groups = [g for g in groups if not _expression(g, what, node, at, warnings)]
        if len(groups) > 1:
            warnings.append(f"{at}: step '{node}' has {GROUP_LISTS[what]} {', '.join(groups)}; the first, "
                            f"'{groups[0]}', is its unit.")
        if groups:
            return groups[0], what
    return None, None


def _expression(value: str, what: str, node: str, at: str, warnings: list[str]) -> bool:
    if "${" in value or "#{" in value or value.startswith("="):
        warnings.append(f"{at}: step '{node}': {what} '{value}' is an expression, not a unit; skipped.")
        return True
    return False


def _days(el: etree._Element, boundaries: list[etree._Element], at: str, warnings: list[str]) -> float | None:
    """Working days from the task's dueDate, else its interrupting timer boundary events."""
    node = el.get("id")
    due = _attr(el, "dueDate") or _zeebe(el, "taskSchedule", "dueDate")
    if due is not None:
        days = _duration_days(due)
        if days is not None:
            return days
        warnings.append(f"{at}: step '{node}': dueDate '{due}' is not a duration in days, weeks or hours "
                        f"(up to {MAX_DAYS} working days); ignored.")
    for ev in boundaries:
        timer = ev.find(f"{{{BPMN_NS}}}timerEventDefinition/{{{BPMN_NS}}}timeDuration")
        if timer is not None and timer.text:
            days = _duration_days(timer.text.strip())
            if days is not None:
                return days
            warnings.append(f"{at}: step '{node}': timer '{ev.get('id')}' duration '{timer.text.strip()}' is not "
                            f"a duration in days, weeks or hours (up to {MAX_DAYS} working days); ignored.")
    return None


def _duration_days(text: str) -> float | None:
    """Working days of an ISO 8601 duration; None for years/months (no fixed length), non-durations and
    more than MAX_DAYS (a typo, like a step's days in a version file)."""
    m = _DURATION.match(text.strip().upper())
    if not m or text.strip().upper() in ("P", "PT") or m["y"] or m["mo"]:
        return None
    part = {k: float(v.replace(",", ".")) if v else 0.0 for k, v in m.groupdict().items()}
    days = part["w"] * 7 + part["d"] + (part["h"] + part["mi"] / 60 + part["s"] / 3600) / HOURS_PER_DAY
    return days if days <= MAX_DAYS else None


def _number(x: Any) -> int | float:
    x = float(x)
    return int(x) if x.is_integer() else round(x, 4)


def _check_sidecar(data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise errors.BadInput(f"{where}: expected a mapping (procedure, name, version, steps: {{TASK_ID: "
                              "{days, unit, name}}).")
    problems = []
    for e in sorted(_SIDECAR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in e.absolute_path)
        problems.append(f"{where}: {path + ': ' if path else ''}{yamlio.schema_message(e)}. {SIDECAR_HINT}")
    errors.collect(problems, f"{where}: {len(problems)} problems in the sidecar.")


class _Flow(list):  # type: ignore[type-arg]
    """A list written on one line: next: [S02, S03]."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
