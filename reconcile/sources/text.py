"""CSV and text files as every reader takes them: UTF-8 only (other encodings refused by name), the
delimiter, and records whose cells stay within a spreadsheet cell's size."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

from reconcile.errors import BadInput

# Excel's limit for one cell: no register or published table typed in a spreadsheet has a longer
# one, so a longer cell is damage or an attack, refused before it is stored.
MAX_CELL_CHARS = 32_767
# The csv module's own limit (131,072 characters) would raise a bare csv.Error mid-record; the
# readers check MAX_CELL_CHARS themselves instead (check_cells), naming the row and column.
csv.field_size_limit(2**31 - 1)

_UTF8_BOM = codecs.BOM_UTF8
# UTF-32's little-endian BOM starts with UTF-16's: test it first.
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
_CONTAINERS = ((b"PK\x03\x04", "a zip archive (an .xlsx workbook?)"),
               (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE file (an .xls workbook, or a password-protected .xlsx?)"))


def _not_text(p: Path, head: bytes) -> str | None:
    """Why the bytes at the file's start are not UTF-8 text, if a glance tells: a wide Unicode
    encoding (a BOM, or the NUL bytes that UTF-16/32 put in ASCII text) or a workbook."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return f"{p.name}: the file is {name} text, not UTF-8"
    for magic, what in _CONTAINERS:
        if head.startswith(magic):
            return f"{p.name}: the file is {what}, not CSV text"
    sample = head[:4096]
    nuls = sample.count(0)
    if nuls and nuls * 4 >= len(sample):  # UTF-16: about every second byte of ASCII text; UTF-32: three in four
        return f"{p.name}: the file is {'UTF-32' if nuls * 3 >= len(sample) * 2 else 'UTF-16'} text (no BOM), not UTF-8"
    return None


_SAVE_AS = 'Hint: open it in a spreadsheet and save as "CSV UTF-8".'


def decode(p: Path, data: bytes, partial: bool = False, first_row: int = 1, start: bool = True) -> str:
    """UTF-8 text (BOM dropped) of `data`, read from the file's start when `start`, else from file row
    `first_row`; `partial`: a sample whose last character may be cut. Other encodings are refused:
    UTF-16/32 and workbooks by name, a legacy 8-bit file with the row of its first bad byte."""
    if start:
        if (why := _not_text(p, data)) is not None:
            raise BadInput(f"{why}. {_SAVE_AS}")
        if data.startswith(_UTF8_BOM):
            data = data[len(_UTF8_BOM):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if partial and exc.start >= len(data) - 3:  # a character cut at the end of the sample
            return data[: exc.start].decode("utf-8")
        line = data[: exc.start].count(b"\n") + first_row
        raise BadInput(
            f"{p.name}, row {line}: byte 0x{data[exc.start]:02x} is not UTF-8; the file looks like a legacy "
            f"8-bit encoding (Windows-1258, TCVN3/ABC or VNI). {_SAVE_AS}"
        ) from None


def sniff_delimiter(lines: list[str]) -> str:
    sample = "\n".join(lines)
    counts = {d: sample.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def check_cells(row: list[str], where: str, row_no: int, word: str = "row") -> None:
    """Refuses a cell longer than MAX_CELL_CHARS, naming its row (or line) and column, numbered as CSV has no
    letters."""
    for c, cell in enumerate(row):
        if len(cell) > MAX_CELL_CHARS:
            raise long_cell(where, f"{word} {row_no}", str(c + 1))


def long_cell(where: str, row: str, column: str) -> BadInput:
    return BadInput(f"{where}, {row}, column {column}: a cell longer than {MAX_CELL_CHARS:,} characters, the most "
                    "a spreadsheet cell holds. Hint: the file is damaged or not what it should be; export it again.")


def column_name(c: int) -> str:
    """A 0-based column index as a spreadsheet names it: 0 -> A, 26 -> AA."""
    s, c = "", c + 1
    while c:
        c, rem = divmod(c - 1, 26)
        s = chr(65 + rem) + s
    return s
