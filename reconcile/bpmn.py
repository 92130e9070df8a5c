"""Convert one BPMN 2.0 process (Activiti, Flowable, Camunda 7/8, bpmn-js exports) into a catalog version.

Tasks and call activities become steps; events, gateways and sequence flows become transitions: a
step's `next` are the steps reachable from it through gateways and events without passing another
step, and a step from which an end event is reachable that way is final.

Precedence (the first that gives a value wins):
- procedure: the `procedure` argument, the sidecar's `procedure`, the process id;
- name: the sidecar's `name`, the process name, the name of the pool (participant) holding it, its id;
- version: the `version` argument, the sidecar's `version`, 1;
- a step's unit: candidate groups (`candidateGroups` in the activiti:, camunda: or flowable:
  namespace, or Camunda 8 `zeebe:assignmentDefinition candidateGroups`; the first group when
  several), then the lane holding the task (its name, else its id), then the sidecar's unit, then
  the assignee (`assignee` attribute, or `zeebe:assignmentDefinition assignee`); expressions
  (`${...}`, `=...`) are skipped with a warning. Candidate groups come first because the engine routes tasks with them;
  a lane is only a drawing, and an assignee is a person, not a unit.
- a step's working days: a `dueDate` duration on the task (activiti:/camunda:/flowable:, or
  `zeebe:taskSchedule dueDate`), then a timer boundary event's `timeDuration` on it, then the
  sidecar, else 0 with a warning. ISO 8601 durations: days and weeks (7 days) count as given,
  hours as 8 to the working day (PT4H = 0.5); years and months are refused with a warning.
- a step's name: the task's name, then the sidecar's, then its id (with a warning).
When the BPMN and the sidecar disagree on a step's unit (from groups or lanes), days or name, the BPMN
wins with a warning. A parallel join is read as an exclusive one (each branch leads on by itself).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from lxml import etree

from reconcile import errors, yamlio
from reconcile.catalog import MAX_DAYS, VERSION_KEYS
from reconcile.normalize import normalize_text

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ENGINE_NS = {
    "activiti": "http://activiti.org/bpmn",
    "camunda": "http://camunda.org/schema/1.0/bpmn",
    "flowable": "http://flowable.org/bpmn",
}
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
# Process children that carry no step or transition and are dropped without a word.
QUIET_KINDS = frozenset({
    "documentation", "extensionElements", "laneSet", "sequenceFlow", "textAnnotation", "association",
    "boundaryEvent",  # handled with the task it is attached to
})
HOURS_PER_DAY = 8

SIDECAR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **VERSION_KEYS,
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
SIDECAR_HINT = ("Hint: a sidecar holds procedure, name, field, version, valid_from and steps: "
                "{TASK_ID: {days, unit, name}}.")
_SIDECAR = Draft202012Validator(SIDECAR_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
_DURATION = re.compile(
    r"^P(?:(?P<y>\d+(?:[.,]\d+)?)Y)?(?:(?P<mo>\d+(?:[.,]\d+)?)M)?(?:(?P<w>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<d>\d+(?:[.,]\d+)?)D)?(?:T(?:(?P<h>\d+(?:[.,]\d+)?)H)?(?:(?P<mi>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class ImportedBpmn:
    doc: dict[str, Any]  # the version-file shape of reconcile.catalog.SCHEMA
    warnings: tuple[str, ...]  # "<source>:<line>: ..." one line each
    step_lines: dict[str, int] = field(default_factory=dict)  # step id -> line of its element


def parse_bpmn(data: bytes, source: str, *, procedure: str | None = None, version: int | None = None,
               process_id: str | None = None, sidecar: Mapping[str, Any] | None = None) -> ImportedBpmn:
    """One catalog version from BPMN XML bytes; BadInput (every problem, one line each) when unusable."""
    side = dict(sidecar or {})
    _check_sidecar(side, f"sidecar of {source}")
    root = _parse_xml(data, source)
    process = _pick_process(root, source, process_id)
    warnings: list[str] = []
    graph = _Graph.build(process, source, warnings)

    side_steps: dict[str, dict[str, Any]] = side.get("steps") or {}
    steps = []
    for node in graph.step_order():
        el = graph.nodes[node]
        steps.append(_step(el, node, graph, source, side_steps.get(node, {}), warnings))
    for unknown in sorted(set(side_steps) - {s["id"] for s in steps}):
        warnings.append(f"{source}:{process.sourceline}: the sidecar describes step '{unknown}', "
                        f"which process '{process.get('id')}' does not have; ignored.")

    doc: dict[str, Any] = {
        "procedure": procedure or side.get("procedure") or process.get("id"),
        "name": side.get("name") or _text(process.get("name")) or _participant_name(root, process)
        or process.get("id"),
    }
    if side.get("field"):
        doc["field"] = side["field"]
    doc["version"] = version if version is not None else int(side.get("version", 1))
    if side.get("valid_from"):
        doc["valid_from"] = str(side["valid_from"])
    doc["steps"] = steps
    lines = {node: graph.nodes[node].sourceline or 0 for node in graph.step_order()}
    return ImportedBpmn(doc, tuple(sorted(warnings, key=lambda w: _line_of(w, source))), lines)


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
        if s.get("next"):
            step["next"] = _Flow(s["next"])
        if s.get("final"):
            step["final"] = True
        steps.append(step)
    return text + yaml.dump({"steps": steps}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


# ---------------------------------------------------------------- XML


def _parse_xml(data: bytes, source: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        line, col = e.position if e.position else (e.lineno or 1, 1)
        message = (e.msg or str(e)).split(", line ")[0].rstrip(".")
        raise errors.BadInput(f"{source}:{line}:{col}: malformed XML: {message}. "
                              "Hint: open the file in a BPMN modeller and export it again.") from None
    if root is None:
        raise errors.BadInput(f"{source}:1:1: empty document. Hint: export the process as BPMN 2.0 XML.")
    return root


def _pick_process(root: etree._Element, source: str, process_id: str | None) -> etree._Element:
    processes = list(root.iter(f"{{{BPMN_NS}}}process"))
    if not processes:
        raise errors.BadInput(f"{source}:{root.sourceline}: no BPMN <process> element (root <{_local(root)}>). "
                              "Hint: export a BPMN 2.0 process diagram, not a collaboration-only or DMN file.")
    if process_id is not None:
        for p in processes:
            if p.get("id") == process_id:
                return p
        raise errors.BadInput(f"{source}:{processes[0].sourceline}: no process '{process_id}'. "
                              f"Processes here: {', '.join(str(p.get('id')) for p in processes)}.")
    # Pools of outside parties (the applicant, another agency) are often empty processes.
    with_nodes = [p for p in processes if any(_local(c) in STEP_KINDS | SUBPROCESS_KINDS | PASS_KINDS
                                              for c in p)]
    if len(with_nodes) > 1:
        raise errors.BadInput(f"{source}:{with_nodes[1].sourceline}: {len(with_nodes)} processes "
                              f"({', '.join(str(p.get('id')) for p in with_nodes)}). "
                              "Hint: pick one with --process ID.")
    return with_nodes[0] if with_nodes else processes[0]


def _participant_name(root: etree._Element, process: etree._Element) -> str | None:
    for part in root.iter(f"{{{BPMN_NS}}}participant"):
        if part.get("processRef") == process.get("id"):
            return _text(part.get("name"))
    return None


def _line_of(message: str, source: str) -> int:
    head = message[len(source) + 1:].split(":", 1)[0]
    return int(head) if head.isdigit() else 0


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _text(raw: str | None) -> str | None:
    return normalize_text(raw)


# ---------------------------------------------------------------- the flow graph


@dataclass
class _Graph:
    source: str
    process_id: str
    nodes: dict[str, etree._Element]  # flow node id -> element (direct children of the process)
    steps: list[str]  # step ids in document order
    outgoing: dict[str, list[str]]
    boundaries: dict[str, list[etree._Element]]  # task id -> boundary events attached to it
    lanes: dict[str, str]  # flow node id -> its innermost lane's name (else id)
    step_set: frozenset[str] = frozenset()

    @classmethod
    def build(cls, process: etree._Element, source: str, warnings: list[str]) -> _Graph:
        problems: list[str] = []
        nodes: dict[str, etree._Element] = {}
        steps: list[str] = []
        flows: list[etree._Element] = []
        boundaries: dict[str, list[etree._Element]] = {}
        pid = str(process.get("id"))
        for el in process:
            kind = _local(el)
            if not kind:
                continue
            node = el.get("id") or "(no id)"
            if kind in STEP_KINDS | SUBPROCESS_KINDS | PASS_KINDS or kind == "boundaryEvent":
                if node in nodes:
                    problems.append(f"{source}:{el.sourceline}: duplicate element id '{node}'; first at line "
                                    f"{nodes[node].sourceline}. Hint: element ids must be unique.")
                    continue
                nodes[node] = el
            if kind in STEP_KINDS | SUBPROCESS_KINDS:
                if el.get("isForCompensation") == "true":
                    warnings.append(f"{source}:{el.sourceline}: compensation handler '{node}' ({kind}) "
                                    "not imported: it runs only when compensation is thrown.")
                    continue
                steps.append(node)
                if kind in SUBPROCESS_KINDS:
                    inner = sum(1 for c in el.iter() if _local(c) in STEP_KINDS | SUBPROCESS_KINDS) - 1
                    warnings.append(f"{source}:{el.sourceline}: {kind} '{node}' imported as one step; "
                                    f"its {inner} inner task(s) are not imported.")
            elif kind == "sequenceFlow":
                flows.append(el)
            elif kind == "boundaryEvent":
                boundaries.setdefault(str(el.get("attachedToRef")), []).append(el)
            elif kind not in PASS_KINDS | QUIET_KINDS:
                warnings.append(f"{source}:{el.sourceline}: {kind} '{node}' not imported "
                                "(the catalog has no place for it).")

        outgoing: dict[str, list[str]] = {n: [] for n in nodes}
        leaves = {f.get("sourceRef") for f in flows}  # a broken flow is reported once, as broken
        for f in flows:
            fid, src, dst = f.get("id"), f.get("sourceRef"), f.get("targetRef")
            for end, ref in (("source", src), ("target", dst)):
                if ref not in nodes:
                    problems.append(f"{source}:{f.sourceline}: sequence flow '{fid}' {end} '{ref}': no such "
                                    f"element in process '{pid}'. Hint: reconnect the flow in the modeller.")
            if src in nodes and dst in nodes:
                outgoing[src].append(dst)
        for task, events in boundaries.items():
            for ev in events:
                if task not in nodes:
                    problems.append(f"{source}:{ev.sourceline}: boundary event '{ev.get('id')}' is attached to "
                                    f"'{task}': no such element in process '{pid}'.")
                    continue
                if outgoing[ev.get("id")]:
                    outgoing[task].append(ev.get("id"))  # a way out of the task
                kinds = [_local(d) for d in ev if _local(d).endswith("EventDefinition")]
                if kinds != ["timerEventDefinition"]:
                    what = ", ".join(k.removesuffix("EventDefinition") for k in kinds) or "none"
                    follow = ("its outgoing flow is followed as a way out of the task"
                              if outgoing[ev.get("id")] else "it has no outgoing flow; ignored")
                    warnings.append(f"{source}:{ev.sourceline}: boundary event '{ev.get('id')}' ({what}) on "
                                    f"'{task}': {follow}; its trigger is not modelled.")

        for node, el in nodes.items():
            kind = _local(el)
            if node not in leaves and kind not in ("endEvent", "boundaryEvent"):
                problems.append(f"{source}:{el.sourceline}: {kind} '{node}' has no outgoing sequence flow and "
                                "is not an end event. Hint: connect it to the next element or to an end event.")
        errors.collect(problems, f"{source}: {len(problems)} problems in the BPMN process '{pid}'.")
        lanes: dict[str, str] = {}
        for lane in process.iter(f"{{{BPMN_NS}}}lane"):  # outer lanes first: the innermost one wins
            label = _text(lane.get("name")) or str(lane.get("id"))
            for ref in lane.iterchildren(f"{{{BPMN_NS}}}flowNodeRef"):
                lanes[(ref.text or "").strip()] = label
        return cls(source, pid, nodes, steps, outgoing, boundaries, lanes, frozenset(steps))

    def exits(self, step: str) -> tuple[list[str], bool]:
        """Steps reachable from `step` through non-step nodes (in flow order), and whether an end event is."""
        found: list[str] = []
        final = False
        seen: set[str] = set()
        todo = list(reversed(self.outgoing[step]))
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            kind = _local(self.nodes[node])
            if node in self.step_set:
                found.append(node)
            else:
                final = final or kind == "endEvent"
                todo.extend(reversed(self.outgoing[node]))
        return found, final

    def step_order(self) -> list[str]:
        """Steps breadth-first from the start events, then any unreached steps in document order."""
        starts = [n for n, el in self.nodes.items() if _local(el) == "startEvent"]
        order: list[str] = []
        seen: set[str] = set()
        queue = starts
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


def _step(el: etree._Element, node: str, graph: _Graph, source: str, side: Mapping[str, Any],
          warnings: list[str]) -> dict[str, Any]:
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
    if side.get("unit") and source_of_unit == "assignee":
        unit = side["unit"]  # an assignee is a person: a unit named in the sidecar is the better answer
    elif unit is None:
        unit = side.get("unit")
    elif side.get("unit") and side["unit"] != unit:
        warnings.append(f"{at}: step '{node}': the sidecar puts it in unit '{side['unit']}', the BPMN "
                        f"({source_of_unit}) in '{unit}'; the BPMN wins.")

    days = _days(el, graph.boundaries.get(node, []), at, warnings)
    if days is None:
        days = side.get("days")
        if days is None:
            warnings.append(f"{at}: step '{node}' has no duration (no dueDate, timer or sidecar entry); "
                            "days set to 0.")
            days = 0
    elif side.get("days") is not None and float(side["days"]) != days:
        warnings.append(f"{at}: step '{node}': the sidecar gives {side['days']} days, the BPMN {_number(days)}; "
                        "the BPMN wins.")

    nxt, final = graph.exits(node)
    step: dict[str, Any] = {"id": node, "name": name}
    if unit is not None:  # the version-file shape has no null unit: the key is left out
        step["unit"] = unit
    return {**step, "days": _number(days), "next": nxt, "final": final}


def _engine_attr(el: etree._Element, attr: str) -> str | None:
    for ns in ENGINE_NS.values():
        if (value := el.get(f"{{{ns}}}{attr}")) is not None and value.strip():
            return value.strip()
    return None


def _zeebe(el: etree._Element, child: str, attr: str) -> str | None:
    found = el.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}{child}")
    value = found.get(attr) if found is not None else None
    return value.strip() if value and value.strip() else None


def _unit(el: etree._Element, graph: _Graph, at: str, warnings: list[str]) -> tuple[str | None, str | None]:
    """The step's unit and where it came from (candidateGroups, lane or assignee)."""
    node = str(el.get("id"))
    candidates = (
        ("candidateGroups", _engine_attr(el, "candidateGroups") or _zeebe(el, "assignmentDefinition",
                                                                         "candidateGroups")),
        ("lane", graph.lanes.get(node)),
        ("assignee", _engine_attr(el, "assignee") or _zeebe(el, "assignmentDefinition", "assignee")),
    )
    for what, value in candidates:
        if value is None:
            continue
        if "${" in value or "#{" in value or value.startswith("="):
            warnings.append(f"{at}: step '{node}': {what} '{value}' is an expression, not a unit; skipped.")
            continue
        groups = [g.strip() for g in value.split(",") if g.strip()] if what == "candidateGroups" else [value]
        if len(groups) > 1:
            warnings.append(f"{at}: step '{node}' has candidate groups {', '.join(groups)}; "
                            f"the first, '{groups[0]}', is its unit.")
        if groups:
            return groups[0], what
    return None, None


