"""JSON through orjson: a 1M-row audit reads and writes tens of thousands of findings (about 10x
faster than the json module). The text is the json module's (ensure_ascii=False, indent=2 when
pretty), except that compact output has no spaces after separators."""

from __future__ import annotations

from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME  # dates as str(date), like default=str


def dumps(data: Any, pretty: bool = False, sort_keys: bool = False) -> str:
    option = _OPTS | (orjson.OPT_INDENT_2 if pretty else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(data, default=str, option=option).decode()


loads = orjson.loads
