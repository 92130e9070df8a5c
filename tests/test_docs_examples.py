"""Every example in README.md and docs/ is run: shell sessions against the demo district, file formats through
the real loaders. The conventions are docs/README.md's ("How the examples are written"); this file is their referee."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reconcile.cli import main
from reconcile.notify.templates import load as load_templates
from reconcile.project import load_project
from reconcile.sources.register import load_register_mapping
from reconcile.sources.system import load_mapping
from reconcile.workflow.bpmn import load_sidecar
from reconcile.workflow.catalog import load_catalog
from reconcile.workflow.rules import load_rules

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEMO = "reports/binh-son-2021-h1"  # where `make demo` writes, relative to the repository
MAKE_DEMO = ["reconcile", "demo", "--out", DEMO]  # the Makefile's recipe
SHELL_LANGS = {"sh", "shell", "bash", "zsh", "console", "shell-session"}
BOX = "┏┓┗┛┃━┡┩┠┨╇┯┷┳┻╋┼│─└┘┌┐├┤┬┴ "


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    tags: list[str]
    body: list[str]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (``` fences, info string = language and tags)."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*```(\S*)\s*(.*)$", lines[i])
        if m:
            start, body = i, []
            i += 1
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i])
                i += 1
            found.append(Block(page, start + 1, m.group(1).lower(), m.group(2).split(), body))
        i += 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]


# ------------------------------------------------------------------------------------------ shell sessions

@dataclass
class Command:
    text: str  # as written after "$ ", continuation lines joined
    line: int
    shown: list[str] = field(default_factory=list)  # the output lines written under it

    @property
    def exit_code(self) -> int:
        m = re.search(r"#.*\bexit (\d+)", self.text)
        return int(m.group(1)) if m else 0


def commands(block: Block) -> list[Command]:
    found: list[Command] = []
    pending = ""
    for n, raw in enumerate(block.body, start=block.line + 1):
        if pending:
            pending += " " + raw.strip()
        elif raw.startswith("$ "):
            pending = raw[2:]
            found.append(Command("", n))
        else:
            assert found, f"{block.where}: output before the first `$ ` command"
            found[-1].shown.append(raw)
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
        else:
            found[-1].text, pending = pending, ""
    return found


@dataclass
class Session:
    """A reader's terminal: starts at the repository root after `make demo` (a stand-in, in a temporary folder)."""
    root: Path
    demo_output: str
    cwd: Path = field(init=False)

    def __post_init__(self) -> None:
        self.cwd = self.root


def run(command: Command, session: Session, where: str) -> tuple[int, str]:
    """Run one `$ ` line: `cd`, `make demo`, `reconcile ...` (with `NAME=value` before it and `> FILE` after it),
    joined by `&&`. Returns the exit code and what the terminal shows (stdout and stderr as they interleave)."""
    lexer = shlex.shlex(command.text, posix=True, punctuation_chars="&>")
    lexer.commenters = "#"
    lexer.whitespace_split = True
    words = list(lexer)
    code, shown = 0, ""
    for simple in _split(words, "&&"):
        env: dict[str, str] = {}
        while simple and re.match(r"^[A-Z_][A-Z0-9_]*=", simple[0]):
            name, _, value = simple.pop(0).partition("=")
            env[name] = value
        target = None
        if ">" in simple:
            i = simple.index(">")
            simple, target = simple[:i], simple[i + 1]
        if simple[:1] == ["cd"]:
            session.cwd = (session.cwd / simple[1]).resolve()
            continue
        if simple == ["make", "demo"]:  # already run: the session starts after it
            code, shown = 0, session.demo_output
            continue
        assert simple[:1] == ["reconcile"], (
            f"{where}: docs examples run `reconcile`, `cd` and `make demo` only, not {simple[:1]}")
        code, out, terminal = invoke(simple[1:], session.cwd, env)
        if target is not None:
            (session.cwd / target).write_text(out, encoding="utf-8")
            terminal = terminal.replace(out, "", 1)
        shown = terminal
        if code:
            break
    return code, shown


def _split(words: list[str], sep: str) -> Iterator[list[str]]:
    part: list[str] = []
    for w in words:
        if w == sep:
            yield part
            part = []
        else:
            part.append(w)
    yield part


def invoke(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """`reconcile ARGS` in `cwd`, in this process (no interpreter start-up per example): exit code, stdout, both."""
    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, env={"COLUMNS": None, "NO_COLOR": None, **env},
                                    catch_exceptions=True)
    finally:
        os.chdir(before)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.output


