"""Test helpers: run the CLI like a user, compare against golden files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from reconcile.cli import main
from reconcile.store import open_store

REGEN = bool(os.environ.get("RECONCILE_REGEN"))


def invoke(*args: str, expect: int | None = None) -> Result:
    """Run `reconcile ARGS`; re-raise unexpected exceptions so that bugs show their traceback."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def stable(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of an audit report that must not depend on when or where it ran."""
    run = report["run"]
    return {
        "counts": run["counts"], "periods": run["periods"], "classes": run["classes"],
        "paper_only_units": run["paper_only_units"], "summary": report["summary"],
        "breakdown": report["breakdown"], "findings": report["findings"],
    }


def check_golden(path: Path, data: Any) -> None:
    """Compare with a golden JSON file; RECONCILE_REGEN=1 rewrites it. A missing golden file fails."""
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"golden file {path} missing; run with RECONCILE_REGEN=1 to create it"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text)


def store_rows(store_url: str, stmt: Any) -> list[Any]:
    """Every row of one statement over an existing store, the store closed again afterwards."""
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            return conn.execute(stmt).all()
    finally:
        store.engine.dispose()
