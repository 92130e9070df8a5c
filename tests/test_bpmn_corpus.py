"""The BPMN conformance corpus: 376 public BPMN files nobody here wrote (the OMG MIWG test suite, modeller
and engine fixtures; ../shared/bpmn-corpus/SOURCES.md), imported in one process as `workflows import-bpmn`
imports them and compared, file by file, with a committed expectation: imported (steps, warnings and a
digest of the YAML and the warnings) or refused (with the refusal). RECONCILE_REGEN=1 rewrites it."""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from lxml import etree

from helpers import REGEN
from reconcile.workflow import commands as workflows
from reconcile.workflow.bpmn import BPMN_NS, STEP_KINDS, SUBPROCESS_KINDS
from reconcile.errors import BadInput

# Beside the project, as on the developers' machines and in CI; RECONCILE_BPMN_CORPUS names another place.
CORPUS = Path(os.environ.get("RECONCILE_BPMN_CORPUS")
              or Path(__file__).resolve().parents[1].parent / "shared" / "bpmn-corpus" / "files")
EXPECTED = Path(__file__).parent / "cases" / "bpmn-corpus" / "expected.txt"
SUFFIXES = (".bpmn", ".bpmn20.xml", ".bpmn2", ".xml")  # what the corpus's run.py imports


@dataclass
class Outcome:
    name: str
    line: str  # the file's line in the expectation
    doc: dict[str, Any] | None = None  # the imported version
    warnings: list[str] = field(default_factory=list)
    crashed: bool = False


def import_one(name: str) -> Outcome:
    """One file as `reconcile workflows import-bpmn NAME` run in the corpus folder sees it."""
    try:
        result = workflows.import_bpmn(name)
    except BadInput as e:
        return Outcome(name, f"{name}: refused: " + " | ".join(p.removeprefix(f"{name}:") for p in e.problems))
    except Exception as e:  # a bug: recorded, so that one crash does not hide the other files' outcomes
        return Outcome(name, f"{name}: crashed: {type(e).__name__}: {e}", crashed=True)
    doc = yaml.safe_load(result.text)
    digest = hashlib.sha256("\n".join([result.text, *result.warnings]).encode()).hexdigest()[:12]
    final = sum(1 for s in doc["steps"] if s.get("final"))
    may_end = sum(1 for s in doc["steps"] if s.get("may_end"))
    line = (f"{name}: imported: {len(doc['steps'])} steps ({final} final, {may_end} may end), "
            f"{len(result.warnings)} warnings, {digest}")
    return Outcome(name, line, doc, list(result.warnings))


@pytest.fixture(scope="module")
def outcomes() -> Iterator[list[Outcome]]:
    if not CORPUS.is_dir():
        message = f"the BPMN corpus is not at {CORPUS}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: the corpus must be there)")
        pytest.skip(message)
    names = sorted(p.name for p in CORPUS.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES))
    here = os.getcwd()
    os.chdir(CORPUS)  # messages name the file as NAME:LINE, wherever the tests run
    try:
        yield [import_one(name) for name in names]
    finally:
        os.chdir(here)


def summary(found: list[Outcome]) -> str:
    imported = [o for o in found if o.doc is not None]
    return (f"# imported {len(imported)}/{len(found)}, warnings {sum(1 for o in imported if o.warnings)}, "
            f"refused {sum(1 for o in found if o.doc is None and not o.crashed)}, "
            f"crashed {sum(1 for o in found if o.crashed)}")


def test_every_corpus_file_imports_or_is_refused_as_expected(outcomes: list[Outcome]) -> None:
    lines = [summary(outcomes), *(o.line for o in outcomes)]
    if REGEN:
        EXPECTED.parent.mkdir(parents=True, exist_ok=True)
        EXPECTED.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert EXPECTED.exists(), f"{EXPECTED} missing; run with RECONCILE_REGEN=1 to create it"
    expected = EXPECTED.read_text(encoding="utf-8").splitlines()
    diff = list(difflib.unified_diff(expected, lines, "expected", "now", lineterm="", n=0))
    assert not diff, "the corpus outcomes changed (RECONCILE_REGEN=1 accepts them):\n" + "\n".join(diff)


def test_no_corpus_file_crashes_the_import(outcomes: list[Outcome]) -> None:
    assert [o.line for o in outcomes if o.crashed] == []


def test_no_unit_is_an_element_id(outcomes: list[Outcome]) -> None:
    """A lane, a pool, a process or a task has an id; none of them is ever a unit (a lane whose name is its
    id, <lane id="Approver" name="Approver">, gives its name)."""
    found = []
    for o in outcomes:
        if o.doc is not None:
            root = etree.parse(str(CORPUS / o.name)).getroot()
            ids = {el.get("id") for el in root.iter() if isinstance(el.tag, str) and el.get("id") is not None
                   and etree.QName(el).namespace == BPMN_NS and el.get("name") != el.get("id")
                   and etree.QName(el).localname not in ("definitions", "sequenceFlow")}
            found += [f"{o.name}: {s['id']}: unit {s['unit']}" for s in o.doc["steps"] if s.get("unit") in ids]
    assert found == []


def test_no_task_is_dropped_without_a_warning(outcomes: list[Outcome]) -> None:
    """Every task, call activity and subprocess of the imported process is a step or named in a warning."""
    dropped = []
    for o in outcomes:
        if o.doc is None:
            continue
        root = etree.parse(str(CORPUS / o.name), etree.XMLParser(recover=True)).getroot()
        process = next(p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("id") == o.doc["procedure"])
        steps = {s["id"] for s in o.doc["steps"]}
        for el in process:
            kind = etree.QName(el).localname if isinstance(el.tag, str) else ""
            node = el.get("id")
            if kind in STEP_KINDS | SUBPROCESS_KINDS and node not in steps and \
                    not any(re.search(f"'{re.escape(str(node))}'", w) for w in o.warnings):
                dropped.append(f"{o.name}: {kind} '{node}'")
    assert dropped == []
