"""The plan file's fast YAML: what `dump` writes reads back the same through PyYAML and `load`, and
whatever `load` accepts (also after a person's edits) PyYAML reads as the same data."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.fix import planfile

texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["yes", "No", "null", "~", "1e5", "0x1f", "1_000", "12:30", "2021-06-10", "2021-06-10 08:30",
                     ".inf", "-", "a: b", "a:", "a #b", " lead", "trail ", "default:reassign", "Quý I", "'q'",
                     '"dq"', "\x85", "\u2028", "\ufeff", "\x7f", "\t", "", "=", "<<", "[x]", "{x}", "- x"]),
)
scalars = st.one_of(texts, st.integers(-10**20, 10**20), st.booleans(), st.none())
names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(planfile.plain_key)  # not "no", "on"...


def documents(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    flat = st.dictionaries(keys, scalars, max_size=4)
    items = st.dictionaries(keys, st.one_of(scalars, flat, st.lists(scalars, max_size=3),
                                            st.dictionaries(keys, flat, max_size=2)), max_size=6)
    return st.fixed_dictionaries({"plan": st.dictionaries(keys, st.one_of(scalars, flat), max_size=4),
                                  "actions": st.lists(items, max_size=4)})


def _check(text: str) -> Any:
    fast = planfile.load(text)
    if fast is not None:
        assert yaml.safe_load(text) == fast[0]
    return fast


@settings(max_examples=300, deadline=None)
@given(documents(names))
def test_dump_reads_back_the_same_data_through_pyyaml_and_load(doc: dict[str, Any]) -> None:
    text = planfile.dump(doc)
    assert yaml.safe_load(text) == doc
    fast = _check(text)
    assert fast is not None and fast[0] == doc


@settings(max_examples=300, deadline=None)
@given(documents(st.one_of(names, texts)), st.data())
def test_whatever_load_accepts_pyyaml_reads_the_same(doc: dict[str, Any], data: st.DataObject) -> None:
    lines = planfile.dump(doc).split("\n")
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        edit = data.draw(st.sampled_from(["drop", "copy", "indent", "dedent", "comment", "value", "blank"]))
        if edit == "drop":
            del lines[i]
        elif edit == "copy":
            lines.insert(i, lines[i])
        elif edit == "indent":
            lines[i] = " " + lines[i]
        elif edit == "dedent":
            lines[i] = lines[i][1:]
        elif edit == "comment":
            lines.insert(i, data.draw(st.sampled_from(["# note", "  # note", "#"])))
        elif edit == "blank":
            lines.insert(i, data.draw(st.sampled_from(["", "  "])))
        else:
            head = lines[i].split(": ", 1)[0]
            lines[i] = head + ": " + data.draw(st.one_of(texts, st.sampled_from(
                ['{"a": 1}', '{"a": 1.5}', "[1, 2]", '"x" # c', "'x'", "x # c", "|", ">", "&a x", "*a", "!!str 1",
                 '"\\ud83d\\ude00"', "{a: 1}", "[]", "{}", "true", "True", "07", "-0"])))
        if not lines:
            break
    text = "\n".join(lines)
    try:
        _check(text)
    except yaml.YAMLError:
        assert planfile.load(text) is None  # PyYAML refuses it: the fast reading must too


def test_layout_lines_and_fallbacks() -> None:
    doc = {"plan": {"format": 1, "system": {"profile": "mapping"}, "problems": []},
           "actions": [{"dossier_code": "000.00.53.H48-210105-0001", "action": "close", "rule": "default:close",
                        "returned_at": "2021-06-10", "set": {"status": "returned"},
                        "evidence": {"register": {"row": 12, "sheet": "Quý I"}}},
                       {"dossier_code": "B", "action": "reassign", "confirmed": True}]}
    text = planfile.dump(doc)
    assert text.splitlines()[:11] == [
        "plan:", "  format: 1", '  system: {"profile": "mapping"}', "  problems: []", "actions:",
        "- dossier_code: 000.00.53.H48-210105-0001", "  action: close", "  rule: default:close",
        '  returned_at: "2021-06-10"', '  set: {"status": "returned"}', "  evidence:"]
    data, lines = planfile.load(text)
    assert data == doc and [lines[id(a)] for a in data["actions"]] == [6, 13]
    # A person's edits in another YAML style are PyYAML's to read.
    assert planfile.load(text.replace('"2021-06-10"', "'2021-06-10'")) is None
    assert planfile.load(text.replace("action: close", "action: close  # checked")) is None
