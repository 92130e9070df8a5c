"""Read the YAML files a person writes or edits (catalog, rules, sidecars, mappings, project and plan
files): one parse gives the nodes (for file:line:col) and the data, and what no format here uses or
survives is refused with its position.

Refused, each as one `file:line:col: what. Hint: ...` line:
- anchors used by aliases (`&a` ... `*a`): a few hundred bytes of aliases expand into gigabytes when a
  document is walked or printed as a tree, and no format here has a use for them;
- `.nan`, `.inf` and numbers too large for a float: no count of days or factor is infinite;
- a key given twice in a mapping: YAML keeps the last one silently;
- YAML syntax errors, control characters, and nesting deeper than the parser takes (libyaml: 1000).
Files a person writes are read up to MAX_BYTES; plan files (written by `reconcile plan`, 60 MB and
more) are read whole. Dates and times stay text (each reader parses them with its own message).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from reconcile.errors import BadInput

MAX_BYTES = 1 << 20  # a catalog version, rules, mapping, sidecar or project file is a few kB
LIMIT = 60  # characters of a value quoted in a message
FLOAT_TAG = "tag:yaml.org,2002:float"
_ANCHOR = re.compile(r"&([^\s,\[\]{}]+)")

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed: 20x faster, depth-bounded


class Loader(_Base):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader (libyaml's parser when installed) that keeps timestamps as text, so that a
    bad date ("2021-02-30") is a reader's message with its position, not a ValueError."""


Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def read_text(path: str | os.PathLike[str], max_bytes: int | None = MAX_BYTES) -> str:
    """The file's text (UTF-8, a byte order mark dropped); BadInput when it cannot be read, is not
    UTF-8 or is larger than `max_bytes`."""
    where = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except OSError as e:
        raise BadInput(f"{where}: cannot read: {e.strerror}. Hint: check the path and the file's permissions.") \
            from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise BadInput(f"{where}: larger than {max_bytes // (1 << 20)} MiB; this kind of file is a few kB. Hint: "
                       "check that it is the right file.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise BadInput(f"{where}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}). Hint: save "
                       "the file as UTF-8.") from None


def parse(text: str, where: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for positions) and the data constructed from it; BadInput (every problem found,
    one line each) for what the module's doc lists."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        problems = _check(node, where, loader, text)
        if problems:
            raise BadInput(problems[0] if len(problems) == 1 else f"{where}: {len(problems)} problems", problems)
        return node, loader.construct_document(node)
    except yaml.YAMLError as e:
        raise BadInput(syntax_error(where, text, e)) from None
    except RecursionError:  # the pure-Python parser (no libyaml) on deep nesting
        raise BadInput(f"{where}: YAML nested too deeply. Hint: no format here nests more than a few levels.") \
            from None
    finally:
        loader.dispose()


def load(path: str | os.PathLike[str], max_bytes: int | None = MAX_BYTES) -> tuple[yaml.Node | None, Any]:
    """read_text, then parse."""
    return parse(read_text(path, max_bytes), os.fspath(path))


def syntax_error(where: str, text: str, e: yaml.YAMLError) -> str:
    """`file:line:col: YAML syntax error: what. Hint: ...`."""
    if isinstance(e, yaml.reader.ReaderError):  # a control character: an offset (libyaml's in UTF-8 bytes)
        pos = e.position
        if e.encoding != "unicode":
            pos = len(text.encode("utf-8")[:pos].decode("utf-8", "ignore"))
        line = text.count("\n", 0, pos) + 1
        col = pos - text.rfind("\n", 0, pos)
        return (f"{where}:{line}:{col}: YAML syntax error: {e.reason} (#x{e.character:04x}). Hint: remove the "
                "control character.")
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        if isinstance(e, yaml.constructor.ConstructorError) and mark is not None:  # a tag: a syntax that is fine
            tag = next(iter(re.findall(r"'([^']*)'", str(e.problem))), "?").replace("tag:yaml.org,2002:", "!!")
            tag = cut(tag, LIMIT)
            return (f"{at}: unsupported YAML tag {tag}. Hint: these files hold plain data (text, numbers, lists "
                    "and mappings): remove the tag.")
        what = " ".join(str(e.problem or e.context).split())
        return (f"{at}: YAML syntax error: {what}. Hint: check the indentation and quoting on this line and the one "
                "above.")
    return f"{where}: YAML error: {' '.join(str(e).split())}."


def at(where: str, node: yaml.Node | None) -> str:
    """`file:line:col` of a node (the file alone without one)."""
    if node is None:
        return where
    return f"{where}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def position(line: str, where: str) -> tuple[int, int]:
    """(line, col) of a message that starts with `where:line:col:`, for sorting a file's problems."""
    head = line[len(where) + 1:].split(":", 2)
    if len(head) > 2 and head[0].isdigit() and head[1].isdigit():
        return int(head[0]), int(head[1])
    return 0, 0


def shown(value: Any, limit: int = LIMIT) -> str:
    """repr(value) for a message, cut to about `limit` characters (a value from a file may be megabytes)."""
    return cut(repr(value), limit)


