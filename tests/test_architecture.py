"""The package follows the flow (DESIGN.md §2): the import-linter contracts in pyproject.toml hold, and
they cover every top-level module, so a new one cannot slip past them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_every_top_level_module_has_a_layer() -> None:
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    named = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    package = ROOT / "reconcile"
    present = {f"reconcile.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    present |= {f"reconcile.{p.name}" for p in package.iterdir() if (p / "__init__.py").exists()}
    assert present - named == set(), "give these modules a layer in pyproject.toml [tool.importlinter]"
