"""Workbook files (.xlsx) checked before a reader opens them, and their sheets read with errors named.

Every workbook reader (the register's, check-report's) calls `open_workbook` first: it refuses, in one
line, a password-protected file, a file that is no workbook, a member that would inflate past a limit
(a zip bomb: 1.6 MB of blanks inflate to 1.7 GB), and a sheet whose cells, from A1 to its last one,
would not fit in memory (one cell at XFD1048576 is 17 billion); and it lists the formulas without a
saved value. The limits are environment variables, so that a genuine large file can still be read.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from lxml import etree

from reconcile.errors import BadInput, ReconcileError
from reconcile.sources.text import column_name

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Compound File: .xls, and an encrypted .xlsx
ZIP_MAGIC = b"PK\x03\x04"
MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    member_mb: float  # uncompressed size of any one member
    ratio: float  # uncompressed size / compressed size of a member of 1 MB or more
    cells: int  # a sheet's cells from A1 to its last row and column


# (environment variable, default). Defaults: a full-height Excel sheet of the register's 13 columns
# is about 600 MB of XML and 14 million cells; real sheets compress 5-15 times (Apache POI's
# zip-bomb check also stops at 100).
LIMITS = {"member_mb": ("RECONCILE_XLSX_MAX_MB", 1024), "ratio": ("RECONCILE_XLSX_MAX_RATIO", 100),
          "cells": ("RECONCILE_XLSX_MAX_CELLS", 20_000_000)}


def limits() -> Limits:
    values: dict[str, float] = {}
    for key, (var, default) in LIMITS.items():
        text = os.environ.get(var, "").strip()
        try:
            values[key] = float(text) if text else default
        except ValueError:
            values[key] = -1
        if not 0 < values[key] < math.inf:  # NaN and inf would turn the check off
            raise BadInput(f"{var}={text!r}: expected a positive number (default {default}).")
    return Limits(values["member_mb"], values["ratio"], int(values["cells"]))


@dataclass(frozen=True, slots=True)
class SheetScan:
    """What a sheet's XML says before it is read: its extent and its formulas without a saved value."""

    rows: int  # from row 1 to the last cell's
    columns: int  # from column A to the last cell's
    no_value: tuple[tuple[int, int], ...]  # (row, column), 0-based


def open_workbook(p: Path) -> dict[str, SheetScan]:
    """Check a workbook before any reader opens it; its sheets' scans by name (none for a legacy .xls,
    whose size is bounded by its format). Raises BadInput naming the file, the member and the limit."""
    with p.open("rb") as fh:
        head = fh.read(len(OLE_MAGIC))
    if head.startswith(OLE_MAGIC):
        _check_ole(p)
        return {}
    if not head.startswith(ZIP_MAGIC):
        raise BadInput(f"{p.name}: not a workbook (an .xlsx file is a zip archive; this one is not). Hint: if it "
                       "is an HTML or text export, open it in Excel or LibreOffice and save it as .xlsx.")
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _damaged(p, exc) from None
    lim = limits()
    with zf:
        for info in zf.infolist():
            _check_member(p, info, lim)
        try:
            parts = _sheet_parts(zf)
        except (zipfile.BadZipFile, KeyError, StopIteration, etree.XMLSyntaxError, OSError, EOFError, zlib.error) as exc:
            raise _damaged(p, exc) from None
        return {name: read_sheet(p, name, lambda: _scan_sheet(p, zf, name, member, lim))
                for name, member in parts.items()}


def _check_ole(p: Path) -> None:
    import olefile

    try:
        with olefile.OleFileIO(str(p)) as ole:
            encrypted = ole.exists("EncryptedPackage")
    except Exception as exc:  # olefile raises OSError, ValueError, struct.error... on a damaged container
        raise _damaged(p, exc) from None
    if encrypted:
        raise password_protected(p)
    if p.suffix.lower() != ".xls":
        raise BadInput(f"{p.name}: an Excel 97-2003 (.xls) workbook named {p.suffix}. Hint: save it as .xlsx.")


def password_protected(p: Path) -> BadInput:
    return BadInput(f"{p.name}: the workbook is password-protected. Hint: open it in Excel or LibreOffice and save "
                    "a copy without a password.")


