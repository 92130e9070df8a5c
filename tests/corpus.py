"""The bad-input corpus's machinery: a small district built once, spoiled per case, and the checks.

A case is one entry: how the inputs are spoiled (small patches or a generator), the command line, the
exit code and the whole expected stderr. `run_case` copies the district, spoils it, checksums every
file of the folder, runs the command in-process and checks that stderr is exactly the expected
lines (no traceback, no "internal error") and that no file was created, changed or removed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import openpyxl
from click.testing import CliRunner, Result

from reconcile.cli import main

Spoil = Callable[[Path], None]
SCALE = "0.01"  # 143 register entries, 153 system dossiers: every finding kind, a plan with every action


@dataclass(frozen=True)
class Case:
    """One bad input: `message` is the whole stderr, `{d}` standing for the case's folder."""

    id: str
    argv: str
    message: str
    spoils: tuple[Spoil, ...] = ()
    code: int = 2
    xfail: str | None = None  # the issue item this case waits for (strict: flips when the fix lands)
    stdout: bool = False  # whether the command may print a payload before it stops (a dry run's SQL)
    isolated: bool = False  # run as a process with a time limit (inputs that may never finish today)
    absent: tuple[str, ...] = ()  # texts stderr must not hold (a password; today's wrong answer of an xfail case)


def case(id: str, argv: str, message: str, *spoils: Spoil, code: int = 2, xfail: str | None = None,
         stdout: bool = False, isolated: bool = False, absent: tuple[str, ...] = ()) -> Case:
    return Case(id, argv, message, spoils, code, xfail, stdout, isolated, absent)


# ------------------------------------------------------------------------------------ the district


def cli(folder: Path, argv: list[str]) -> Result:
    """`reconcile ARGV` in `folder` (the project file there names every input), in-process."""
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, argv, catch_exceptions=True, prog_name="reconcile")
    finally:
        os.chdir(cwd)


TIME_LIMIT = 20  # seconds for an isolated case: a bad input is refused long before


