"""The plan file's YAML, written and read without PyYAML's per-node Python work.

`dump` writes block-style YAML in PyYAML's layout, except that a mapping of plain values (text,
whole numbers, true/false, null) takes one line as JSON, which is a valid YAML flow mapping with the
same data: `set: {"assignee": "u01.can1"}`. A text value stays plain when YAML reads it back as the
same text, otherwise it is JSON-quoted (a valid YAML double-quoted scalar). `load` reads exactly
that subset of YAML, also as a person edits it (actions removed, values changed), and returns None
for anything else (other indentation or quoting, a comment after a value, multi-line scalars...):
the caller then reads the file with PyYAML. Whatever `load` accepts, `yaml.safe_load` reads as the
same data (tests check both on the same texts).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import yaml
from yaml.resolver import Resolver

# What YAML 1.1 reads as something other than text when written plain (bools, null, numbers, dates), by
# first character, as PyYAML looks them up.
_NOT_TEXT = {c: re.compile("|".join(sorted({f"(?:{r.pattern})" for _, r in rs})), re.X)
             for c, rs in Resolver.yaml_implicit_resolvers.items()}
# Plain scalars written and read here: not one of those; a letter or digit first, then a conservative
# set of characters; no ': ' inside, no ':' or space at the end (YAML would read them differently).
_PLAIN = re.compile(r"[^\W_][\w .,;:()/@+='-]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # keys written plain
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
# Characters written escaped in quoted scalars: YAML reads them as line breaks or refuses them raw.
_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")
# What `load` refuses outright: YAML's non-printable characters, its other line breaks, tabs, CR, BOM.
_ODD = re.compile("[^\n\x20-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_WORDS: dict[str, Any] = {"null": None, "true": True, "false": False}
_FLAT, _TEXT = {str, int, bool, type(None)}, {str}  # the values and keys of a one-line mapping
_WORDS_OF = {None: "null", True: "true", False: "false"}
_encode_text = json.encoder.encode_basestring  # json.dumps(s, ensure_ascii=False) of a str, in C
_SURROGATE = re.compile(r"\\u[dD][89abAB]")


def plain(s: str) -> bool:
    """Does YAML read `s`, written plain (unquoted), back as this text?"""
    return _PLAIN.fullmatch(s) is not None and ": " not in s and s[-1] not in ": " and _text(s)


def plain_key(s: str) -> bool:
    """Is `s` a key written plain (letters, digits, '_'; not one YAML reads as a bool or null)?"""
    return _KEY.fullmatch(s) is not None and _text(s)


def _text(s: str) -> bool:
    """Does YAML read `s` (not empty) as text, by its implicit resolvers for `s`'s first character?"""
    not_text = _NOT_TEXT.get(s[0])
    return not_text is None or not_text.match(s) is None


def _escaped(json_text: str) -> str:
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


# ------------------------------------------------------------------------------------------ dump


class _Text:
    """Text of values, computed once per distinct value (plan files repeat most of them): strings
    `plain` as a value of the block layout and `quoted` as JSON, one-line mappings as `flows`."""

    def __init__(self) -> None:
        self.plain: dict[str, str] = {}
        self.quoted: dict[str, str] = {}
        self.flows: dict[bytes, str] = {}

    def value(self, s: str) -> str:
        text = self.plain.get(s)
        if text is None:
            text = self.plain[s] = s if plain(s) else self.quote(s)
        return text

    def quote(self, s: str) -> str:
        text = self.quoted.get(s)
        if text is None:
            text = self.quoted[s] = _escaped(_encode_text(s))
        return text

    def flow(self, d: dict[Any, Any]) -> str | None:
        """A mapping of plain values as one line of JSON; None for any other mapping."""
        if not (_FLAT.issuperset(map(type, d.values())) and _TEXT.issuperset(map(type, d))):
            return None
        try:
            key = orjson.dumps(d)  # compact JSON tells such mappings apart (1 and true too), fast
        except orjson.JSONEncodeError:  # text with lone surrogates, whole numbers beyond 64 bits
            return self.json(d)
        text = self.flows.get(key)
        if text is None:
            text = self.flows[key] = self.json(d)
        return text

    def json(self, d: dict[str, Any]) -> str:
        q = self.quote
        return "{" + ", ".join([f"{q(k)}: {q(v) if type(v) is str else v if type(v) is int else _WORDS_OF[v]}"
                                for k, v in d.items()]) + "}"

    def scalar(self, v: Any) -> str:
        if type(v) is str:
            return self.value(v)
        if v is None or v is True or v is False:
            return _WORDS_OF[v]
        if type(v) is int:
            return str(v)
        if v == {} or v == []:
            return "{}" if type(v) is dict else "[]"
        return yaml.safe_dump(v, default_flow_style=True).split("\n", 1)[0]  # float, date: as PyYAML writes them


