"""Which fields of two records differ, found by DeepDiff: for the few records a person edited (a plan's
header, an action's pinned copies), never on a bulk path (over many rows it is far too slow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def differing(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The fields whose values differ (a field on one side only differs too), in `before`'s order, then
    `after`'s. Values of different types differ, as DeepDiff compares them."""
    if before == after:  # the usual case: no import (about a second) and no DeepDiff (~30x a comparison)
        return []
    from deepdiff import DeepDiff

    found = DeepDiff(dict(before), dict(after), view="tree")
    fields = {level.path(output_format="list")[0] for levels in found.values() for level in levels}
    return [f for f in dict.fromkeys([*before, *after]) if f in fields]
