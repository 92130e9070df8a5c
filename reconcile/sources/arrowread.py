"""Vendor tables read as Arrow batches of text columns, without a Python object per row.

PostgreSQL and SQLite files go through their ADBC drivers (Arrow-native: the rows never become Python
values); every other database, and any column type the ADBC reading cannot render exactly as the
SQLAlchemy reading does, goes through SQLAlchemy with a server-side cursor, fetched into one Arrow
array per column and batch. Both give the same text: `str()` of the value the SQLAlchemy driver
returns, which is what `apply` recomputes fingerprints from.

Every read is read-only: the ADBC PostgreSQL session is READ ONLY and sends each statement prepared
(one statement); the ADBC SQLite file is opened with `mode=ro` and `query_only`; the SQLAlchemy
connection is the caller's read-only one (see util.db.begin_read_only).
"""

from __future__ import annotations

import os
import queue
import re
import threading
from contextlib import AbstractContextManager, closing
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

T = TypeVar("T")
READERS = ("auto", "adbc", "sqlalchemy")
# RECONCILE_VENDOR_READER=sqlalchemy turns the ADBC drivers off (auto: ADBC where it applies).
READER_ENV = "RECONCILE_VENDOR_READER"


class DriverError(Exception):
    """A database error raised while reading through an ADBC driver, its message cleaned to one line."""


def reader_choice() -> str:
    choice = os.environ.get(READER_ENV, "auto").strip().lower() or "auto"
    return choice if choice in READERS else "auto"


def adbc_uri(url: sa.engine.URL) -> str | None:
    """The ADBC driver URI of a SQLAlchemy URL, or None where no ADBC driver applies (other dialects,
    in-memory or URI-form SQLite names)."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    if backend == "sqlite":
        name = url.database or ""
        if name in ("", ":memory:") or name.startswith("file:") or url.query:
            return None
        # read-only at the file level: no write can happen whatever the SQL says
        return f"file:{quote(os.path.abspath(name))}?mode=ro"
    return None


def text_batches(engine: sa.Engine, stmt: sa.Select[Any], rows: int,
                 read_only: Callable[[], AbstractContextManager[sa.Connection]]) -> Iterator[pa.Table]:
    """The rows of `stmt` (labelled columns) as tables of string columns, `rows` at most each, read
    ahead in a thread while the caller stores the previous batch."""
    return prefetch(_text_batches(engine, stmt, rows, read_only))


def prefetch(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`batches` produced in a thread of their own, at most `depth` ahead: the drivers read without
    the GIL, so reading the next batch overlaps with storing this one (two cores, not one). The
    producer's error is raised here; stopping early stops (and closes) the producer."""
    out: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(("error", exc))
        else:
            put(("end", None))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # in this thread: the connections it opened are used and closed here only

    worker = threading.Thread(target=produce, name="vendor-read", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = out.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def _text_batches(engine: sa.Engine, stmt: sa.Select[Any], rows: int,
                  read_only: Callable[[], AbstractContextManager[sa.Connection]]) -> Iterator[pa.Table]:
    uri = adbc_uri(engine.url) if reader_choice() != "sqlalchemy" else None
    if uri is not None and _adbc_renders(engine, stmt):
        conn = _adbc_connect(engine.url.get_backend_name(), uri)
        if conn is not None:
            with closing(conn):
                batches = _adbc_batches(conn, engine, stmt, rows)
                if batches is not None:
                    yield from batches
                    return
    with read_only() as conn:
        yield from _sqlalchemy_batches(conn, stmt, rows)


# ------------------------------------------------------------------------------------------- ADBC


def _adbc_renders(engine: sa.Engine, stmt: sa.Select[Any]) -> bool:
    """Whether the ADBC reading gives the SQLAlchemy reading's text: on SQLite, columns SQLAlchemy reads
    as stored (a declared DATETIME, BOOLEAN or NUMERIC is converted by SQLAlchemy: read there)."""
    if engine.dialect.name != "sqlite":
        return True  # PostgreSQL: checked on the result's Arrow types (_as_text)
    dialect = engine.dialect
    return all(c.type.dialect_impl(dialect).result_processor(dialect, None) is None for c in stmt.selected_columns)


def _adbc_connect(backend: str, uri: str) -> Any | None:
    """An ADBC connection in a read-only session, or None when the driver is missing or will not
    connect (the SQLAlchemy engine did: its reading takes over)."""
    try:
        if backend == "postgresql":
            import adbc_driver_postgresql.dbapi as driver
        else:
            import adbc_driver_sqlite.dbapi as driver
    except ImportError:
        return None
    try:
        conn = driver.connect(uri)
    except Exception:  # noqa: BLE001 - any refusal: the SQLAlchemy path reads, and reports its own error
        return None
    try:
        with conn.cursor() as cur:
            if backend == "postgresql":
                # a COMMIT inside a read cannot leave read-only mode: the whole session is read-only
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            else:
                cur.execute("PRAGMA query_only = ON")
        conn.commit()
    except Exception:  # noqa: BLE001
        conn.close()
        return None
    return conn


def _adbc_batches(conn: Any, engine: sa.Engine, stmt: sa.Select[Any], rows: int) -> Iterator[pa.Table] | None:
    """The statement's result through ADBC, or None if a column has a type _as_text cannot render
    (nothing has been read then)."""
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # SQLite values have no fixed type per column (ADBC refuses a column that changes type):
        # read the text SQLite renders, which is str() of what the sqlite3 module returns
        stmt = sa.select(*[sa.cast(c, sa.Text).label(c.name) for c in stmt.subquery("r").c])
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    cur = conn.cursor()
    try:
        if sqlite:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(rows)})
        cur.execute(sql)
        reader = cur.fetch_record_batch()
    except Exception as exc:  # noqa: BLE001 - the driver's error, one line
        cur.close()
        raise DriverError(_driver_message(exc)) from None
    if any(_text_kind(f.type) is None for f in reader.schema):
        cur.close()
        return None
    return _read(cur, reader)


