"""Benchmark: diff of two 200-step BPMN versions (parse both files + validate + diff); target <= 1 s.

Writes the two versions (Camunda Modeler style: lanes, camunda: attributes, gateways, diagram shapes)
into a temporary folder, then times read + parse_bpmn + catalog_from_docs + diff_versions over
several runs and prints the median.

    python benchmarks/bench_workflows.py [--steps 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from reconcile.workflow.bpmn import parse_bpmn
from reconcile.workflow.catalog import catalog_from_docs
from reconcile.workflow.diff import diff_versions

UNITS = ("MOTCUA", "VPDK", "THUE", "TNMT", "LANHDAO", "UBNDXA")


def bpmn(steps: int, version: int) -> str:
    """A chain of `steps` user tasks; every 10th step is followed by an exclusive gateway that may skip
    the next one. Version 2 drops 5 steps, adds 5, renames 5 ids (case), moves 10 units, changes 10 durations."""
    ids = [f"S{i:03d}" for i in range(steps)]
    names = [f"Bước {s}" for s in ids]
    units = [UNITS[i % len(UNITS)] for i in range(steps)]
    days = [1 + i % 5 for i in range(steps)]
    if version == 2:
        for i in range(5):
            k = 20 + 30 * i  # removed, and a new step added in its place (new name and unit: unpaired)
            ids[k], names[k], units[k] = f"N{i:03d}", f"Bước mới {i}", "PHONGMOI"
            ids[k + 5] = ids[k + 5].lower()  # paired by the same id after normalisation
        for i in range(10):
            units[7 + 17 * i] = "CNVPDK"
            days[11 + 17 * i] = 9
    elements, flows, shapes = [], [], []
    prev = "Start"
    elements.append('<bpmn:startEvent id="Start" name="Nộp hồ sơ" />')
    n = 0

    def flow(a: str, b: str) -> None:
        nonlocal n
        n += 1
        flows.append(f'<bpmn:sequenceFlow id="Flow_{n}" sourceRef="{a}" targetRef="{b}" />')

    for i, s in enumerate(ids):
        elements.append(f'<bpmn:userTask id="{s}" name="{names[i]}" camunda:candidateGroups="{units[i]}" '
                        f'camunda:dueDate="P{days[i]}D" />')
        shapes.append(f'<bpmndi:BPMNShape id="{s}_di" bpmnElement="{s}"><dc:Bounds x="{200 + 150 * i}" y="80" '
                      'width="100" height="80" /></bpmndi:BPMNShape>')
        flow(prev, s)
        prev = s
        if i % 10 == 9 and i + 2 < len(ids):
            gw = f"Gateway_{i}"
            elements.append(f'<bpmn:exclusiveGateway id="{gw}" name="Đủ điều kiện?" />')
            flow(prev, gw)
            flow(gw, ids[i + 2])  # skips the next step
            prev = gw
    elements.append('<bpmn:endEvent id="End" name="Trả kết quả" />')
    flow(prev, "End")
    lanes = "".join(f'<bpmn:lane id="Lane_{u}" name="{u}">'
                    + "".join(f"<bpmn:flowNodeRef>{s}</bpmn:flowNodeRef>" for s, unit in zip(ids, units) if unit == u)
                    + "</bpmn:lane>" for u in sorted(set(units)))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
            'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Definitions_1" '
            'targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" exporterVersion="5.17.0">\n'
            f'<bpmn:process id="Process_Bench" name="Thủ tục thử" isExecutable="true">\n'
            f'<bpmn:laneSet id="LaneSet_1">{lanes}</bpmn:laneSet>\n'
            + "\n".join(elements + flows)
            + '\n</bpmn:process>\n<bpmndi:BPMNDiagram id="BPMNDiagram_1"><bpmndi:BPMNPlane id="Plane_1" '
              'bpmnElement="Process_Bench">\n' + "\n".join(shapes)
            + "\n</bpmndi:BPMNPlane></bpmndi:BPMNDiagram>\n</bpmn:definitions>\n")


def parse_and_diff(a: Path, b: Path) -> int:
    docs = []
    for number, path in ((1, a), (2, b)):
        imported = parse_bpmn(path.read_bytes(), str(path), version=number)
        docs.append((imported.doc, str(path)))
    first, second = catalog_from_docs(docs).versions
    d = diff_versions(first, second)
    return len(d.removed) + len(d.added) + len(d.replaced) + len(d.changed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "v1.bpmn", Path(tmp) / "v2.bpmn"
        a.write_text(bpmn(args.steps, 1), encoding="utf-8")
        b.write_text(bpmn(args.steps, 2), encoding="utf-8")
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            found = parse_and_diff(a, b)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"workflows diff, two {args.steps}-step BPMN versions ({found} step differences): "
          f"median {median * 1000:.1f} ms over {args.runs} runs (target <= 1000 ms) "
          f"{'OK' if median <= 1.0 else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
