"""Database URLs and engines: normalising and masking URLs, and opening engines that cannot surprise
(no DuckDB extension loaded, no SQLite file created by a typo, read-only sessions for the vendor database)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from reconcile.errors import BadInput, ReconcileError, Refused

URL_HINT = "e.g. postgresql://user@host/db, mysql://user@host/db or a file path"

# DuckDB loads (and by default downloads) an extension when a path names another format (a SQLite
# file, md:, s3://...): never, for any DuckDB this package opens.
DUCKDB_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

# Statements that make a whole session read-only, so that a COMMIT inside a read cannot leave read-only
# mode (each read also runs in a READ ONLY transaction: see begin_read_only).
_READ_ONLY_SESSION = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
    "sqlite": "PRAGMA query_only = ON",
}
_MULTI_STATEMENTS = 1 << 16  # MySQL client capability flag (pymysql.constants.CLIENT.MULTI_STATEMENTS)

# Credentials in text that is not a parseable URL: in "scheme://user:SECRET@host...", SECRET runs from
# the first colon not followed by "/" (a scheme's is) to the last "@" (as in SQLAlchemy's URL pattern).
# And key=value passwords, parsed or not (a URL's query, libpq keyword strings).
_SECRET_START = re.compile(r":(?!/)")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_KEY_SECRET = re.compile(r"(?i)\b((?:password|passwd|pwd)\s*=\s*)[^\s&;]+")


def normalize_url(url: str) -> str:
    """Accept plain paths and driver-less URLs; pick the drivers this package installs."""
    if "://" not in url:
        return f"duckdb:///{Path(url).expanduser()}"
    for prefix, full in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("mysql://", "mysql+pymysql://"),
        ("mariadb://", "mariadb+pymysql://"),
    ):
        if url.startswith(prefix):
            return full + url[len(prefix):]
    return url


def mask_url(text: str) -> str:
    """A URL (or any text given where one is expected) as it may be printed: every password hidden,
    whether the text parses as a URL or not."""
    try:
        url = make_url(text)
    except Exception:  # not a URL SQLAlchemy reads: hide what looks like credentials all the same
        return _mask_text(text)
    if url.database and _mask_text(url.database) != url.database:  # a mistyped URL taken for a file path
        return _mask_text(text)
    return _KEY_SECRET.sub(r"\1***", url.render_as_string(hide_password=True))


def _mask_text(text: str) -> str:
    at = text.rfind("@")
    colon = _SECRET_START.search(text, 0, at) if at > 0 else None
    if colon:
        text = f"{text[:colon.end()]}***{text[at:]}"
    return _KEY_SECRET.sub(r"\1***", text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (the driver's own error for a DBAPIError)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def connect_engine(url: str, *, what: str = "database", read_only: bool = False, create: bool = False) -> Engine:
    """Create an engine and prove it answers; one-line BadInput otherwise. A SQLite file must exist
    unless `create`. `read_only`: every session is read-only and takes one statement per call (the
    vendor database: a mapping's `query:` cannot end its transaction or run a second statement)."""
    url = normalize_url(url)
    parsed = parse_url(url, what)
    if parsed.get_backend_name() == "sqlite" and not create:
        _check_sqlite_file(parsed, what)
    try:
        engine = sa.create_engine(parsed)
    except Exception as exc:  # unknown driver
        raise BadInput(f"{what} URL {mask_url(url)!r}: {first_line(exc)}. Hint: {URL_HINT}.") from None
    _guard(engine, read_only)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        raise connect_error(exc, what, parsed) from None
    return engine


def parse_url(url: str, what: str, hint: str = URL_HINT) -> URL:
    """The URL parsed, with a port that is a port, a DuckDB database that is a local file, and driver
    options this package can check."""
    try:
        parsed = make_url(url)
    except ValueError as exc:  # SQLAlchemy's message for a port that is not a number
        port = re.search(r":\s*'(.*)'$", str(exc))
        why = f"port {port[1]!r} is not a number" if port else "not a URL"
        raise BadInput(f"{what} URL {mask_url(url)!r}: {why}. Hint: {hint}.") from None
    except Exception:
        raise BadInput(f"{what} URL {mask_url(url)!r}: not a URL. Hint: {hint}.") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise BadInput(f"{what} URL {mask_url(url)!r}: port {parsed.port} is not a port (1-65535). Hint: {hint}.")
    if parsed.get_backend_name() == "duckdb" and parsed.database:
        _check_local_path(parsed.database, what, hint)
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" in parsed.query:
        from pymysql.charset import charset_by_name  # the driver's own list

        charset = str(parsed.query["charset"])
        if charset_by_name(charset) is None:
            raise BadInput(f"{what} URL {mask_url(url)!r}: charset {charset!r} is not a MySQL/MariaDB character "
                           "set. Hint: ?charset=utf8mb4, or leave it out.")
    return parsed


def connect_error(exc: BaseException, what: str, url: URL) -> ReconcileError:
    """The one-line error for a connection that failed: the store held by another process, an unknown
    URL option, or the server's own reason (with the URL's password, should the driver quote it, hidden)."""
    text = first_line(exc)
    if url.password:
        text = text.replace(str(url.password), "***")
    held = re.search(r'Could not set lock on file "([^"]*)"(?:.*\(PID (\d+)\))?', text)
    if held:
        pid = f" (PID {held[2]})" if held[2] else ""
        return Refused(f"{what} {held[1]}: in use by another process{pid}, such as another reconcile audit, apply "
                       "or undo: nothing written. Hint: a DuckDB store takes one process at a time; run again when "
                       "that one has finished.")
    option = (re.search(r"unexpected keyword argument '([^']*)'", text)
              or re.search(r'invalid connection option "([^"]*)"', text))
    if option:
        return BadInput(f"{what} URL {mask_url(str(url))!r}: unknown option {option[1]!r} after '?'. Hint: the "
                        "query of a database URL takes the driver's connection options only (e.g. "
                        "?sslmode=require, ?charset=utf8mb4).")
    return BadInput(f"{what} {mask_url(str(url))}: cannot connect: {text}. "
                    "Hint: check host, port, database name and that the server is running.")


def _check_local_path(path: str, what: str, hint: str) -> None:
    """A DuckDB database path is a local file: DuckDB reads "md:x", "s3://..." or "postgres:..." through an
    extension (a remote service, another server)."""
    scheme = _SCHEME.match(path)
    if scheme and not (os.name == "nt" and len(scheme[1]) == 1):  # C: is a Windows drive
        raise BadInput(f"{what} {mask_url(path)}: a remote or extension database ({scheme[1]}:), not a local "
                       f"file. Hint: {hint}; a local name with a colon: ./NAME.")


def _check_sqlite_file(url: URL, what: str) -> None:
    """A SQLite URL names an existing file (the driver would create an empty one)."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    if not Path(database).is_file():
        raise BadInput(f"{what} {database}: no such file. Hint: check the path (sqlite:///relative/path from the "
                       "current folder, sqlite:////absolute/path).")


def _guard(engine: Engine, read_only: bool) -> None:
    """Driver settings for every connection of `engine`: DuckDB without extension loading, MySQL without
    multi-statement calls; with `read_only`, PostgreSQL statements sent by the extended protocol (one
    statement each) and the session read-only on every engine."""
    dialect = engine.dialect.name

    @sa.event.listens_for(engine, "do_connect")
    def _options(_dialect: Any, _rec: Any, _args: Any, cparams: dict[str, Any]) -> None:
        if dialect == "duckdb":
            # duckdb-engine applies URL settings after `config`: set both, the URL cannot turn loading back on
            cparams["config"] = {**cparams.get("config", {}), **DUCKDB_CONFIG}
            cparams["url_config"] = {**cparams.get("url_config", {}), **DUCKDB_CONFIG}
            if read_only:
                cparams["read_only"] = True
        elif dialect in ("mysql", "mariadb"):
            cparams["client_flag"] = int(cparams.get("client_flag", 0)) & ~_MULTI_STATEMENTS
        elif dialect == "postgresql" and read_only:
            cparams["prepare_threshold"] = 0  # every statement prepared: the extended protocol, one statement

    if read_only and dialect in _READ_ONLY_SESSION:
        @sa.event.listens_for(engine, "connect")
        def _session(dbapi_conn: Any, _rec: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(_READ_ONLY_SESSION[dialect])
            cursor.close()
            dbapi_conn.commit()


def begin_read_only(conn: sa.Connection) -> None:
    """Every read of the vendor database runs in a read-only transaction."""
    name = conn.dialect.name
    if name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    elif name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")  # before the implicit transaction starts
    elif name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # first statement of the autobegun transaction


def same_url(a: str, b: str) -> bool:
    """Whether two database URLs name the same database: files by their resolved path, others as masked."""
    def canon(u: str) -> str:
        u = normalize_url(u)
        for prefix in ("duckdb:///", "sqlite:///"):
            if u.startswith(prefix) and ":memory:" not in u:
                return prefix + str(Path(u[len(prefix):]).expanduser().resolve())
        return mask_url(u)
    return canon(a) == canon(b)
