"""Command-line interface: parse options, call command functions, render, map errors to exit codes."""

from __future__ import annotations

import json
import math
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import click
import sqlalchemy as sa
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape

from reconcile import __version__, render
from reconcile.audit import commands as audit_commands
from reconcile.audit import inputs as audit_inputs
from reconcile.audit import results as audit_results
from reconcile.demo import commands as demo_commands
from reconcile.fix import commands as fix_commands
from reconcile.report import dossier
from reconcile.stats import commands as stats_commands
from reconcile.workflow import commands as workflow_commands

from reconcile.util import jsonio
from reconcile.fix.apply import DEFAULT_BATCH_SIZE
from reconcile.util.db import first_line
from reconcile.errors import WRITTEN, BadInput, ExitCode, Interrupted, ReconcileError, Refused, wrote
from reconcile.util.files import write_atomically
from reconcile.util.i18n import LANGS
from reconcile.util.progress import QUIET, LineProgress, LiveProgress, Progress
from reconcile.project import MAX_STALL_DAYS, MAX_STALL_FACTOR, MAX_TOLERANCE_DAYS, load_project, project_period
from reconcile.util.calendar import parse_as_of
from reconcile.report.commands import DEFAULT_LIMIT, FORMATS, ReportRequest
from reconcile.report.commands import report as write_report
from reconcile.stats.tables import StatsSettings, settings_from
from reconcile.stats.model import CONVENTIONS, LAYOUTS, VIEWS
from reconcile.workflow.state import StallRule

PROJECT_FILE = "reconcile.yaml"


def _consoles() -> tuple[Console, Console]:
    """stdout and stderr. Data is printed as data: markup in values is escaped where they are printed, and
    emoji codes are off (rich would print `file.bpmn:100:` as `file.bpmn💯`)."""
    plain = bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
    out = Console(file=sys.stdout, no_color=plain, highlight=False, emoji=False, soft_wrap=plain,
                  width=None if not plain else 200)
    err = Console(file=sys.stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, emoji=False,
                  soft_wrap=True)
    return out, err


def _stdin_is_terminal() -> bool:  # the tests patch this: CliRunner's stdin never is one
    return sys.stdin.isatty()


def _confirm(question: str, hint: str) -> None:
    """Ask `question` on a terminal before writing; refuse (exit 3, nothing written) on no, or when stdin is not a
    terminal (then with `hint`)."""
    if not _stdin_is_terminal():
        raise Refused(f"dry run: nothing written. Hint: {hint}")
    if not click.confirm(question, default=False, err=True):
        raise Refused("nothing written.")


class ReconcileCommand(click.Command):
    """A command whose options refuse an empty value: `--as-of ''` (an unset shell variable) must not
    quietly mean "the project file's date" or "the default store"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.params:
            value = ctx.params.get(param.name or "")
            values = value if isinstance(value, tuple) else (value,)
            if ctx.get_parameter_source(param.name or "") == ParameterSource.COMMANDLINE and any(
                    isinstance(v, str) and not v.strip() for v in values):
                if isinstance(param, click.Option):
                    name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
                    raise BadInput(f"{name}: empty value. Hint: give a value, or leave {name} out for its default.")
                raise BadInput(f"{param.human_readable_name}: empty value. Hint: give a value.")
        return rest


class ReconcileGroup(click.Group):
    """The one catch site: user errors print one line per problem; bugs exit 70; Ctrl-C exits 130, saying
    what was written before it (errors.WRITTEN), if anything."""

    command_class = ReconcileCommand
    group_class = type  # subgroups (workflows, rules) are ReconcileGroups: their commands check too

    def invoke(self, ctx: click.Context) -> Any:
        WRITTEN.clear()
        try:
            return super().invoke(ctx)
        except ReconcileError as exc:
            if ctx.meta.get("debug"):
                raise
            prefix = "interrupted" if isinstance(exc, Interrupted) else "error"
            for line in exc.problems:
                click.echo(f"{prefix}: {line}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:  # what was written says so itself (errors.wrote): stores roll back, files are whole
            click.echo(f"interrupted: wrote {', '.join(WRITTEN)} before stopping; nothing else was written." if WRITTEN
                       else "interrupted: nothing was written.", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug: say so, never look like "findings"
            if ctx.meta.get("debug"):
                raise
            # a database error's text carries its SQL and parameters (personal data): its first line only
            text = first_line(exc) if isinstance(exc, sa.exc.StatementError) else str(exc)
            click.echo(f"internal error (this is a bug, please report it): {type(exc).__name__}: {text}", err=True)
            for note in getattr(exc, "__notes__", ()):
                click.echo(note, err=True)
            ctx.exit(int(ExitCode.INTERNAL))


@click.group(cls=ReconcileGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Reconcile paper dossier registers with the electronic one-stop system."""
    ctx.meta["debug"] = debug


def _project(config: str | None) -> tuple[dict[str, Any], Path]:
    """The optional project file; command-line options override it."""
    path = Path(config) if config else Path(PROJECT_FILE)
    if not path.exists():
        if config:
            raise BadInput(f"{config}: no such file.")
        return {}, Path(".")
    return load_project(path), path.parent