def is_elision(line: str) -> bool:
    return line.strip(BOX) == "…"


def pattern(line: str) -> re.Pattern[str]:
    """A shown line as a pattern: `…` stands for any text (volatile parts: times, absolute paths)."""
    return re.compile(".*".join(re.escape(part) for part in line.rstrip().split("…")))


def missing(shown: list[str], real: str) -> str | None:
    """None when the shown lines are in the real output: each run of lines between elisions (`…` alone on its line)
    consecutively, the runs in order. Otherwise the first shown line not found."""
    lines = [line.rstrip() for line in real.splitlines()]
    runs: list[list[str]] = [[]]
    for line in shown:
        if is_elision(line):
            runs.append([])
        else:
            runs[-1].append(line)
    at = 0
    for run_ in (r for r in runs if r):
        pats = [pattern(line) for line in run_]
        for start in range(at, len(lines) - len(pats) + 1):
            if all(p.fullmatch(lines[start + k]) for k, p in enumerate(pats)):
                at = start + len(pats)
                break
        else:
            # name the first line of the run that is nowhere after `at`, else the run's first line
            for line, p in zip(run_, pats):
                if not any(p.fullmatch(real_line) for real_line in lines[at:]):
                    return line
            return run_[0] + "  (the run of lines starting here is not consecutive in the output)"
    return None


def check_session(blocks_: list[Block], session: Session) -> None:
    """A page's sessions in order, as one terminal: a `cd` holds for the rest of the page."""
    for block in blocks_:
        for command in commands(block):
            where = f"{block.page.relative_to(ROOT)}:{command.line}"
            code, real = run(command, session, where)
            assert code == command.exit_code, (
                f"{where}: `{command.text}` exited {code}, not {command.exit_code}\n{real}")
            line = missing(command.shown, real)
            assert line is None, f"{where}: `{command.text}`: this shown line is not in the output:\n{line}\n" \
                                 f"--- real output ---\n{real}"


def shell_blocks(page: Path) -> list[Block]:
    return [b for b in ALL if b.page == page and b.lang in SHELL_LANGS]


def make_demo(root: Path) -> str:
    (root / "examples").symlink_to(ROOT / "examples")
    code, _, output = invoke(MAKE_DEMO[1:], root, {})
    assert code == 0, output
    return f".venv/bin/{' '.join(MAKE_DEMO)}\n{output}"  # make echoes the recipe


