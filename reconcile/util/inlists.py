"""Many keys read in IN lists of a bounded size."""

from __future__ import annotations

from typing import Iterator, TypeVar

T = TypeVar("T")

IN_CHUNK = 500  # values per IN list: well within what every database takes as bound values


def chunks(items: list[T], n: int = IN_CHUNK) -> Iterator[list[T]]:
    """`items` in consecutive lists of at most `n`."""
    for i in range(0, len(items), n):
        yield items[i:i + n]
