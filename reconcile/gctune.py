"""Garbage-collector control for the stages that hold many objects at once (planning, apply, undo)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FIRST_THRESHOLD = 50_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often (first threshold 50,000 instead of 700) for the block
    or the decorated function, and restore the thresholds after.

    Building, writing, applying or undoing 100k actions keeps millions of objects alive that form no
    cycles; the collector rescans every live object each time enough new ones were made, again and again
    (planning: 0.5 s of 2; apply of 100k fixes: 28 -> 24 s). Raising the threshold, rather than switching
    the collector off, still frees any cycles made meanwhile. Nests: an inner use keeps the outer value.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], FIRST_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
