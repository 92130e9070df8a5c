"""Garbage-collector control for the stages that hold many objects at once (planning, apply, undo)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FIRST_THRESHOLD = 50_000


@contextmanager
def fewer_collections(*, paused: bool = False) -> Iterator[None]:
    """Run the cyclic garbage collector less often for the block or the decorated function, and restore
    its settings after; nested uses keep the outer, less frequent setting.

    Building, writing, applying or undoing 100k actions keeps millions of objects alive, and the collector
    rescans every live object each time enough new ones were made, again and again. Apply and undo raise
    its first threshold (50,000 instead of 700; apply of 100k fixes: 28 -> 24 s) so it still frees the
    cycles a database driver may make. Planning makes no cycles at all and pauses it (`paused=True`:
    0.5 s of 2 at 100k actions).
    """
    was_enabled = gc.isenabled()
    old = gc.get_threshold()
    if paused:
        gc.disable()
    else:
        gc.set_threshold(max(old[0], FIRST_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if was_enabled:
            gc.enable()