def _rel(base: Path, value: Any) -> str:
    """A path from the project file, relative to the file; sqlite:/// URLs too."""
    text = str(value)
    if text.startswith("sqlite:///") and not text.startswith("sqlite:////"):
        return "sqlite:///" + str(base / text[len("sqlite:///"):])
    return text if "://" in text or Path(text).is_absolute() else str(base / text)


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """click's FloatRange lets nan through (no comparison holds for it)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number.")
    return value


progress_option = click.option(
    "--progress/--no-progress", "show_progress", default=None,
    help="Show each stage, with rows and rows/s while loading, on stderr. Default: on a terminal only (one live "
         "line); --progress elsewhere (a log, a CI job) prints a plain line as each stage ends and every 10 s of "
         "loading.")


@contextmanager
def _progress(err: Console, wanted: bool | None, prefix: str) -> Iterator[Progress]:
    """The command's progress on stderr: a live line on a terminal, plain lines when asked for elsewhere,
    nothing otherwise (stdout carries the payload and is never written to)."""
    if wanted is False or (wanted is None and not err.is_terminal):
        yield QUIET
    elif err.is_terminal:
        with err.status(prefix, spinner="dots") as status:
            yield LiveProgress(lambda text: status.update(escape(text)), prefix)
    else:
        lines = LineProgress(sys.stderr, prefix)
        yield lines
        lines.done()  # the last stage's line; after an error the error is the last line


store_option = click.option("--store", envvar="RECONCILE_STORE", metavar="URL",
                            help="Working store: a file path (embedded DuckDB) or a PostgreSQL/MariaDB URL. "
                                 "Default: ./reconcile.duckdb.")


@main.command()
@click.option("--register", "register", multiple=True, metavar="FILE", help="Paper register book(s): CSV or XLSX.")
@click.option("--system", metavar="DIR|URL", help="System state: a csv export folder, or a database URL.")
@click.option("--mapping", metavar="FILE", help="Source mapping YAML for a database URL.")
@click.option("--profile", type=click.Choice(["mapping", "csv", "activiti"]),
              help="How to read --system: mapping (a URL + --mapping), csv (an export folder), activiti (the ACT_* "
                   "tables of Activiti/Flowable/Camunda 7, catalog included). Default: a URL is mapping, a folder csv.")
@click.option("--sidecars", metavar="DIR", help="activiti: <KEY>[.v<N>].yaml files with working days per task.")
@click.option("--tenant", metavar="ID", help="activiti: audit one tenant (district) of an engine that serves several.")
@click.option("--schema", metavar="NAME", help="activiti: the database schema holding the ACT_* tables "
                                               "(default: the connection's, e.g. public).")
@click.option("--staff", metavar="FILE", help="The staff directory, instead of the system's: an accounts.csv file "
                                              "(account, unit, active) or a YAML file with a mapping's account: block.")
@click.option("--workflows", metavar="DIR", help="Workflow catalog folder (v<N>.yaml files); optional with "
                                                 "--profile activiti (its versions are added).")
@click.option("--as-of", "as_of", metavar="DATE", help="Audit date, YYYY-MM-DD or dd/mm/yyyy.")
@click.option("--register-mapping", metavar="FILE", help="YAML mapping for a register layout without official headers.")
@click.option("--date-tolerance", type=click.IntRange(0, MAX_TOLERANCE_DAYS), metavar="DAYS",
              help="Allowed date difference (default 0).")
@click.option("--paper-only", "paper_only", multiple=True, metavar="UNIT",
              help="A unit not on the software yet: its register rows are not expected in the system.")
@click.option("--stalled-factor", type=click.FloatRange(0, MAX_STALL_FACTOR), metavar="X", callback=_finite,
              help="Stalled after X times the step's days without movement (default 2).")
@click.option("--stalled-min-days", type=click.IntRange(0, MAX_STALL_DAYS), metavar="N",
              help="...and after at least N working days (default 10).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--config", metavar="FILE", help=f"Project file (default: ./{PROJECT_FILE} if present).")
@store_option
@progress_option
def audit(register: tuple[str, ...], system: str | None, mapping: str | None, profile: str | None,
          sidecars: str | None, tenant: str | None, schema: str | None, staff: str | None,
          workflows: str | None, as_of: str | None, register_mapping: str | None,
          date_tolerance: int | None, paper_only: tuple[str, ...], stalled_factor: float | None,
          stalled_min_days: int | None, fmt: str, config: str | None, store: str | None,
          show_progress: bool | None) -> None:
    """Load the register, the system and the catalog as one run and report every finding.

    Exit code 1 when there are findings, 0 when none, 2 for bad input.
    """
    project, base = _project(config)

    def path(cli_value: str | None, key: str) -> str | None:
        """The option, else the project file's path (relative to the file)."""
        return cli_value or (_rel(base, project[key]) if project.get(key) else None)

    regs = register or tuple(_rel(base, r) for r in _as_list(project.get("register")))
    system, mapping, workflows = path(system, "system"), path(mapping, "mapping"), path(workflows, "workflows")
    profile = profile or project.get("profile")
    needed = [("--register", regs), ("--system", system)]
    if profile != "activiti":  # the engine holds the catalog; --workflows only adds to it
        needed.append(("--workflows", workflows))
    missing = [n for n, v in needed if not v]
    as_of_value = as_of or project.get("as_of")
    if as_of_value is None:
        missing.append("--as-of")
    if missing:
        raise BadInput(f"audit: missing {', '.join(missing)}. Hint: `reconcile audit --help`, or set them in "
                       f"{PROJECT_FILE}.")
    inputs = audit_inputs.AuditInputs(
        register=tuple(regs), system=str(system), workflows=workflows,
        profile=None if profile is None else str(profile), sidecars=path(sidecars, "sidecars"),
        tenant=_setting(tenant, project, "tenant"), schema=_setting(schema, project, "schema"),
        staff=path(staff, "staff"),
        as_of=as_of_value if isinstance(as_of_value, date) else parse_as_of(str(as_of_value)),
        mapping=mapping,
        register_mapping=path(register_mapping, "register_mapping"),
        date_tolerance_days=date_tolerance if date_tolerance is not None else int(project.get("date_tolerance_days", 0)),
        paper_only_units=paper_only or tuple(_as_list(project.get("paper_only_units"))),
        stall=_stall_rule(project.get("stalled"), stalled_factor, stalled_min_days),
        period=project_period(project, str(config or PROJECT_FILE)),
    )
    out, err = _consoles()
    store = path(store, "store")
    with _progress(err, show_progress, "audit") as progress:
        report = audit_commands.audit(inputs, store, progress=progress, with_findings=False)
    render.warnings(report.warnings, err)
    if fmt == "json":  # streamed from the store: a 10M audit's findings never sit whole in memory
        jsonio.dump_with_list(report.to_dict(), "findings", audit_results.findings_of(store, report.run["id"]),
                              sys.stdout, pretty=sys.stdout.isatty())
    else:
        render.audit_table(report, out)
    sys.exit(int(ExitCode.FINDINGS if report.summary else ExitCode.OK))


