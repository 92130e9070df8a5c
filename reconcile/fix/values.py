"""Cell values as apply and undo handle them: their JSON text in the change log (typed: dates,
decimals, bytes; ABSENT for a row that does not exist), a canonical value in a target column's own type,
and comparison across the types drivers return.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
import json
from typing import Any

import sqlalchemy as sa

# One encoder for every value written to the log: json.dumps with options builds a new encoder per
# call, a third of the log's encoding time at 100k fixes.
_JSON = json.JSONEncoder(ensure_ascii=False)
_JSON_SORTED = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
# The types that are not JSON's, logged as {tag: text}, and how each is read back.
_TAGGED = {"datetime": datetime.fromisoformat, "date": date.fromisoformat, "decimal": Decimal, "hex": bytes.fromhex}


class _Absent:
    """The value of a cell whose row does not exist: before an INSERT, after a DELETE."""

    def __repr__(self) -> str:
        return "(no row)"


ABSENT = _Absent()
ABSENT_TEXT = '{"absent": true}'  # its encoding in the change log


def encode_value(v: Any) -> str | None:
    """A database value as JSON text that decodes to the same Python type (None stays SQL NULL)."""
    if isinstance(v, str):  # most values: accounts, steps, codes
        return _JSON.encode(v)
    if v is None:
        return None
    if v is ABSENT:
        return ABSENT_TEXT
    if isinstance(v, datetime):
        v = {"datetime": v.isoformat()}
    elif isinstance(v, date):
        v = {"date": v.isoformat()}
    elif isinstance(v, Decimal):
        v = {"decimal": str(v)}
    elif isinstance(v, (bytes, bytearray, memoryview)):
        v = {"hex": bytes(v).hex()}
    return _JSON.encode(v)


def decode_value(text: str | None) -> Any:
    """The value `encode_value` encoded."""
    return decode_values([text])[0]


def decode_values(texts: list[str | None]) -> list[Any]:
    """`decode_value` of each text, read with one json.loads for all (one each takes 5x as long)."""
    parsed = json.loads("[" + ",".join("null" if text is None else text for text in texts) + "]")
    return [ABSENT if text == ABSENT_TEXT else _untagged(v) for text, v in zip(texts, parsed)]


def _untagged(v: Any) -> Any:
    """A value read from JSON, a {tag: text} turned back into its type."""
    if isinstance(v, dict):
        (tag, text), = v.items()
        return _TAGGED[tag](text)
    return v


def row_key_text(key: tuple[tuple[str, Any], ...]) -> str:
    """A row's key (key column -> value) as the change log's JSON: each value's `encode_value`, by column."""
    return _JSON_SORTED.encode({column: encode_value(v) for column, v in key})


def shown_value(v: Any) -> str:
    return "NULL" if v is None else repr(v.isoformat(" ") if isinstance(v, datetime) else
                                         v.isoformat() if isinstance(v, date) else v)


def coerce_value(value: Any, column: sa.Column[Any]) -> Any:
    """A canonical value in the target column's own Python type (raises ValueError)."""
    if value is None:
        return None
    try:
        kind: type | None = column.type.python_type
    except NotImplementedError:
        kind = None
    if kind is bool:
        raise ValueError(f"column {column.name} is boolean")
    if kind is int:
        if isinstance(value, (date, datetime)):
            raise ValueError(f"a date in the whole-number column {column.name}")
        return int(str(value).strip())
    if kind in (float, Decimal):
        return kind(str(value).strip())
    if kind is datetime:
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        return datetime.fromisoformat(str(value))
    if kind is date:
        if isinstance(value, datetime):
            if value.time() != datetime.min.time():
                raise ValueError(f"a time of day in the date column {column.name}")
            return value.date()
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return value.isoformat() if isinstance(value, date) else str(value)


def same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a == b and type(a) is type(b):
        return True
    return isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)) and a == b \
        and not isinstance(a, bool) and not isinstance(b, bool)