def dump(data: dict[str, Any]) -> str:
    """`data` (dicts, lists, scalars) as YAML, keys in their order (see the module's doc)."""
    out: list[str] = []
    _mapping(data, "", out, _Text(), {})
    return "\n".join(out) + "\n"


def _mapping(d: dict[Any, Any], pad: str, out: list[str], text: _Text, keys: dict[Any, str],
             first: str | None = None) -> None:
    """The block mapping at indentation `pad`; its first line starts with `first` (after a "- ")."""
    lead = pad if first is None else first
    values, append = text.plain, out.append
    for k, v in d.items():
        head = keys.get(k)
        if head is None:
            head = keys[k] = (k if type(k) is str and plain_key(k) else text.quote(str(k))) + ":"
        t = type(v)
        if t is str:
            append(f"{lead}{head} {values.get(v) or text.value(v)}")  # the cache inline: most values repeat
        elif t is dict and v:
            flow = text.flow(v)
            if flow is not None:
                append(f"{lead}{head} {flow}")
            else:
                append(lead + head)
                _mapping(v, pad + "  ", out, text, keys)
        elif t is list and v:
            append(lead + head)
            _sequence(v, pad, out, text, keys)  # indentless, as PyYAML writes it
        else:
            append(f"{lead}{head} {text.scalar(v)}")
        lead = pad


def _sequence(items: list[Any], pad: str, out: list[str], text: _Text, keys: dict[Any, str]) -> None:
    for v in items:
        flow = text.flow(v) if type(v) is dict and v else None
        if flow is not None:
            out.append(f"{pad}- {flow}")
        elif type(v) is dict and v:
            _mapping(v, pad + "  ", out, text, keys, first=pad + "- ")
        elif type(v) is list and v:
            raise TypeError("a list directly in a list: not in plan files")
        else:
            out.append(f"{pad}- {text.scalar(v)}")


# ------------------------------------------------------------------------------------------ load


class _Unsupported(Exception):
    """Not the subset `load` reads: the caller reads the file with PyYAML."""


# Every line: blank or comment (all groups empty), or indentation, "- ", then "key: value", "key:"
# or a scalar (after "- "; anything else there is refused by the reader).
_LINES = re.compile(r"^(?: *(?:#.*)?|( *)(- )?(?:([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?|(.+)))$", re.M)
_BLANK = ("", "", "", "", "")
Line = tuple[str, str, str, str, str]  # indentation, dash, key, value, scalar item


def load(text: str) -> tuple[Any, dict[int, int]] | None:
    """The document, and the line (1-based) of every mapping by id(); None outside the subset."""
    if _ODD.search(text):
        return None
    lines: list[Line] = _LINES.findall(text)
    if len(lines) != text.count("\n") + 1:  # a line that is none of those
        return None
    numbers: list[int] | None = None  # line numbers when blank or comment lines are left out
    while lines and lines[-1] == _BLANK:
        lines.pop()
    if _BLANK in lines:
        numbers = [no for no, t in enumerate(lines, 1) if t != _BLANK]
        lines = [t for t in lines if t != _BLANK]
    if not lines or lines[0][0] or lines[0][1]:
        return None
    reader = _Reader(lines, numbers)
    try:
        data, i = reader.mapping(0, 0, False)
    except _Unsupported:
        return None
    return (data, reader.lines) if i == len(lines) else None