def _setting(cli_value: str | None, project: dict[str, Any], key: str) -> str | None:
    """The option, else the project file's value (as text)."""
    if cli_value is not None:
        return cli_value
    return None if project.get(key) is None else str(project[key])


def _stall_rule(doc: Any, factor: float | None, min_days: int | None) -> StallRule:
    """Options, else the project file's `stalled: {factor, min_working_days}`, else the defaults."""
    doc, default = (doc if isinstance(doc, dict) else {}), StallRule()
    try:
        return StallRule(float(factor if factor is not None else doc.get("factor", default.factor)),
                         int(min_days if min_days is not None else doc.get("min_working_days", default.min_days)))
    except (TypeError, ValueError):
        raise BadInput(f"{PROJECT_FILE}: stalled: expected {{factor: NUMBER, min_working_days: INTEGER}}, "
                       f"got {doc!r}.") from None


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


@main.command()
@click.argument("code")
@click.option("--run", "run_id", type=int, help="Audit run id (default: the latest).")
@click.option("--plan", "plan_path", metavar="FILE", help="A reviewed plan file (`reconcile plan --out`) made for "
                                                          "the same run (default: the run's plan as built now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@store_option
def show(code: str, run_id: int | None, plan_path: str | None, fmt: str, store: str | None) -> None:
    """One dossier: register row(s), system state, history, findings, the plan's action, and how paper,
    system and plan differ."""
    view = dossier.show(code, store, run_id, plan_path)
    if fmt == "json":
        click.echo(render.to_json(view.to_dict()))
    else:
        render.dossier_view(view, _consoles()[0])


@main.command()
@click.option("--run", "run_id", type=int, help="Audit run id (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@store_option
def census(run_id: int | None, fmt: str, store: str | None) -> None:
    """Open dossiers per procedure x version x step, across every version: orphans by reason.

    Exit code 1 when some open dossier cannot reach the end, 0 when none.
    """
    result = workflow_commands.census(store, run_id)
    if fmt == "json":
        click.echo(render.to_json(result.to_dict(), pretty=sys.stdout.isatty()))
    else:
        render.census_table(result, _consoles()[0])
    sys.exit(int(ExitCode.FINDINGS if any(r.orphaned for r in result.rows) else ExitCode.OK))


@main.command()
@click.option("--period", nargs=2, metavar="FROM TO", help="Reporting period (default: the half-year holding the "
                                                           "audit date, or the project file's period).")
@click.option("--layout", type=click.Choice(LAYOUTS), default="official", show_default=True,
              help="official: Biểu 06, 11 columns; extended: the 12 columns with withdrawn and returned.")
@click.option("--view", type=click.Choice(VIEWS), default="system", show_default=True,
              help="The system's data, the paper register's, or the system's once the plan is applied.")
@click.option("--convention", type=click.Choice(CONVENTIONS),
              help="Withdrawn and returned-unresolved dossiers: separate columns, counted as resolved on time, "
                   "or left out (default: the project file's, else separate).")
@click.option("--plan", "plan_path", metavar="FILE", help="--view after-plan: this plan file (default: the run's "
                                                          "plan as `reconcile plan` makes it).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "xlsx"]), default="table",
              show_default=True)
@click.option("--out", metavar="FILE", help="Write here instead of stdout (required for xlsx).")
@click.option("--lang", type=click.Choice(LANGS), default="vi", show_default=True)
@click.option("--run", "run_id", type=int, help="Audit run id (default: the latest).")
@click.option("--config", metavar="FILE", help=f"Project file (default: ./{PROJECT_FILE} if present).")
@store_option
def stats(period: tuple[str, str] | None, layout: str, view: str, convention: str | None, plan_path: str | None,
          fmt: str, out: str | None, lang: str, run_id: int | None, config: str | None, store: str | None) -> None:
    """The statistics table per field (DOMAIN §6): received, resolved early/on time/late, in progress.

    Every identity of the layout holds; dossiers that cannot be classified get their own column, and
    open dossiers stuck in the system are shown as an "of which" column.
    """
    settings, dates, doc, base = _stats_settings(config, period)
    store = _project_store(store, doc, base)
    if fmt == "xlsx" and not out:
        raise BadInput("stats --format xlsx: needs --out FILE.xlsx (a workbook does not go to a terminal).")
    request = stats_commands.StatsRequest(run_id, dates, layout, view, convention, settings, plan_path)
    table = stats_commands.statistics(store, request)
    if fmt == "xlsx":
        from reconcile.report.xlsxout import write_stats_xlsx

        write_stats_xlsx([table], lang, out)
    elif fmt == "table":
        before = None
        if view == "after-plan":
            before = stats_commands.statistics(store, replace(request, view="system"))
        render.stats_table(table, _consoles()[0], lang, before)
        return
    else:
        from reconcile.report.csvout import stats_csv
        from reconcile.util.csvtext import BOM

        text = render.to_json(table.to_dict()) + "\n" if fmt == "json" else stats_csv(table, lang)
        if not out:
            click.echo(text.removeprefix(BOM), nl=False)  # the BOM is for Excel opening a file
            return
        write_atomically(out, text)
    _consoles()[1].print(f"wrote {escape(out)}")


def _project_store(store: str | None, doc: dict[str, Any], base: Path) -> str | None:
    """--store, else the project file's store (relative to the file)."""
    return store or (_rel(base, doc["store"]) if doc.get("store") else None)


def _stats_settings(config: str | None, period: tuple[str, str] | None
                    ) -> tuple[StatsSettings, tuple[date, date] | None, dict[str, Any], Path]:
    """The project file's statistics settings and period (the option wins), the file and its folder."""
    doc, base = _project(config)
    settings = settings_from(doc.get("statistics"), str(config or PROJECT_FILE))
    dates = ((parse_as_of(period[0], "--period"), parse_as_of(period[1], "--period")) if period
             else project_period(doc, str(config or PROJECT_FILE)))
    return settings, dates, doc, base


@main.command("report")
@click.option("--run", "run_id", type=int, help="Audit run id (default: the latest).")
@click.option("--format", "formats", type=click.Choice([*FORMATS, "all"]), multiple=True,
              help="html, md, xlsx, json, csv, or all; repeatable (default: html).")
@click.option("--lang", "langs", type=click.Choice(LANGS), multiple=True, help="vi (default) or en; repeatable.")
@click.option("--out", default="reports", show_default=True, metavar="DIR", help="Folder for report.<lang>.<ext>.")
@click.option("--limit", type=click.IntRange(1), default=DEFAULT_LIMIT, show_default=True,
              help="Dossiers listed per section in HTML and Markdown (CSV and XLSX list all).")
@click.option("--period", nargs=2, metavar="FROM TO", help="Statistics period (default: as for `reconcile stats`).")
@click.option("--plan", "plan_path", metavar="FILE", help="The plan whose effect the report shows (default: the "
                                                          "run's plan as `reconcile plan` makes it).")
@click.option("--config", metavar="FILE", help=f"Project file (default: ./{PROJECT_FILE} if present).")
@store_option
def report_cmd(run_id: int | None, formats: tuple[str, ...], langs: tuple[str, ...], out: str, limit: int,
               period: tuple[str, str] | None, plan_path: str | None, config: str | None, store: str | None) -> None:
    """Render one audit run: summary, census, findings, statistics before/after the plan, worklists."""
    settings, dates, doc, base = _stats_settings(config, period)
    chosen = FORMATS if "all" in formats else tuple(dict.fromkeys(formats or ("html",)))
    request = ReportRequest(run_id, chosen, tuple(dict.fromkeys(langs or ("vi",))), out, limit, settings, dates,
                            doc.get("district"), plan_path)
    written = write_report(_project_store(store, doc, base), request)
    click.echo("\n".join(f"wrote {p}" for p in written))


@main.command()
@click.option("--out", metavar="FILE", help="Write the plan here (default: stdout); the summary goes to stderr.")
@click.option("--run", "run_id", type=int, help="Audit run id (default: the latest).")
@click.option("--rules", "rules_dir", metavar="DIR", help="Folder with the migration rules (default: the catalog "
                                                          "folder the audit read).")
@store_option
def plan(out: str | None, run_id: int | None, rules_dir: str | None, store: str | None) -> None:
    """Turn an audit's stuck dossiers into a reviewable plan: one action per dossier."""
    result = fix_commands.plan(store, run_id, rules_dir)
    text = fix_commands.write_plan(result, out, store)
    if not out:
        click.echo(text, nl=False)
    render.plan_summary(result, _consoles()[1], out)


@main.command()
@click.option("--out", "out", required=True, metavar="DIR", help="Folder to write the district into.")
@click.option("--seed", default=2021, show_default=True, type=int)
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(min=0.001))
@click.option("--register-format", type=click.Choice(["xlsx", "csv"]), default="xlsx", show_default=True)
@click.option("--system-format", type=click.Choice(["sqlite", "csv"]), default="sqlite", show_default=True)
@click.option("--system-schema", type=click.Choice(["vendor", "activiti"]), default="vendor", show_default=True,
              help="vendor: the one-stop system's own tables (+ mapping); activiti: a workflow-engine database "
                   "(ACT_* tables, deployed BPMN, hundreds of redeployed versions).")
@click.option("--system-url", metavar="URL", help="activiti: write the engine tables into this (empty) database "
                                                  "instead of OUT/system/activiti.sqlite.")
@click.option("--engine", "engine_kind", type=click.Choice(["activiti6", "activiti7", "flowable6", "camunda7"]),
              default="activiti6", show_default=True,
              help="activiti: whose tables to write (Activiti 7 has no identity tables: its staff goes to "
                   "accounts.csv).")
def simulate(out: str, seed: int, scale: float, register_format: str, system_format: str, system_schema: str,
             system_url: str | None, engine_kind: str) -> None:
    """Generate the demo district (Bình Sơn 2021-H1): register, system, catalog and ground truth."""
    from reconcile.demo.simulate import simulate as run

    _, err = _consoles()
    wrote(f"part of the district in {out}")  # many files, each as it is made: an interruption leaves some
    with err.status("simulating", spinner="dots") as status:
        result = run(Path(out), seed=seed, scale=scale, register_format=register_format,
                     system_format=system_format, system_schema=system_schema, system_url=system_url,
                     engine_kind=engine_kind,
                     progress=lambda stage, done, total: status.update(f"simulating: {stage} {done:,}/{total:,}"))
    err.print(f"wrote {result.register_entries:,} register entries and {result.system_dossiers:,} system dossiers "
              f"into {out}")


@main.command()
@click.option("--out", "out", default="reports/binh-son-2021-h1", show_default=True, metavar="DIR")
def demo(out: str) -> None:
    """Simulate the demo district, audit it, fix it and report: DIR/findings.json, census.json, fixes.json,
    report.*."""
    _, err = _consoles()
    wrote(f"part of the demo in {out}")  # simulates, audits, applies and reports: an interruption leaves some
    with _progress(err, None, "demo") as progress:
        result = demo_commands.demo(Path(out), progress=progress)
    err.print(f"audit run {result.run['id']}: {sum(result.summary.values()):,} findings; "
              f"wrote findings.json, census.json, fixes.json, report.* (html, md, xlsx, json, csv), tickets/ and notices/ "
              f"to {out}")
    console, store = _consoles()[0], str(Path(out) / "inputs" / "reconcile.duckdb")
    render.audit_table(result, console)
    render.census_table(workflow_commands.census(store, run_id=1), console)
    render.fixes_table(json.loads((Path(out) / "fixes.json").read_text(encoding="utf-8")), console)
    settings, dates, _, _ = _stats_settings(str(Path(out) / "inputs" / PROJECT_FILE), None)
    request = stats_commands.StatsRequest(1, dates, "extended", "after-plan", settings=settings)
    before = stats_commands.statistics(store, replace(request, view="system"))
    render.stats_table(stats_commands.statistics(store, request), console, "en", before)


@main.group()
def workflows() -> None:
    """Workflow catalog: import BPMN, check a catalog, compare two versions."""


@workflows.command("import-bpmn")
@click.argument("file")
@click.option("--procedure", metavar="CODE", help="Procedure code (default: the sidecar's, else the process id).")
@click.option("--version", "version", type=int, metavar="N", help="Version number (default: the sidecar's, else 1).")
@click.option("--process", "process_id", metavar="ID", help="The process to import when the file holds several.")
@click.option("--sidecar", metavar="FILE", help="YAML with what BPMN lacks: steps: {TASK_ID: {days, unit, name}}.")
@click.option("--out", metavar="FILE", help="Write the version YAML here (default: stdout).")
def import_bpmn(file: str, procedure: str | None, version: int | None, process_id: str | None,
                sidecar: str | None, out: str | None) -> None:
    """Convert a BPMN 2.0 file into a catalog version YAML file."""
    from reconcile.workflow import commands as wf

    result = wf.import_bpmn(file, procedure=procedure, version=version, process_id=process_id,
                            sidecar=sidecar, out=out)
    _, err = _consoles()
    render.warnings(list(result.warnings), err)
    if out:
        err.print(f"wrote {out}")
    else:
        click.echo(result.text, nl=False)


@workflows.command("check")
@click.argument("directory", metavar="DIR")
def workflows_check(directory: str) -> None:
    """Validate a workflow catalog alone (v<N>.yaml and v<N>.bpmn files). Exit 0 when valid, 2 otherwise."""
    from reconcile.workflow import commands as wf

    result = wf.check(directory)
    out, err = _consoles()
    render.warnings(list(result.warnings), err)
    render.catalog_check(result, out)


@workflows.command("diff")
@click.argument("procedure")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@click.option("--workflows", "workflows_dir", metavar="DIR", help="Workflow catalog folder (default: the project file's).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--config", metavar="FILE", help=f"Project file (default: ./{PROJECT_FILE} if present).")
@store_option
def workflows_diff(procedure: str, v1: int, v2: int, workflows_dir: str | None, fmt: str, config: str | None,
                   store: str | None) -> None:
    """Steps and transitions that differ between versions V1 and V2, with the open dossiers on each."""
    from reconcile.workflow import commands as wf

    project, base = _project(config)
    directory = workflows_dir or (_rel(base, project["workflows"]) if project.get("workflows") else None)
    if not directory:
        raise BadInput(f"workflows diff: missing --workflows. Hint: pass --workflows DIR or set workflows: in "
                       f"{PROJECT_FILE}.")
    store_url = store or (_rel(base, project["store"]) if project.get("store") else None)
    report = wf.diff(procedure, v1, v2, directory, store_url)
    if fmt == "json":
        click.echo(render.to_json(report.to_dict(), pretty=sys.stdout.isatty()))
    else:
        render.workflow_diff(report, _consoles()[0])


@main.group()
def rules() -> None:
    """Migration rules (rules.yaml next to the catalog): check them against the catalog."""


@rules.command("check")
@click.argument("directory", metavar="[DIR]", required=False)
@click.option("--workflows", "workflows_dir", metavar="DIR", help="Workflow catalog folder holding the rules "
              "(default: DIR, else the project file's workflows:).")
@click.option("--config", metavar="FILE", help=f"Project file (default: ./{PROJECT_FILE} if present).")
def rules_check(directory: str | None, workflows_dir: str | None, config: str | None) -> None:
    """Validate the migration rules below the catalog folder. Exit 0 when valid, 2 otherwise."""
    from reconcile.workflow import rules as rl

    project, base = _project(config)
    folder = directory or workflows_dir or (_rel(base, project["workflows"]) if project.get("workflows") else None)
    if not folder:
        raise BadInput(f"rules check: missing the catalog folder. Hint: pass DIR or --workflows DIR, or set "
                       f"workflows: in {PROJECT_FILE}.")
    found, summaries = rl.check(folder)
    out, err = _consoles()
    render.warnings(list(found.catalog.warnings), err)
    for s in summaries:
        out.print(f"[bold]{escape(s.procedure)}[/]: {len(s.hops)} rules, {s.steps_mapped} step mappings, "
                  f"guesses awaiting confirmation: {len(s.pending)}")
        for hop in s.hops:
            out.print(f"  {escape(hop)}")
        for guess in s.pending:
            out.print(f"  guess, not confirmed: {escape(guess)}")
    out.print(f"{escape(folder)}: valid: {len(found.rules)} rules in {len(found.files)} files, "
              f"{len(summaries)} procedures")


@main.command("apply")
@click.argument("plan_file", metavar="PLAN")
@click.option("--yes", is_flag=True, help="Write: in batches, each one transaction that re-checks fingerprints.")
@click.option("--dry-run", is_flag=True, help="Only show the statements (exit 0). Without --yes or --dry-run they "
                                               "are shown and apply asks on a terminal, else exits 3.")
@click.option("--sql", "sql_file", metavar="FILE", help="Write the statements as a SQL script (for a DBA or the "
                                                         "vendor) instead of running them.")
@click.option("--batch-size", type=click.IntRange(1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Actions per transaction.")
@click.option("--system", "system_url", metavar="URL", help="The system database (default: the plan's; needed "
                                                            "when its URL hides a password).")
@click.option("--mapping", metavar="FILE", help="The source mapping (default: the one the audit used).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@store_option
def apply_cmd(plan_file: str, yes: bool, dry_run: bool, sql_file: str | None, batch_size: int,
              system_url: str | None, mapping: str | None, fmt: str, store: str | None) -> None:
    """Apply a plan: a dry run unless --yes; prints the batch ids and the undo command.

    Exit 0 done; 2 bad plan or input; 3 refused: rows changed since the audit (listed), a mapping
    without `writable: true`, or no --yes on a non-interactive run (nothing written).
    """
    from reconcile.fix import apply as ap

    if yes and (dry_run or sql_file):
        raise BadInput("apply: --yes writes; --dry-run and --sql only show. Hint: pick one.")
    _, err = _consoles()
    result = ap.apply_plan(plan_file, store, yes=yes, batch_size=batch_size, system_url=system_url,
                           mapping_path=mapping)
    if not yes and sql_file:
        write_atomically(sql_file, result.script)
    elif not yes and fmt == "table":
        click.echo(result.script, nl=False)
    if fmt == "json":
        click.echo(render.to_json(result.to_dict(), pretty=sys.stdout.isatty()))
    for line in ap.summary_lines(result, store):
        if not (yes and fmt == "table" and line.startswith(("batches: ", "undo: "))):  # those go to stdout
            err.print(escape(line))
    if not yes and not dry_run and not sql_file:
        if not any(o.state == "would_write" for o in result.outcomes):
            sys.exit(int(ExitCode.REFUSED if result.refused else ExitCode.OK))
        if not result.writable:
            raise Refused(f"{plan_file}: the mapping does not declare `writable: true`: nothing written. "
                          "Hint: --sql FILE writes the statements for a DBA or the vendor.")
        _confirm("Write these changes?", "add --yes to write (stdin is not a terminal, so apply cannot ask), or "
                 "--dry-run to only show the statements.")
        result = ap.apply_plan(plan_file, store, yes=True, batch_size=batch_size, system_url=system_url,
                               mapping_path=mapping)
        for line in ap.summary_lines(result, store):
            err.print(escape(line))
    elif yes and fmt == "table":
        click.echo("\n".join(ap.summary_lines(result, store)[-2:]) if result.batches else "nothing written.")
    sys.exit(int(ExitCode.REFUSED if result.refused else ExitCode.OK))


@main.command("undo")
@click.argument("batches", metavar="BATCH...", type=int, nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Write without asking.")
@click.option("--dry-run", is_flag=True, help="Only show the statements (exit 0). Without --yes or --dry-run they "
                                               "are shown and undo asks on a terminal, else exits 3.")
@click.option("--system", "system_url", metavar="URL", help="The system database (when its URL hides a password).")
@store_option
def undo_cmd(batches: tuple[int, ...], yes: bool, dry_run: bool, system_url: str | None, store: str | None) -> None:
    """Restore a batch's before-values where the rows still hold its after-values (newest batch first).

    Refuses the whole batch (exit 3, rows listed) if any row changed since; an undo is itself a batch.
    """
    from reconcile.fix.undo import undo_batches

    if yes and dry_run:
        raise BadInput("undo: --yes writes; --dry-run only shows. Hint: pick one.")
    _, err = _consoles()
    order = sorted(set(batches), reverse=True)
    if not yes:
        for shown in undo_batches(order, store, yes=False, system_url=system_url):
            click.echo(f"-- undo of batch {shown.batch}: {shown.changes} values in {shown.rows} rows")
            click.echo("\n".join(shown.statements))
        if dry_run:
            return
        _confirm("Restore these values?", "add --yes to restore the values (stdin is not a terminal, so undo "
                 "cannot ask), or --dry-run to only show the statements.")
    for result in undo_batches(order, store, yes=True, system_url=system_url):
        for line in result.settled:
            err.print(escape(line))
        click.echo(f"batch {result.batch} undone by batch {result.undo_batch}: {result.changes} values restored in "
                   f"{result.rows} rows.")


@main.command("tickets")
@click.option("--out", default="tickets", show_default=True, metavar="DIR",
              help="Folder for the bundle (created; an earlier tickets folder is replaced whole).")
@click.option("--run", "run_id", type=int, help="Audit run id (default: the latest).")
@click.option("--unmask", is_flag=True, help="Show personal data unmasked. For internal use only: never send "
                                             "unmasked tickets outside the office.")
@click.option("--system", "system_url", metavar="URL", help="The system database for the dry run's SQL (when the "
                                                            "audit's URL hides a password).")
@click.option("--mapping", metavar="FILE", help="The source mapping (default: the one the audit used).")
@click.option("--plan", "plan_path", metavar="FILE", help="A reviewed plan file (`reconcile plan --out`) made for "
                                                          "the same run (default: the run's plan as built now).")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True,
              help="Language of the tickets' texts, headings and CSV header (JSON keys stay the same).")
@store_option
def tickets_cmd(out: str, run_id: int | None, unmask: bool, system_url: str | None, mapping: str | None,
                plan_path: str | None, lang: str, store: str | None) -> None:
    """Vendor tickets: one per (procedure, version, cause), as Markdown, CSV and JSON; personal data masked."""
    from reconcile.fix import tickets as tk

    bundle = tk.tickets(store, out, run_id, unmask=unmask, system_url=system_url, mapping_path=mapping,
                        plan_path=plan_path, lang=lang)
    n = sum(len(t.dossiers) for t in bundle.tickets)
    click.echo(f"wrote {len(bundle.tickets)} tickets ({n} dossiers) of audit run {bundle.run['id']} to {out}: "
               "index.md, tickets.csv, tickets.json" + ("" if bundle.masked else " (NOT MASKED: internal use only)"))


@main.command("check-report")
@click.argument("file")
@click.option("--layout", type=click.Choice(["auto", "official", "extended"]), default="auto", show_default=True,
              help="official: Biểu 06, 11 columns; extended: 12 columns, withdrawn and returned apart; auto: by the "
                   "header, else by the number of number columns.")
@click.option("--text", "text_file", metavar="FILE", help="The report's prose: check the counts and percentages it "
                                                          "quotes against the table (lines holding a tab are skipped).")
@click.option("--sheet", metavar="NAME", help="XLSX: the sheet with the table (default: the first that has one).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def check_report_cmd(file: str, layout: str, text_file: str | None, sheet: str | None, fmt: str) -> None:
    """Check a published statistics table (CSV, TSV, TXT, XLSX): every row's identities, sub-totals against
    their rows or remainders, and with --text the prose's numbers.

    Exit code 1 when something does not add up, 0 when everything does, 2 for bad input.
    """
    from reconcile.stats import checkreport

    result = checkreport.check_report(file, layout=layout, text=text_file, sheet=sheet)
    if fmt == "json":
        click.echo(render.to_json(result.to_dict(), pretty=sys.stdout.isatty()))
    else:
        render.check_report_table(result, _consoles()[0])
    sys.exit(int(ExitCode.FINDINGS if result.violations else ExitCode.OK))


@main.command("review")
@click.argument("plan_file", metavar="[PLAN]", default="plan.yaml")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on: loopback unless --remote.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0: a free one; the URL is printed).")
@click.option("--remote", is_flag=True, help="Allow a --host other machines can reach; every request then needs "
                                             "the token printed at start.")
@click.option("--lang", type=click.Choice(LANGS), default="vi", show_default=True)
@store_option
def review_cmd(plan_file: str, host: str, port: int, remote: bool, lang: str, store: str | None) -> None:
    """Review a plan in the browser: confirm or reject its actions per unit; decisions go into the plan file.

    Prints the URL (stdout) and serves until Ctrl-C. Nothing is written to the system: `apply` runs the
    confirmed actions afterwards. Exit 0 when stopped; 2 bad plan, store or address; 3 the store in use by
    another process (an embedded store while apply runs).
    """
    from reconcile.review.server import run as serve

    _, err = _consoles()

    def ready(url: str, work: Any) -> None:
        pending = sum(1 for r in work.rows if work.states.get(r.dossier_code) is None
                      or work.states[r.dossier_code].state == "pending")
        err.print(escape(f"review {plan_file}: audit run {work.run}, {len(work.rows)} actions to review "
                         f"({pending} pending), {work.escalations} escalations; Ctrl-C stops"))
        click.echo(url)
        sys.stdout.flush()

    _, recorded = serve(plan_file, store, host, port, lang, remote, ready)
    err.print(escape(f"stopped: {recorded} decisions recorded in {plan_file} by this server. Next: reconcile apply "
                     f"{plan_file}"))

@main.command("notify")
@click.option("--overdue", is_flag=True, help="Dossiers open and overdue at the audit date (default: those the "
                                             "committed apply batches closed or moved on).")
@click.option("--run", "run_id", type=int, help="Audit run id (--overdue: default the latest; else: only the "
                                                "batches of this run).")
@click.option("--batch", "batches", type=int, multiple=True, metavar="N",
              help="Only this apply batch (repeatable; default: every committed apply batch not undone).")
@click.option("--templates", metavar="FILE", help="Message templates YAML (default: the shipped Vietnamese ones).")
@click.option("--diacritics/--no-diacritics", default=None,
              help="Vietnamese with diacritics (UCS-2, 70 characters per SMS) or without (GSM-7, 160). Default: "
                   "the templates file's diacritics: setting.")
@click.option("--opt-out", "opt_out", metavar="FILE", help="Numbers not to message: one per line, in any form.")
@click.option("--out", default="notices", show_default=True, metavar="DIR",
              help="Folder for sms-<N>.csv (the gateway's) and skipped-<N>.csv, N the notice batch.")
@click.option("--dry-run", is_flag=True, help="Only show the summary and the first messages: nothing written or "
                                               "recorded.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@store_option
def notify_cmd(overdue: bool, run_id: int | None, batches: tuple[int, ...], templates: str | None,
               diacritics: bool | None, opt_out: str | None, out: str, dry_run: bool, fmt: str,
               store: str | None) -> None:
    """The citizens to tell what happened to their dossiers: a CSV for the SMS gateway, one message per phone
    and dossier, recorded so that no notice is listed twice. Phones are in clear in that CSV only.

    Exit 0 done (also when there is nothing to send); 2 bad input (templates, opt-out list, batch); 3 refused:
    another notify run listed some of these notices meanwhile (nothing written).
    """
    from reconcile.notify.notices import NotifyRequest, notify
    from reconcile.notify.summary import summary_lines

    result = notify(store, NotifyRequest(overdue=overdue, run_id=run_id, batches=batches, templates=templates,
                                         diacritics=diacritics, opt_out=opt_out, out=out, dry_run=dry_run))
    if fmt == "json":
        click.echo(render.to_json({**result.summary(), "preview": result.preview() if dry_run else []},
                                  pretty=sys.stdout.isatty()))
    else:
        click.echo("\n".join(summary_lines(result)))


@main.command("history")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@store_option
def history_cmd(fmt: str, store: str | None) -> None:
    """The batches apply and undo wrote: id, kind, outcome, run, counts, plan, undo-of."""
    from reconcile.fix.history import history, history_lines

    rows = history(store)
    if fmt == "json":
        click.echo(render.to_json({"batches": rows}, pretty=sys.stdout.isatty()))
    else:
        click.echo("\n".join(history_lines(rows)))


if __name__ == "__main__":  # pragma: no cover
    main()
