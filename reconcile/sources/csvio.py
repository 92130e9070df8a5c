"""Large CSV files in pieces: bounded memory, and each piece still parsed by Arrow on every core."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

CHUNK_BYTES = 32 << 20  # about 100k register rows: two of Arrow's 16 MB parse blocks (both cores busy), little memory


def line_offset(path: Path, lines: int) -> int:
    """Byte offset just after the first `lines` line ends (the file's end if it has fewer)."""
    offset = 0
    with path.open("rb") as fh:
        for _ in range(lines):
            line = fh.readline()
            if not line:
                break
            offset += len(line)
    return offset


def line_chunks(path: Path, start: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) pieces of the file from byte `start`, each about CHUNK_BYTES and ending at a
    line end (the last one at the file's end)."""
    size = CHUNK_BYTES
    with path.open("rb") as fh:
        fh.seek(start)
        offset, carry = start, b""
        while True:
            block = fh.read(size)
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a block: keep reading
                carry = data
                continue
            yield offset, data[:cut]
            offset += cut
            carry = data[cut:]
        if carry:
            yield offset, carry