class _Reader:
    """Blocks by indentation over the lines: anything YAML could read otherwise is _Unsupported."""

    def __init__(self, lines: list[Line], numbers: list[int] | None) -> None:
        self.text, self.numbers = lines, numbers
        self.lines: dict[int, int] = {}
        self.values: dict[str, Any] = {}
        self.keys: set[str] = set()

    def mapping(self, indent: int, i: int, inline: bool) -> tuple[dict[str, Any], int]:
        """The mapping whose keys are at column `indent`, from line i (`inline`: after that line's "- ")."""
        out: dict[str, Any] = {}
        self.lines[id(out)] = self.line(i)
        text, end, pad, values, keys = self.text, len(self.text), " " * indent, self.values, self.keys
        while i < end:
            ind, dash, key, value, item = text[i]
            if inline:
                inline = False
            elif dash or ind != pad:
                break
            if not key:
                raise _Unsupported  # text that is neither a key nor a sequence item
            if key not in keys:
                if not plain_key(key):
                    raise _Unsupported
                keys.add(key)
            if key in out:
                raise _Unsupported  # a key given twice: PyYAML's reading (reconcile.util.yamlio) refuses it with its line
            i += 1
            if value:
                v = values.get(value, values)
                out[key] = v if v is not values else _json(value) if value[0] in "{[" else self.value(value)
            elif i < end and (len(text[i][0]) > indent or (text[i][1] and text[i][0] == pad)):
                out[key], i = self.block(len(text[i][0]), i)  # a nested block, or an indentless sequence
            else:
                out[key] = None
        self.end(indent, i)
        return out, i

    def line(self, i: int) -> int:
        return i + 1 if self.numbers is None else self.numbers[i]

    def block(self, indent: int, i: int) -> tuple[Any, int]:
        return self.sequence(indent, i) if self.text[i][1] else self.mapping(indent, i, False)

    def sequence(self, indent: int, i: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        text, end, pad = self.text, len(self.text), " " * indent
        while i < end and text[i][1] and text[i][0] == pad:
            if text[i][2]:
                item, i = self.mapping(indent + 2, i, True)
                out.append(item)
            elif text[i][4].startswith("#"):
                raise _Unsupported
            else:
                item = self.value(text[i][4])
                if type(item) is dict:
                    self.lines[id(item)] = self.line(i)
                out.append(item)
                i += 1
        self.end(indent, i)
        return out, i

    def end(self, indent: int, i: int) -> None:
        """After a block: the next line must belong to an enclosing block."""
        if i < len(self.text) and len(self.text[i][0]) > indent:
            raise _Unsupported

    def value(self, s: str) -> Any:
        """A scalar, cached (flow mappings and sequences are new objects each time)."""
        if s[0] in "{[":
            return _json(s)
        v = self.values[s] = _value(s)
        return v


def _value(s: str) -> Any:
    if plain(s):
        return s
    if s in _WORDS:
        return _WORDS[s]
    if _INT.fullmatch(s):
        return int(s)
    if s[0] in '"{[':
        return _json(s)
    raise _Unsupported


def _json(s: str) -> Any:
    """A JSON string, object or array: YAML reads the same, but for numbers with a fraction or an exponent
    (YAML 1.1 reads 1e5 as text) and surrogate pairs (JSON joins them, YAML does not)."""
    if "\\u" in s and _SURROGATE.search(s):
        raise _Unsupported
    try:
        v, end = _scan(s, 0)
    except (ValueError, StopIteration):
        raise _Unsupported from None
    if end != len(s):
        raise _Unsupported
    return v


def _refuse(_: str) -> Any:
    raise _Unsupported


_scan = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse).scan_once  # the C scanner: one value