@pytest.fixture(scope="session")
def after_make_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A stand-in for the repository after `make demo`: the demo district where `make demo` writes it, and
    `examples/`. Built once; the pages whose examples only read share it."""
    root = tmp_path_factory.mktemp("repo")
    return root, make_demo(root)


@pytest.mark.parametrize("page", [p for p in PAGES if shell_blocks(p)], ids=lambda p: p.name)
def test_shell_examples_print_what_the_docs_show(page: Path, after_make_demo: tuple[Path, str]) -> None:
    check_session(shell_blocks(page), Session(*after_make_demo))


def test_every_shell_block_is_a_session_of_commands() -> None:
    """A shell block that is not a `console` session of `$ ` commands would be an example nobody runs."""
    wrong = [f"{b.where}: ```{b.lang}" for b in ALL if b.lang in SHELL_LANGS - {"console"}]
    wrong += [f"{b.where}: no `$ ` command" for b in ALL if b.lang == "console" and not commands(b)]
    assert wrong == []


def test_the_quickstart_begins_with_make_demo() -> None:
    first = shell_blocks(ROOT / "README.md")[0]
    assert commands(first)[0].text.split("#")[0].split() == ["make", "demo"]
    assert f"$(BIN)/{' '.join(MAKE_DEMO)}" in (ROOT / "Makefile").read_text(encoding="utf-8").replace(
        "--out $(DEMO)", f"--out {DEMO}")


def test_the_matcher_needs_consecutive_lines_and_sees_wildcards() -> None:
    real = "a\nb 12 s\nc\nd\n"
    assert missing(["a", "b … s"], real) is None
    assert missing(["a", "c"], real) is not None
    assert missing(["a", "…", "c"], real) is None
    assert missing(["c", "…", "a"], real) == "a"
    assert missing(["│ …", "d"], real) is None


# ------------------------------------------------------------------------------------------ file formats

def _load_catalog_version(path: Path, block: Block) -> None:
    folder = path.parent / "catalog" / "procedure"
    folder.mkdir(parents=True)
    number = re.search(r"^version:\s*(\d+)", "\n".join(block.body), re.M)
    assert number, f"{block.where}: a catalog version example names its version"
    shutil.copy(path, folder / f"v{number.group(1)}.yaml")
    load_catalog(folder.parent)


def _load_rules(path: Path, block: Block, demo: Path) -> None:
    catalog = path.parent / "workflows"
    shutil.copytree(demo / "inputs" / "workflows", catalog)
    shutil.copy(path, catalog / "dat-dai-dang-ky-bien-dong" / "rules.yaml")
    rules = load_rules(catalog, load_catalog(catalog))
    assert rules, f"{block.where}: no rules read"


def _load_project_block(path: Path, block: Block) -> None:
    assert load_project(path), f"{block.where}: no settings read"


FORMATS = {
    "register-mapping": lambda p, b, d: load_register_mapping(p),
    "mapping": lambda p, b, d: load_mapping(p),
    "catalog-version": lambda p, b, d: _load_catalog_version(p, b),
    "bpmn-sidecar": lambda p, b, d: load_sidecar(str(p)),
    "rules": lambda p, b, d: _load_rules(p, b, d),
    "project": lambda p, b, d: _load_project_block(p, b),
    "notify-templates": lambda p, b, d: load_templates(p),
}
EXCERPTS = {"plan-excerpt": "inputs/plan.yaml"}  # shown lines of a file `make demo` writes, matched like output


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "yaml"], ids=lambda b: b.where)
def test_yaml_examples_load_with_the_real_loaders(block: Block, after_make_demo: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    kinds = [t for t in block.tags if t in FORMATS or t in EXCERPTS]
    assert len(kinds) == 1, f"{block.where}: a yaml example names its format, one of {sorted([*FORMATS, *EXCERPTS])}"
    demo = after_make_demo[0] / DEMO
    if kinds[0] in EXCERPTS:
        real = (demo / EXCERPTS[kinds[0]]).read_text(encoding="utf-8")
        line = missing([re.sub(r"\s{2,}#.*$", "", shown) for shown in block.body], real)  # annotations off
        assert line is None, f"{block.where}: this line is not in {EXCERPTS[kinds[0]]}:\n{line}"
        return
    path = tmp_path / "example.yaml"
    path.write_text("\n".join(block.body) + "\n", encoding="utf-8")
    FORMATS[kinds[0]](path, block, demo)


def test_no_other_data_blocks_go_unchecked() -> None:
    """YAML is checked above; JSON or CSV examples would need a loader here first."""
    assert [b.where for b in ALL if b.lang in {"json", "csv", "tsv", "yml"}] == []


# ------------------------------------------------------------------------------------------ pages and links

def test_links_between_pages_lead_to_files_and_headings() -> None:
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    assert broken == []


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def test_the_readme_stays_a_front_door() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 350


def test_the_readme_has_a_line_for_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = []
    for name, command in main.commands.items():
        subs = list(command.commands) if isinstance(command, click.Group) else []
        names += [f"{name} {sub}" for sub in subs] or [name]
    rows = [line for line in readme.splitlines() if line.startswith("| [`reconcile ")]
    table = "\n".join(rows)
    absent = [n for n in names if not re.search(rf"`reconcile {n.split()[0]}\b[^`]*{''.join(n.split()[1:])}", table)]
    assert absent == [] and len(rows) == len(main.commands)


def test_every_test_the_safety_page_cites_exists() -> None:
    """docs/safety.md holds each promise to named tests (`file.py::name`, `name`, `name_*`): each must be there."""
    defined = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        defined[path.name] = set(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    everywhere = set().union(*defined.values())
    cited = re.findall(r"`(?:(test_\w+\.py)::)?(test_[\w*]+)(\.py)?`", (ROOT / "docs" / "safety.md").read_text("utf-8"))
    assert len(cited) >= 25
    unknown = []
    for file, name, is_file in cited:
        if is_file:
            if f"{name}.py" not in defined:
                unknown.append(f"{name}.py")
            continue
        names = defined.get(file, set()) if file else everywhere
        if not any(re.fullmatch(name.replace("*", r"\w*"), n) for n in names):
            unknown.append(f"{file}::{name}" if file else name)
    assert unknown == []