def _check(root: yaml.Node, where: str, loader: Any, text: str) -> list[str]:
    """Aliases (the first one ends the walk: the tree may be exponential), repeated keys and non-finite
    numbers. The walk visits each node once, so it is linear in the file whatever the file holds."""
    problems: list[str] = []
    seen: set[int] = set()
    todo = [root]
    pop, push, extend, add = todo.pop, todo.append, todo.extend, seen.add
    mapping, sequence = yaml.MappingNode, yaml.SequenceNode
    while todo:
        node = pop()
        if id(node) in seen:  # the composer gives an alias the anchored node itself
            m = _ANCHOR.match(text, node.start_mark.index)
            name = m[1] if m else "..."
            return [f"{at(where, node)}: YAML anchor &{name} is used by an alias (*{name}): anchors and aliases are "
                    "not read here. Hint: write the value out in full where the alias is."]
        add(id(node))
        kind = type(node)
        if kind is mapping:
            pairs = node.value
            if len({k.value for k, _ in pairs if type(k.value) is str}) < len(pairs):
                problems += _repeated(where, pairs)
            for k, v in pairs:
                push(v)
                push(k)
        elif kind is sequence:
            extend(node.value)
        elif node.tag == FLOAT_TAG and not math.isfinite(loader.construct_yaml_float(node)):
            problems.append(f"{at(where, node)}: {shown(node.value)} is not a finite number. Hint: write a number "
                            "such as 5 or 0.5.")
    return problems


def _repeated(where: str, pairs: list[tuple[yaml.Node, yaml.Node]]) -> list[str]:
    """Keys given twice in one mapping (YAML keeps the last silently)."""
    out, first = [], {}
    for k, _ in pairs:
        if type(k.value) is not str:
            continue
        if k.value in first:
            mark = first[k.value].start_mark
            out.append(f"{at(where, k)}: duplicate key '{cut(k.value, LIMIT)}' (first at {mark.line + 1}:"
                       f"{mark.column + 1}). Hint: keep one; YAML would silently keep only the last.")
        else:
            first[k.value] = k
    return out


# ------------------------------------------------------------------------ schema checks


def schema_problems(where: str, root: yaml.Node | None, validator: Draft202012Validator, data: Any,
                    hint: str = "") -> list[str]:
    """Every JSON Schema error of `data`, each `file:line:col: json.path: what`, in file order (located
    in the node tree `root` it was constructed from)."""
    errors = sorted(validator.iter_errors(data), key=lambda e: _order(root, e))
    return [schema_problem(where, root, e, hint) for e in errors]


def _order(root: yaml.Node | None, e: ValidationError) -> tuple[int, int]:
    node = node_at(root, e.absolute_path) if root is not None else None
    return (node.start_mark.line, node.start_mark.column) if node is not None else (0, 0)


def schema_problem(where: str, root: yaml.Node | None, error: ValidationError, hint: str = "") -> str:
    """One schema error: `file:line:col: json.path: what[. hint]`, the value quoted short."""
    node = node_at(root, error.absolute_path) if root is not None else None
    if node is not None and error.validator == "additionalProperties":  # at the first unknown key
        known = error.schema.get("properties", {})
        node = next((k for k, _ in getattr(node, "value", ()) if isinstance(k, yaml.ScalarNode)
                     and k.value not in known), node)
    json_path = path_text(error.absolute_path, root)
    what = schema_message(error)
    line = f"{at(where, node)}: {json_path + ': ' if json_path else ''}{what}"
    if isinstance(error.schema, dict) and "hint" in error.schema:  # a key's own hint (validators ignore the word)
        hint = f"Hint: {error.schema['hint']}."
    if hint:
        line = f"{line}{'' if line.endswith('.') else '.'} {hint}"
    return line


def schema_message(error: ValidationError) -> str:
    """jsonschema's message, with the value it quotes cut short (a mapping or list: named by its kind)."""
    if error.validator == "required":
        keys = ", ".join(cut(str(k), 30) for k in error.instance) or "none"
        missing = error.message.removesuffix(" is a required property")
        return f"{missing} is required. Keys here: {keys}."
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in known]
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        return f"unknown key {shown(extra[0], 30)}{more}. Known: {', '.join(known)}"
    kind = {dict: "a mapping", list: "a list"}.get(type(error.instance))
    if kind and error.validator == "type":  # the default message repeats the whole mapping or list
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{kind} is not of type {', '.join(repr(t) for t in types)}"
    if error.validator == "enum":
        return f"{shown(error.instance)} is not one of: {', '.join(map(str, error.validator_value))}"
    text = error.message
    if len(text) > 2 * LIMIT:
        text = text.replace(repr(error.instance), kind or shown(error.instance))
    return cut(text, 3 * LIMIT)


def cut(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters (saying how long it was)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def path_text(path: Any, root: yaml.Node | None = None) -> str:
    """A jsonschema path as `steps[0].days` (a whole-number key of a mapping, when `root` tells: `.2`)."""
    out: list[str] = []
    node: Any = root
    for p in path:
        in_mapping = isinstance(node, yaml.MappingNode)
        out.append(f".{p}" if in_mapping or not isinstance(p, int) else f"[{p}]")
        if in_mapping:
            node = value_node(node, str(p))
        else:
            node = node.value[p] if isinstance(node, yaml.SequenceNode) and isinstance(p, int) and p < len(node.value) \
                else None
    return "".join(out).lstrip(".")


def node_at(node: yaml.Node, json_path: Any) -> yaml.Node:
    """The deepest node along a path of keys and indexes."""
    for part in json_path:
        if isinstance(node, yaml.MappingNode) and (child := value_node(node, str(part))) is not None:
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node


def key_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    return pair(node, key)[0]


def value_node(node: yaml.Node | None, key: str) -> Any:  # Any: callers know the node kind from the schema
    return pair(node, key)[1]


def pair(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    """Key and value nodes of `key` in a mapping node."""
    pairs = node.value if isinstance(node, yaml.MappingNode) else []
    for k, v in pairs:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None, None
