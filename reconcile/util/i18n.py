"""The one message catalog of reports and tables (Vietnamese by default, English), and local formats."""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml

from reconcile.errors import BadInput

LANGS = ("vi", "en")
DEFAULT_LANG = "vi"


@cache
def catalog() -> dict[str, dict[str, str]]:
    """key -> {vi: text, en: text}, from reconcile/data/messages.yaml (str.format placeholders)."""
    text = resources.files("reconcile").joinpath("data/messages.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 10x faster


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise BadInput(f"--lang {lang!r}: no such language. Expected one of: {', '.join(LANGS)}.")
    return lang


def t(key: str, lang: str = DEFAULT_LANG, **params: Any) -> str:
    """The message `key` in `lang`, with `params` filled in; a missing key is a bug (KeyError)."""
    text = catalog()[key][lang]
    return text.format(**params) if params else text


def number(n: int | float, lang: str = DEFAULT_LANG, decimals: int = 0) -> str:
    """15.256 and 78,4 in Vietnamese; 15,256 and 78.4 in English."""
    text = f"{n:,.{decimals}f}"
    return text.translate(str.maketrans(",.", ".,")) if lang == "vi" else text


def percent(part: int, whole: int, lang: str = DEFAULT_LANG) -> str:
    """part/whole as a percentage with one decimal ("78,4%"); an en dash when whole is 0."""
    return "–" if not whole else number(100 * part / whole, lang, 1) + "%"


def day(d: date | str | None, lang: str = DEFAULT_LANG) -> str:
    """dd/mm/yyyy in Vietnamese, ISO in English; empty for no date."""
    if d is None or d == "":
        return ""
    d = date.fromisoformat(d[:10]) if isinstance(d, str) else d
    return d.strftime("%d/%m/%Y") if lang == "vi" else d.isoformat()
