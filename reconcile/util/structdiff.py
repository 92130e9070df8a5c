"""Which keys of two flat mappings hold different values, found by DeepDiff (for the few records that differ).

Its callers (a step across two workflow versions; one dossier on paper, in the system and in a plan; an
edited plan's header and pinned copies) compare a handful of records field by field, keyed (record, field).
One DeepDiff over a flat mapping of all of them costs about half of one DeepDiff per record: each call's
setup is ~0.1 ms, and each level of nesting is copied once per leaf. Never a bulk path: over a million rows DeepDiff is far too
slow (the audit's set-based SQL finds the rows that differ).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any


def differing_keys(before: Mapping[Hashable, Any], after: Mapping[Hashable, Any]) -> set[Hashable]:
    """The keys whose values differ, and the keys only one side has. Values are compared as given (no
    type is ignored): callers pass them already as they should compare (a name's compare_key, a day
    count as float)."""
    if before == after:  # the common case, and DeepDiff's import (about a second) is then never paid
        return set()
    from deepdiff import DeepDiff

    tree = DeepDiff(dict(before), dict(after), view="tree")
    return {level.path(output_format="list")[0] for levels in tree.values() for level in levels}


def differing(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """differing_keys of two records, in `before`'s key order, then `after`'s (for messages that list them)."""
    found = differing_keys(before, after)
    return [k for k in dict.fromkeys([*before, *after]) if k in found]
