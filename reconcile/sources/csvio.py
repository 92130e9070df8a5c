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


def line_chunks(path: Path, start: int) -> Iterator[tuple[int, memoryview]]:
    """(offset, bytes) pieces of the file from byte `start`, each about CHUNK_BYTES and ending at a
    line end (the last one at the file's end). Each piece is read straight into its own buffer and
    handed out as a view: no copy of the file's bytes beyond the read itself (only the few bytes
    after a piece's last line end move to the next buffer)."""
    with path.open("rb", buffering=0) as fh:
        fh.seek(start)
        offset, carry = start, b""
        while True:
            buf = bytearray(len(carry) + CHUNK_BYTES)
            buf[:len(carry)] = carry
            view = memoryview(buf)
            end = len(carry)
            while end < len(buf):  # a raw read may return less than asked
                n = fh.readinto(view[end:])
                if not n:
                    break
                end += n
            if end == len(carry):  # the file's end
                break
            cut = buf.rfind(b"\n", 0, end) + 1
            if cut == 0:  # one line longer than a block: keep reading
                carry = bytes(view[:end])
                continue
            carry = bytes(view[cut:end])
            yield offset, view[:cut]
            offset += cut
        if carry:
            yield offset, memoryview(carry)