def cli_process(folder: Path, argv: list[str]) -> tuple[int, str, str]:
    """`reconcile ARGV` as a process in `folder`, killed after TIME_LIMIT (exit code -9 then)."""
    try:
        done = subprocess.run([sys.executable, "-m", "reconcile", *argv], cwd=folder, capture_output=True,
                              text=True, timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        return -9, "", f"still running after {TIME_LIMIT} s"
    return done.returncode, done.stdout, done.stderr


CSV_PROJECT = """\
as_of: 2021-06-30
register: [register/so-theo-doi-ho-so-2021.csv]
system: system
workflows: ../workflows
paper_only_units: ["UBND xã Bình Tân Phú", "UBND xã Bình Hải"]
store: ../reconcile.duckdb
"""


def build_district(folder: Path) -> Path:
    """The demo district at a small scale, audited once, its plan written to plan.yaml; beside it the
    same district as a CSV register and csv export (csv/) and the seed's published table (published/)."""
    for argv in (["simulate", "--out", str(folder), "--scale", SCALE],
                 ["simulate", "--out", str(folder / "csv"), "--scale", SCALE, "--register-format", "csv",
                  "--system-format", "csv"]):
        _ok(cli(folder.parent, argv), argv)
    for extra in ("ground_truth.json", "reconcile.yaml", "workflows"):
        path = folder / "csv" / extra
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (folder / "csv" / "reconcile.yaml").write_text(CSV_PROJECT, encoding="utf-8")
    shutil.copytree(Path(__file__).parents[1] / "examples" / "seed", folder / "published")
    _ok(cli(folder, ["audit"]), ["audit"], codes=(1,))
    _ok(cli(folder, ["plan", "--out", "plan.yaml"]), ["plan"])
    return folder


def _ok(result: Result, argv: list[str], codes: tuple[int, ...] = (0,)) -> None:
    assert result.exit_code in codes, f"{argv}: exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` with the sha256 of its bytes (the store and the vendor database included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_case(c: Case, base: Path, folder: Path) -> None:
    shutil.copytree(base, folder)
    for spoil in c.spoils:
        spoil(folder)
    before = snapshot(folder)
    if c.isolated:
        code, stdout, stderr = cli_process(folder, shlex.split(c.argv))
    else:
        result = cli(folder, shlex.split(c.argv))
        code, stdout, stderr = result.exit_code, result.stdout, result.stderr
    stderr = stderr.strip()
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr[:2000]
    assert code == c.code, stderr[:2000]
    assert matches(c.message.replace("{d}", str(folder)), stderr), stderr[:2000]
    assert not [a for a in c.absent if a in stderr + stdout], stderr[:2000]
    if not c.stdout:
        assert stdout == "", "bad input prints no payload"
    after = snapshot(folder)
    assert after == before, f"written: {sorted(set(after.items()) ^ set(before.items()))}"


def matches(expected: str, stderr: str) -> bool:
    """The whole stderr is the expected text; "…" in it stands for any text within a line (used where the
    wording is not settled yet: an xfail case's fix, a database's own message)."""
    pattern = "[^\\n]*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, stderr) is not None


# -------------------------------------------------------------------------------------- spoilers


def write(rel: str, content: str | bytes) -> Spoil:
    """Create or replace a file."""
    def spoil(d: Path) -> None:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return spoil


def edit(rel: str, old: str, new: str, count: int = 1) -> Spoil:
    """Replace the first `count` occurrences of `old` (which must be there) in a text file."""
    def spoil(d: Path) -> None:
        text = (d / rel).read_text(encoding="utf-8")
        assert old in text, f"{rel}: {old!r} not found"
        (d / rel).write_text(text.replace(old, new, count), encoding="utf-8")
    return spoil


def edit_line(rel: str, start: str, new: str) -> Spoil:
    """Replace the first line starting with `start` (indentation ignored) by `new` (indentation kept)."""
    def spoil(d: Path) -> None:
        lines = (d / rel).read_text(encoding="utf-8").split("\n")
        i = next(i for i, line in enumerate(lines) if line.lstrip().startswith(start))
        lines[i] = lines[i][: len(lines[i]) - len(lines[i].lstrip())] + new
        (d / rel).write_text("\n".join(lines), encoding="utf-8")
    return spoil


def remove(rel: str) -> Spoil:
    def spoil(d: Path) -> None:
        path = d / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return spoil


def sql(rel: str, *statements: str) -> Spoil:
    """Change a SQLite database (the vendor's)."""
    def spoil(d: Path) -> None:
        con = sqlite3.connect(d / rel)
        for s in statements:
            con.execute(s)
        con.commit()
        con.close()
    return spoil


def workbook(rel: str, sheets: dict[str, list[list[object]]]) -> Spoil:
    """Write an XLSX file, one list of rows per sheet."""
    def spoil(d: Path) -> None:
        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        for name, rows in sheets.items():
            ws = wb.create_sheet(name)
            for row in rows:
                ws.append(row)
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        wb.save(d / rel)
    return spoil


def command(argv: str, codes: tuple[int, ...] = (0,)) -> Spoil:
    """Run a command that must succeed first (an apply before an undo, a second audit...)."""
    def spoil(d: Path) -> None:
        _ok(cli(d, shlex.split(argv)), shlex.split(argv), codes)
    return spoil


def xlsx_cell(rel: str, sheet: str, cell: str, value: object, number_format: str | None = None) -> Spoil:
    """Overwrite one cell of a workbook (and its number format)."""
    def spoil(d: Path) -> None:
        wb = openpyxl.load_workbook(d / rel)
        wb[sheet][cell] = value
        if number_format:
            wb[sheet][cell].number_format = number_format
        wb.save(d / rel)
    return spoil


def xlsx_sheet_xml(rel: str, change: Callable[[bytes], bytes]) -> Spoil:
    """Rewrite the XML of a workbook's first sheet, the zip around it intact."""
    def spoil(d: Path) -> None:
        with zipfile.ZipFile(d / rel) as z:
            members = {n: z.read(n) for n in z.namelist()}
        members["xl/worksheets/sheet1.xml"] = change(members["xl/worksheets/sheet1.xml"])
        with zipfile.ZipFile(d / rel, "w", zipfile.ZIP_DEFLATED) as z:
            for n, data in members.items():
                z.writestr(n, data)
    return spoil
