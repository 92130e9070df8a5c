"""Message templates of `reconcile notify`: read (yamlio), checked (schema and placeholders, file:line:col),
and filled in."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from reconcile.errors import BadInput
from reconcile.model import Status
from reconcile.util import yamlio
from reconcile.util.normalize import without_diacritics

KINDS = ("closed", "moved", "overdue")
PLACEHOLDERS = ("code", "procedure", "state", "date", "due", "step", "unit", "agency", "office")
HINT = 'Hint: see "Telling citizens" in README (message templates).'
_TEXT = {"type": "string", "minLength": 1}
_MESSAGE = {"type": "object", "additionalProperties": False, "required": ["text"],
            "properties": {"text": _TEXT, "plain": {**_TEXT, "hint": "the message without diacritics"}}}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["messages"],
    "properties": {
        "diacritics": {"type": "boolean", "hint": "true or false (a YAML boolean)"},
        "office": _TEXT,
        "units": {"type": "object", "additionalProperties": _TEXT},
        "states": {"type": "object", "additionalProperties": False,
                   "properties": {s.value: _TEXT for s in Status}},
        "messages": {"type": "object", "additionalProperties": False, "required": list(KINDS),
                     "properties": {k: _MESSAGE for k in KINDS}},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)
_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class Templates:
    path: str
    diacritics: bool
    office: str | None
    units: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # kind -> text with diacritics
    plains: dict[str, str] = field(default_factory=dict)  # kind -> text without, where the file gives one

    def render(self, kind: str, values: dict[str, str], diacritics: bool) -> str:
        """The message of `kind` with `values` put in; without diacritics, the plain text (or the text) with
        every diacritic of the result taken off, the values' too."""
        if diacritics:
            return self.texts[kind].format_map(values)
        return without_diacritics(self.plains.get(kind, self.texts[kind]).format_map(values))

    def state(self, status: str) -> str:
        return self.states.get(status, status)


def default_path() -> Path:
    return Path(str(resources.files("reconcile") / "data" / "notify-templates.yaml"))


def load(path: str | Path | None = None) -> Templates:
    """The templates file (default: the shipped one), checked; BadInput with every problem, each
    `file:line:col: what. Hint: ...`."""
    where = str(path or default_path())
    node, data = yamlio.load(where)
    if not isinstance(data, dict):
        raise BadInput(f"{where}:1:1: expected a mapping with messages: (closed, moved, overdue). {HINT}")
    problems = yamlio.schema_problems(where, node, _VALIDATOR, data, HINT)
    if not problems:
        problems = _placeholder_problems(where, node, data)
    if problems:
        raise BadInput(problems[0] if len(problems) == 1 else f"{where}: {len(problems)} problems", problems)
    messages = data["messages"]
    return Templates(where, bool(data.get("diacritics", True)), data.get("office"), dict(data.get("units") or {}),
                     dict(data.get("states") or {}), {k: messages[k]["text"] for k in KINDS},
                     {k: messages[k]["plain"] for k in KINDS if "plain" in messages[k]})


def _placeholder_problems(where: str, root: yaml.Node | None, data: dict[str, Any]) -> list[str]:
    """Each text's placeholders: known names only, no format specs or conversions, braces balanced."""
    problems = []
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for kind in KINDS:
        for variant in ("text", "plain"):
            text = data["messages"][kind].get(variant)
            if text is None:
                continue
            at = yamlio.at(where, yamlio.node_at(root, ["messages", kind, variant])) if root is not None else where
            name = f"messages.{kind}.{variant}"
            try:
                parts = list(_FORMATTER.parse(text))
            except ValueError as exc:
                problems.append(f"{at}: {name}: {exc}. Hint: write a brace as {{{{ or }}}}; placeholders are {known}.")
                continue
            for _, field_name, spec, conversion in parts:
                if field_name is None:
                    continue
                if field_name not in PLACEHOLDERS:
                    problems.append(f"{at}: {name}: unknown placeholder {{{field_name}}}. Hint: placeholders are "
                                    f"{known}.")
                elif spec or conversion:
                    problems.append(f"{at}: {name}: {{{field_name}}} takes no format or conversion. Hint: write "
                                    f"{{{field_name}}}.")
    return problems