def _check_member(p: Path, info: zipfile.ZipInfo, lim: Limits) -> None:
    """The declared sizes bound what any reader inflates (Python's zipfile and calamine's both stop
    at the declared size), so they are checked as declared, without inflating anything."""
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > lim.member_mb * MB:
        raise BadInput(f"{p.name}: member {info.filename} is {size / MB:,.0f} MB uncompressed, over the limit of "
                       f"{lim.member_mb:g} MB. Hint: a genuine workbook this large: set RECONCILE_XLSX_MAX_MB "
                       "higher, or export CSV.")
    if size >= MB and size > lim.ratio * packed:
        raise BadInput(f"{p.name}: member {info.filename} inflates {size / packed:,.0f} times ({packed:,} bytes "
                       f"to {size / MB:,.0f} MB), over the limit of {lim.ratio:g} (a zip bomb, or a sheet padded "
                       "with blanks). Hint: open it in Excel or LibreOffice and save it again; if it is genuine, "
                       "set RECONCILE_XLSX_MAX_RATIO higher.")


def _xml(zf: zipfile.ZipFile, member: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(zf.read(member), parser)


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _sheet_parts(zf: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its member, through the package's relationships (_rels/.rels names the workbook
    part, the workbook's .rels its sheets); by local names, so that Strict OOXML reads too."""
    members = {n.lower(): n for n in zf.namelist()}  # some writers' targets differ in case

    def targets(part: str) -> dict[str, tuple[str, str]]:
        folder, name = posixpath.split(part)
        out = {}
        for rel in _xml(zf, members[posixpath.join(folder, "_rels", name + ".rels").lower()]):
            target = rel.get("Target", "")
            path = posixpath.normpath(target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target))
            out[rel.get("Id", "")] = (rel.get("Type", "").rsplit("/", 1)[-1], members.get(path.lower(), path))
        return out

    book = next(path for kind, path in targets("").values() if kind == "officeDocument")
    sheets = targets(book)
    parts = {}
    for el in _xml(zf, book).iter():
        if _local(el.tag) == "sheet":
            rid = next((v for k, v in el.attrib.items() if _local(k) == "id" and k.startswith("{")), "")
            kind, path = sheets.get(rid, ("", ""))
            if kind == "worksheet":  # chart and dialog sheets hold no cells
                parts[el.get("name", "")] = path
    return parts


# The fast path: every cell and row starts with its `r` (as Excel, LibreOffice and openpyxl write
# them) and no tag has a namespace prefix. Text cannot hold a bare '<', so these counts are exact.
_CELL_REF = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')
_ROW_REF = re.compile(rb'<row r="[0-9]{1,7}"')
_PREFIXED = re.compile(rb":(?:c|row|f|v)[\s/>]")
_FORMULA = re.compile(rb"<f[\s/>]")
# Otherwise, tag by tag (any prefix; a quoted attribute value may hold '>').
_PREFIX = rb"(?:[A-Za-z_][\w.-]*:)?"
_ATTRS = rb"""((?:[^>"']|"[^"]*"|'[^']*')*)"""
_TAG = re.compile(rb"<" + _PREFIX + rb"(row|c)(?=[\s/>])" + _ATTRS + rb">")
_ATTR_R = re.compile(rb"""\sr\s*=\s*["']([^"']*)["']""")
_ATTR_T = re.compile(rb"""\st\s*=\s*["']([^"']*)["']""")
# A cell whose content is a formula and then no value, or an empty one.
_FORMULA_ONLY = re.compile(rb"<" + _PREFIX + rb"c(?=[\s/>])" + _ATTRS + rb">\s*<" + _PREFIX
                           + rb"f(?=[\s/>])[^>]*(?:/>|>[^<]*</" + _PREFIX + rb"f\s*>)\s*"
                           rb"(?P<v><" + _PREFIX + rb"v\s*/>|<" + _PREFIX + rb"v\s*>\s*</" + _PREFIX + rb"v\s*>)?"
                           rb"\s*</" + _PREFIX + rb"c\s*>")
_CHUNK = 4 * MB


@dataclass
class _Extent:
    row: int = -1  # the current row and column, as a reader places cells without `r`
    col: int = -1
    last_row: int = -1
    last_col: int = -1


def _scan_sheet(p: Path, zf: zipfile.ZipFile, name: str, member: str, lim: Limits) -> SheetScan:
    """One pass over the sheet's XML, piece by piece: where its cells reach, as a reader places them,
    and which cells hold a formula but no value (written by a program that does not calculate).
    Each piece ends at a tag's end, so no cell reference is ever cut in two."""
    ext, no_value, carry = _Extent(), [], b""
    with zf.open(member) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            data = carry + chunk
            cut = len(data)
            if chunk:
                cut = data.rfind(b"row>") + 4 or data.rfind(b">") + 1
            data, carry = data[:cut], data[cut:]
            _place(p, name, data, ext, no_value)
            cells = (ext.last_row + 1) * (ext.last_col + 1)
            if cells > lim.cells:
                raise BadInput(
                    f'{p.name}, sheet "{name}": cells reach {column_name(ext.last_col)}{ext.last_row + 1} ({member}), '
                    f"{cells:,} cells from A1, over the limit of {lim.cells:,}. Hint: delete the stray cells far "
                    "from the table (Ctrl+End shows the last one) and save it again, or set "
                    "RECONCILE_XLSX_MAX_CELLS higher.")
            if not chunk:
                break
    return SheetScan(ext.last_row + 1, ext.last_col + 1, tuple(no_value))


def _place(p: Path, name: str, data: bytes, ext: _Extent, no_value: list[tuple[int, int]]) -> None:
    refs = _CELL_REF.findall(data)
    if (len(refs) == _count_tags(data, b"<c") and len(_ROW_REF.findall(data)) == _count_tags(data, b"<row")
            and not _PREFIXED.search(data)):
        if refs:  # every cell names its place: the extent without a loop
            ext.last_row = max(ext.last_row, max(map(int, (r for _, r in refs))) - 1)
            ext.last_col = max(ext.last_col, max(_column_index(c) for c in {c for c, _ in refs}))
        if _FORMULA.search(data):
            for m in _FORMULA_ONLY.finditer(data):
                ref = _ATTR_R.search(m[1])
                if ref and _missing_value(m):
                    no_value.append(_cell_index(ref[1]))
        return
    for m in _TAG.finditer(data):  # some cells or rows without `r`: place them one by one
        r = _ATTR_R.search(m[2])
        if r and not re.fullmatch(rb"[A-Z]{0,3}[0-9]{1,7}", r[1]):
            raise BadInput(f'{p.name}, sheet "{name}": cell reference {r[1].decode(errors="replace")!r} not '
                           "understood. Hint: open the file in Excel or LibreOffice and save it again.")
        if m[1] == b"row":
            ext.row, ext.col = (int(r[1]) - 1 if r and r[1].isdigit() else ext.row + 1), -1
            continue
        if r and not r[1].isdigit():
            cell_row, ext.col = _cell_index(r[1])
        else:
            ext.col, cell_row = ext.col + 1, ext.row
        ext.last_row, ext.last_col = max(ext.last_row, cell_row), max(ext.last_col, ext.col)
        if not m[2].endswith(b"/") and (f := _FORMULA_ONLY.match(data, m.start())) and _missing_value(f):
            no_value.append((cell_row, ext.col))


def _count_tags(data: bytes, start: bytes) -> int:
    """Tags named by `start` (b"<c" counts <c r=...>, not <col>): a count per character that may follow."""
    return sum(data.count(start + end) for end in (b" ", b"\t", b"\n", b"\r", b"/", b">"))


def _missing_value(m: re.Match[bytes]) -> bool:
    """No <v>, or an empty one that is not an empty text result (t="str")."""
    t = _ATTR_T.search(m[1])
    return m["v"] is None or not (t and t[1] == b"str")


def _column_index(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n - 1


def _cell_index(ref: bytes) -> tuple[int, int]:
    """b"B3" -> (2, 1): 0-based row and column."""
    digits = ref.lstrip(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return int(digits) - 1, _column_index(ref[:len(ref) - len(digits)])


T = TypeVar("T")


def read_sheet(p: Path, sheet: str, read: Callable[[], T]) -> T:
    """`read()` of one sheet, its failure (damaged XML, a broken zip stream, a reader's panic) one
    line naming the file and the sheet."""
    try:
        return read()
    except ReconcileError:
        raise
    except BaseException as exc:  # a Rust panic in calamine arrives as pyo3's PanicException, a BaseException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise BadInput(f'{p.name}, sheet "{sheet}": cannot read the sheet: {_first_line(exc)}. Hint: the file is '
                       "damaged: open it in Excel or LibreOffice and save it again, or export CSV.") from None


def unreadable(p: Path, exc: BaseException) -> BadInput:
    """Why a reader could not open a workbook that `open_workbook` passed: the first sheet whose XML
    does not parse, named, else the reader's own words."""
    try:
        with zipfile.ZipFile(p) as zf:
            for name, member in _sheet_parts(zf).items():
                read_sheet(p, name, lambda: _xml(zf, member))
    except ReconcileError as named:
        return named
    except Exception:  # the reader's own message below says more than this one
        pass
    return BadInput(f"{p.name}: cannot read as a workbook: {_first_line(exc)}. Hint: open it in Excel or LibreOffice "
                    "and save it again, or export CSV.")


def _damaged(p: Path, exc: BaseException) -> BadInput:
    return BadInput(f"{p.name}: damaged workbook: {_first_line(exc)}. Hint: open it in Excel or LibreOffice and save "
                    "it again.")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
