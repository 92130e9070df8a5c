"""Progress on stderr: plain lines with rows and rows/s when asked for, nothing on stdout, silence by default."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from reconcile.util import jsonio
from reconcile.audit.results import run_report
from reconcile.util.progress import LineProgress, LiveProgress, rate
from reconcile.store import open_store
from reconcile.demo.simulate import simulate
from tests.helpers import invoke


class FakeClock:
    """Seconds that advance only when the test says so: the lines do not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_has_three_significant_figures() -> None:
    assert rate(1_234_567, 3.0) == "412,000 rows/s"
    assert rate(500, 2.0, "dossiers") == "250 dossiers/s"
    assert rate(10, 0.0) == "0 rows/s"


def test_line_progress_prints_each_stage_as_it_ends_and_loading_every_ten_seconds() -> None:
    clock, out = FakeClock(), io.StringIO()
    p = LineProgress(out, "audit", every=10, clock=clock)
    p.stage("storing the register")
    for n in (100_000, 200_000, 300_000):  # one batch every 4 s: a line at 12 s, not at 4 or 8
        clock.now += 4
        p.rows(n)
    clock.now += 3
    p.rows(400_000)
    p.stage("matching the codes")
    clock.now += 2.5
    p.done()
    assert out.getvalue().splitlines() == [
        "audit: storing the register: 300,000 rows so far (25,000 rows/s)",
        "audit: storing the register: 400,000 rows in 15.0 s (26,700 rows/s)",
        "audit: matching the codes: 2.5 s",
    ]


def test_line_progress_done_twice_prints_the_last_stage_once() -> None:
    out = io.StringIO()
    p = LineProgress(out, "audit", clock=FakeClock())
    p.stage("statistics")
    p.done()
    p.done()
    assert out.getvalue() == "audit: statistics: 0.0 s\n"


def test_live_progress_shows_the_stage_then_its_rows_and_rate() -> None:
    clock, shown = FakeClock(), []
    p = LiveProgress(shown.append, "audit", clock=clock)
    p.stage("storing the system", "dossiers")
    clock.now += 2
    p.rows(50_000)
    assert shown == ["audit: storing the system", "audit: storing the system: 50,000 dossiers (25,000 dossiers/s)"]


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("progress-district")
    simulate(out, scale=0.05, register_format="csv", system_format="csv")
    return out


# Every stage of an audit, in order; the loads with their rows and rate.
STAGE = r"audit: [a-z' ]+: \d+\.\d s"
LOAD = r"audit: storing the {what}: [\d,]+ {unit} in \d+\.\d s \([\d,]+ {unit}/s\)"


def test_audit_with_progress_prints_stages_rows_and_rates_on_stderr_only(district: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    result = invoke("audit", "--config", str(district / "reconcile.yaml"), "--store", str(store), "--format", "json",
                    "--progress", expect=1)
    json.loads(result.stdout)  # the payload is untouched
    lines = [line for line in result.stderr.splitlines() if line.startswith("audit: ")]
    stages = [line.split(":")[1].strip() for line in lines]
    assert stages == ["reading the catalog", "opening the register", "opening the system", "storing the register",
                      "checking the register", "storing the system", "checking the system",
                      "storing the system's step events", "matching the codes",
                      "finding missing and unclosed dossiers", "comparing dates and fields",
                      "finding duplicate codes and numbering gaps", "workflow state of open dossiers",
                      "workflow findings", "statistics", "committing", "reading the results"]
    counts = json.loads(result.stdout)["run"]["counts"]
    register, system = lines[3], lines[5]
    assert re.fullmatch(LOAD.format(what="register", unit="rows"), register), register
    assert re.fullmatch(LOAD.format(what="system", unit="dossiers"), system), system
    assert f" {counts['register_entries']:,} rows in " in register
    assert f" {counts['system_dossiers']:,} dossiers in " in system
    assert all(re.fullmatch(STAGE, line) for i, line in enumerate(lines) if i not in (3, 5, 7)), lines


def test_audit_without_progress_keeps_stderr_clean_when_it_is_not_a_terminal(district: Path, tmp_path: Path) -> None:
    for extra in ((), ("--no-progress",)):
        store = tmp_path / f"s{len(extra)}.duckdb"
        result = invoke("audit", "--config", str(district / "reconcile.yaml"), "--store", str(store),
                        "--format", "json", *extra, expect=1)
        assert all(line.startswith("warning: ") for line in result.stderr.splitlines()), result.stderr


def test_an_audit_refused_while_checking_ends_with_the_error_not_a_summary_of_that_stage(
        district: Path, tmp_path: Path) -> None:
    work = tmp_path / "d"
    shutil.copytree(district, work)
    book = work / "register" / "so-theo-doi-ho-so-2021.csv"
    lines = book.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    lines[1] = lines[1].replace(",04/01/2021,", ",31/02/2021,", 1)  # the first entry's received date
    book.write_text("".join(lines), encoding="utf-8-sig")
    result = invoke("audit", "--config", str(work / "reconcile.yaml"), "--store", str(tmp_path / "s.duckdb"),
                    "--progress", expect=2)
    stderr = result.stderr.splitlines()
    assert re.fullmatch(LOAD.format(what="register", unit="rows"), stderr[-2]), stderr
    assert stderr[-1] == ("error: so-theo-doi-ho-so-2021.csv, row 2, Nhận hồ sơ: '31/02/2021' is not a date. "
                          "Expected dd/mm/yyyy, YYYY-MM-DD or an Excel date.")
    assert not (tmp_path / "s.duckdb").exists()


@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("items", [[], [{"kind": "a", "details": {"x": [1, 2], "note": "two\nlines"}}, {"k": None}],
                                   list(range(5))])
def test_a_list_written_in_chunks_is_the_same_text_as_the_whole_document(pretty: bool, items: list[object]) -> None:
    head = {"run": {"id": 3, "periods": [{"book": "Sổ 1"}]}, "summary": {"a": 1}, "findings": ["replaced"]}
    out = io.StringIO()
    jsonio.dump_with_list(head, "findings", iter(items), out, pretty, chunk=2)
    assert out.getvalue() == jsonio.dumps({"run": head["run"], "summary": head["summary"], "findings": items},
                                          pretty) + "\n"


def test_audit_json_streams_the_same_findings_as_the_report_holds(district: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    result = invoke("audit", "--config", str(district / "reconcile.yaml"), "--store", str(store), "--format", "json",
                    expect=1)
    streamed = json.loads(result.stdout)
    held = run_report(open_store(str(store), create=False)).to_dict()
    assert streamed == json.loads(jsonio.dumps(held))
    assert sum(streamed["summary"].values()) == len(streamed["findings"]) > 10