def _read(cur: Any, reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
    with closing(cur):
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001
                raise DriverError(_driver_message(exc)) from None
            if batch.num_rows:
                yield pa.table({name: _as_text(col) for name, col in zip(batch.schema.names, batch.columns)})


def _driver_message(exc: BaseException) -> str:
    """The database's own words from an ADBC error: 'ERROR:  ...' of PostgreSQL, else the first line
    without the ADBC status code."""
    text = str(exc)
    server = re.search(r"ERROR:\s+(.*)", text)
    if server:
        return server[1].strip()
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return re.sub(r"^[A-Z_]+: (\[[^\]]*\] )?", "", first)


# ------------------------------------------------------------------------------------- SQLAlchemy


def _sqlalchemy_batches(conn: sa.Connection, stmt: sa.Select[Any], rows: int) -> Iterator[pa.Table]:
    """A server-side cursor (stream_results) read `rows` at a time into one Arrow array per column."""
    result = conn.execution_options(stream_results=True, yield_per=rows).execute(stmt)
    names = list(result.keys())
    for part in result.partitions(rows):
        columns = list(zip(*part)) if part else [() for _ in names]
        yield pa.table({name: _values_text(list(values)) for name, values in zip(names, columns)})


def _values_text(values: list[Any]) -> pa.Array:
    """A column of driver values as text, str() of each: through Arrow where its rendering is str()'s."""
    try:
        arr = pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        arr = None
    if arr is not None and _text_kind(arr.type) is not None:
        return _as_text(arr)
    return pa.array([None if v is None else str(v) for v in values], pa.string())


# ------------------------------------------------------------------------------- Arrow -> text


def _text_kind(t: pa.DataType) -> str | None:
    """How a column of type `t` becomes text as str() renders its Python value; None: not exactly."""
    if pa.types.is_dictionary(t):
        return _text_kind(t.value_type)
    if pa.types.is_null(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        return "cast"
    if pa.types.is_integer(t) or pa.types.is_date32(t):
        return "cast"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t) and t.tz is None and t.unit in ("s", "us"):
        return "timestamp"
    return None  # floats ('1' for 1.0), decimals, zoned timestamps, intervals, binary, ...


_TRUE, _FALSE = pa.scalar("True"), pa.scalar("False")


def _as_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The column as strings, each as str() renders the value (True, 2021-01-02 03:04:05, ...)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    kind = _text_kind(arr.type)
    if kind == "bool":
        return pc.if_else(arr, _TRUE, _FALSE)
    text = arr.cast(pa.string())
    if kind == "timestamp":  # str(datetime) shows the microseconds only when there are some
        text = pc.replace_substring_regex(text, r"\.000000$", "")
    return text