def _days(el: etree._Element, boundaries: list[etree._Element], at: str, warnings: list[str]) -> float | None:
    node = el.get("id")
    due = _engine_attr(el, "dueDate") or _zeebe(el, "taskSchedule", "dueDate")
    if due is not None:
        days = _duration_days(due)
        if days is not None:
            return days
        warnings.append(f"{at}: step '{node}': dueDate '{due}' is not a duration in days, weeks or hours; "
                        "ignored.")
    for ev in boundaries:
        timer = ev.find(f"{{{BPMN_NS}}}timerEventDefinition/{{{BPMN_NS}}}timeDuration")
        if timer is not None and timer.text:
            days = _duration_days(timer.text.strip())
            if days is not None:
                return days
            warnings.append(f"{at}: step '{node}': timer '{ev.get('id')}' duration '{timer.text.strip()}' is not "
                            "a duration in days, weeks or hours; ignored.")
    return None


def _duration_days(text: str) -> float | None:
    """Working days of an ISO 8601 duration; None for years/months (no fixed length) or non-durations."""
    m = _DURATION.match(text.strip().upper())
    if not m or text.strip().upper() in ("P", "PT") or m["y"] or m["mo"]:
        return None
    part = {k: float(v.replace(",", ".")) if v else 0.0 for k, v in m.groupdict().items()}
    return part["w"] * 7 + part["d"] + (part["h"] + part["mi"] / 60 + part["s"] / 3600) / HOURS_PER_DAY


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
