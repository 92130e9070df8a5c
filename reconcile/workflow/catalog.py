"""Load the workflow catalog (v<N>.yaml or v<N>.bpmn files below a folder) and validate it, file:line."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import yaml
from jsonschema import Draft202012Validator

from reconcile import errors

from reconcile.util import yamlio
from reconcile.util.normalize import compare_key
from reconcile.workflow.model import SCHEMA, Catalog, Step, WorkflowVersion, reachable

VERSION_FILE = re.compile(r"^v(\d+)\.(yaml|bpmn)$")
_VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
FORMAT_HINT = ('Hint: see "Workflow catalog" in docs/file-formats.md (procedure, name, version, steps: id, name, unit, '
               'days, next).')


# ---------------------------------------------------------------- loading (IO and messages)


@dataclass(frozen=True, slots=True)
class _Loaded:
    version: WorkflowVersion
    where: dict[str, str]  # "procedure" / "name" / "field" -> "path:line:col" of that value


def load_catalog(directory: str | os.PathLike[str]) -> Catalog:
    """Read and validate every version file below `directory`; one BadInput lists all errors."""
    shown = os.fspath(directory)
    root = Path(directory)
    example = os.path.join(shown, "land", "v1.yaml")
    expected = f"Expected workflow versions named v<N>.yaml below it (e.g. {example})."
    if not root.exists():
        raise errors.BadInput(f"{shown}: no such directory. {expected}")
    if not root.is_dir():
        raise errors.BadInput(f"{shown}: not a directory. {expected}")
    files = sorted(
        p.relative_to(root).parts
        for p in root.rglob("v*")
        if VERSION_FILE.match(p.name) and p.is_file()
    )
    if not files:
        raise errors.BadInput(f"{shown}: no workflow version files. {expected}")

    problems: list[str] = []
    warnings: list[str] = []
    loaded: list[_Loaded] = []
    for parts in files:
        path = os.path.join(shown, *parts)
        number = int(VERSION_FILE.match(parts[-1])[1])  # type: ignore[index]
        file_problems: list[str] = []
        load = _load_bpmn if path.endswith(".bpmn") else _load_file
        try:
            item = load(path, number, file_problems, warnings)
        except errors.BadInput as e:  # the file cannot be read or parsed: no version from it, its problems
            file_problems.extend(e.problems)
            item = None
        problems.extend(sorted(file_problems, key=lambda line: yamlio.position(line, path)))
        if item is not None:
            loaded.append(item)
    return _finish(loaded, problems, warnings, lambda n: f"{shown}: {n} problems in the workflow catalog.")


def catalog_from_docs(docs: Iterable[tuple[dict[str, Any], str]]) -> Catalog:
    """A catalog from already-parsed version documents (doc, where), validated like version files:
    one BadInput naming `where` lists every error; graph and naming warnings are kept."""
    return _catalog_from_docs((doc, where, {}, 0) for doc, where in docs)


def _catalog_from_docs(docs: Iterable[tuple[dict[str, Any], str, Mapping[str, int], int]]) -> Catalog:
    """(doc, where, step id -> line, line of the document's own element or 0) per version."""
    problems: list[str] = []
    warnings: list[str] = []
    loaded: list[_Loaded] = []
    for doc, where, lines, doc_line in docs:
        item = _check_doc(doc, where, lines, doc_line, None, problems, warnings)
        if item is not None:
            loaded.append(item)
    return _finish(loaded, problems, warnings, lambda n: f"{n} problems in the workflow versions.")


def _finish(loaded: list[_Loaded], problems: list[str], warnings: list[str],
            summary: Callable[[int], str]) -> Catalog:
    """Checks across versions, then the catalog: raises one BadInput with every problem (`summary` of
    their count), keeps the warnings."""
    problems.extend(_check_duplicates(loaded))
    errors.collect(problems, summary(len(problems)))
    warnings.extend(_check_consistency(loaded))
    versions = sorted((item.version for item in loaded), key=lambda v: (v.procedure, v.version))
    return Catalog(tuple(versions), tuple(warnings))


def _check_doc(doc: Any, where: str, lines: Mapping[str, int], doc_line: int, number: int | None,
               problems: list[str], warnings: list[str]) -> _Loaded | None:
    loc = _DocLocator(where, doc if isinstance(doc, dict) else {}, lines, doc_line)
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected a mapping with keys procedure, name, version, steps.")
        return None
    schema_errors = sorted(_VALIDATOR.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if schema_errors:
        problems += [f"{loc.at(tuple(e.absolute_path))}: {yamlio.schema_message(e).rstrip('.')}. "
                     + (f"Hint: {e.schema['hint']}." if isinstance(e.schema, dict) and "hint" in e.schema
                        else FORMAT_HINT) for e in schema_errors]
        return None
    return _check_version(where, number, doc, loc, problems, warnings)


def _load_bpmn(path: str, number: int, problems: list[str], warnings: list[str]) -> _Loaded | None:
    """A v<N>.bpmn file, with its optional v<N>.bpmn.yaml sidecar beside it. BadInput: it cannot be read."""
    from reconcile.workflow import bpmn  # lxml is only needed when the catalog holds BPMN

    sidecar_path = path + ".yaml"
    try:
        sidecar = bpmn.load_sidecar(sidecar_path) if os.path.exists(sidecar_path) else None
        if sidecar is not None and sidecar.get("version", number) != number:
            raise errors.BadInput(f"{sidecar_path}: version {sidecar['version']} does not match the file name "
                                  f"v{number}.bpmn. Set version: {number} or remove it from the sidecar.")
        with open(path, "rb") as f:
            data = f.read()
        imported = bpmn.parse_bpmn(data, path, version=number, sidecar=sidecar)
    except OSError as e:
        raise errors.BadInput(f"{path}: cannot read: {e.strerror}.") from None
    warnings.extend(imported.warnings)
    return _check_doc(imported.doc, path, imported.step_lines, imported.line, number, problems, warnings)


def _load_file(path: str, number: int, problems: list[str], warnings: list[str]) -> _Loaded | None:
    """A v<N>.yaml file. BadInput: it cannot be read, or is not YAML, or is empty."""
    node, data = yamlio.load(path)
    if node is None:
        raise errors.BadInput(f"{path}:1:1: empty file. Expected keys procedure, name, version, steps.")

    schema_problems = yamlio.schema_problems(path, node, _VALIDATOR, data, FORMAT_HINT)
    if schema_problems:
        problems.extend(schema_problems)
        return None  # the checks below rely on the shape the schema guarantees
    return _check_version(path, number, data, _YamlLocator(path, node), problems, warnings)


class _Locator(Protocol):
    """Where a value of a version document is, for messages: `file:line:col` or `file: json.path`."""

    def at(self, path: tuple[Any, ...], key: bool = False) -> str: ...

    def line(self, index: int) -> int: ...


@dataclass(frozen=True, slots=True)
class _YamlLocator:
    path: str
    node: yaml.MappingNode

    def at(self, path: tuple[Any, ...], key: bool = False) -> str:
        if key:
            parent = yamlio.node_at(self.node, path[:-1])
            return yamlio.at(self.path, yamlio.key_node(parent, str(path[-1])))
        return yamlio.at(self.path, yamlio.node_at(self.node, path))

    def line(self, index: int) -> int:
        return int(yamlio.value_node(self.node, "steps").value[index].start_mark.line) + 1


@dataclass(frozen=True, slots=True)
class _DocLocator:
    where: str
    doc: dict[str, Any]
    lines: Mapping[str, int]  # step id -> line in the source, when known (BPMN elements)
    doc_line: int = 0  # line of the element the whole document comes from (a BPMN <process>), when known

    def at(self, path: tuple[Any, ...], key: bool = False) -> str:
        if len(path) > 1 and path[0] == "steps" and isinstance(path[1], int):
            step_id = self.doc["steps"][path[1]].get("id")
            if step_id in self.lines:
                return f"{self.where}:{self.lines[step_id]}"
        if self.doc_line:
            return f"{self.where}:{self.doc_line}"
        steps = (f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        json_path = "".join(steps).lstrip(".")
        return f"{self.where}: {json_path}" if json_path else self.where

    def line(self, index: int) -> int:
        return self.lines.get(self.doc["steps"][index].get("id"), 0)


def _check_version(
    path: str,
    number: int | None,
    data: dict[str, Any],
    loc: _Locator,
    problems: list[str],
    warnings: list[str],
) -> _Loaded:
    """Build a version from schema-valid data; problems and graph warnings are located by `loc`."""
    first_line: dict[str, int] = {}
    steps: list[Step] = []
    for i, raw in enumerate(data["steps"]):
        line = loc.line(i)
        if raw["id"] in first_line:
            first = f"at line {first_line[raw['id']]}" if first_line[raw["id"]] else "earlier"
            problems.append(
                f"{loc.at(('steps', i, 'id'))}: duplicate step id '{raw['id']}'; "
                f"first defined {first}. "
                "Step ids must be unique within a version."
            )
        else:
            first_line[raw["id"]] = line
        steps.append(
            Step(
                id=raw["id"],
                name=raw["name"],
                unit=raw.get("unit"),
                days=float(raw["days"]),
                next=tuple(raw.get("next", ())),
                final=bool(raw.get("final", False)),
                line=line,
                may_end=bool(raw.get("may_end", False)),
                start=bool(raw.get("start", False)),
                side_of=raw.get("side_of"),
            )
        )
    listed = ", ".join(first_line)
    for i, step in enumerate(steps):
        for j, target in enumerate(step.next):
            if target not in first_line:
                problems.append(
                    f"{loc.at(('steps', i, 'next', j))}: step '{step.id}' -> '{target}': no such step. "
                    f"Steps here: {listed}."
                )
        if step.side_of is not None and step.side_of not in first_line:
            problems.append(
                f"{loc.at(('steps', i, 'side_of'))}: step '{step.id}' is a side path of '{step.side_of}': "
                f"no such step. Steps here: {listed}."
            )
    if not any(s.final or s.may_end for s in steps):
        problems.append(
            f"{loc.at(('steps',), key=True)}: no final step. "
            "Mark the step(s) that end the procedure with final: true."
        )
    if number is not None and data["version"] != number:
        problems.append(
            f"{loc.at(('version',))}: version {data['version']} does not match "
            f"the file name v{number}.yaml. Set version: {number} or rename the file."
        )

    if not problems:  # graph warnings only make sense on a well-formed graph
        warnings.extend(_graph_warnings(steps, loc))

    valid_from = data.get("valid_from")
    version = WorkflowVersion(
        procedure=data["procedure"],
        name=data["name"],
        field=data.get("field"),
        version=int(data["version"]),
        valid_from=date.fromisoformat(valid_from) if valid_from is not None else None,
        steps=tuple(steps),
        path=path,
    )
    where = {key: loc.at((key,)) for key in ("procedure", "name", "field")}
    return _Loaded(version, where)


def _graph_warnings(steps: list[Step], loc: _Locator) -> list[str]:
    """Steps no entry leads to (a side path counts from the step it opens beside), and steps with no way on."""
    starts = [s.id for s in steps if s.start] or [steps[0].id]
    edges: dict[str, list[str]] = {s.id: list(s.next) for s in steps}
    for s in steps:
        if s.side_of is not None:
            edges[s.side_of].append(s.id)
    forward = reachable(edges, starts)
    quoted = [f"'{s}'" for s in starts]
    origin = f"the first step {quoted[0]}" if len(starts) == 1 else f"any start step ({', '.join(quoted)})"
    warnings = []
    for i, step in enumerate(steps):
        at = loc.at(("steps", i, "id"))
        if step.id not in forward:
            warnings.append(f"{at}: step '{step.id}' cannot be reached from {origin}.")
        if not step.final and not step.may_end and not step.next:
            warnings.append(f"{at}: step '{step.id}' is not final and has no next step; dossiers there cannot finish.")
    return warnings


def _check_duplicates(loaded: list[_Loaded]) -> list[str]:
    first: dict[tuple[str, int], str] = {}
    problems = []
    for item in loaded:
        v = item.version
        if (v.procedure, v.version) in first:
            problems.append(
                f"{item.where['procedure']}: procedure '{v.procedure}' version {v.version} "
                f"is also defined in {first[v.procedure, v.version]}. Keep one file per version."
            )
        else:
            first[v.procedure, v.version] = v.path
    return problems


def _check_consistency(loaded: list[_Loaded]) -> list[str]:
    """Warnings across files: a procedure renamed between versions, a name shared by procedures."""
    warnings = []
    oldest: dict[str, WorkflowVersion] = {}
    name_owner: dict[str | None, str] = {}
    shared: set[tuple[str | None, str]] = set()
    for item in sorted(loaded, key=lambda i: (i.version.procedure, i.version.version)):
        v = item.version
        base = oldest.setdefault(v.procedure, v)
        here = f"{item.where['name']}: procedure '{v.procedure}'"
        if compare_key(v.name) != compare_key(base.name):
            warnings.append(f"{here} is named '{v.name}' here but '{base.name}' in {base.path}.")
        if v.field and base.field and compare_key(v.field) != compare_key(base.field):
            warnings.append(
                f"{item.where['field']}: procedure '{v.procedure}' has field '{v.field}' here "
                f"but '{base.field}' in {base.path}."
            )
        key = compare_key(v.name)
        owner = name_owner.setdefault(key, v.procedure)
        if owner != v.procedure and (key, v.procedure) not in shared:
            shared.add((key, v.procedure))
            warnings.append(
                f"{item.where['name']}: name '{v.name}' is also used by procedure '{owner}'; "
                "register rows with this name cannot be matched by name."
            )
    return warnings
