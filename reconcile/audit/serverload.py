"""Loads into a server store, pipelined: the next batch is read and normalised while the server takes
in the last one.

A server store's load has two halves that wait on each other when run in turn: this process reads a
batch and normalises it in a scratch DuckDB (and, for PostgreSQL, writes it as CSV text), then the
server parses and stores it while this process waits. A worker thread does the first half one batch
ahead, so on a machine with two cores both halves run at once (measured at 1M dossiers on PostgreSQL:
the register and system loads in about the server's COPY time alone instead of the sum of both halves).
DuckDB, Arrow's CSV writer and the driver's socket waits release the GIL. At most two batches are in
memory besides the one being sent: the one prepared ahead, and the one being read.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, TypeVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.store import encode_rows, send_rows

T = TypeVar("T")
_DONE = object()


def ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, each produced by a worker thread while the caller works on the one before. An
    exception raised by `items` is raised here, as it was; when the caller stops early (an error, or
    Ctrl-C), the worker stops after the item it is on."""
    box: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put((_DONE, None))
        except BaseException as exc:  # handed to the caller, raised there
            box.put((_DONE, exc))

    worker = threading.Thread(target=work, name="reconcile-load-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a worker blocked on put() see the stop
            try:
                box.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def load_batches(conn: Connection, table: sa.Table, select: Callable[[str], str], batches: Iterator[pa.Table],
                 run_id: int) -> int:
    """INSERT the rows of a workbench SELECT over each Arrow table of `batches` into a server store's
    `table`, the next batch prepared (read, normalised, encoded) while the last is sent; returns the
    number of rows."""
    from reconcile.util.scratch import select_arrow

    dialect = conn.dialect.name

    def prepared() -> Iterator[tuple[int, Any]]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            out = select_arrow(select("raw"), {"raw": batch})
            out = out.append_column("run_id", pa.repeat(pa.scalar(run_id, pa.int32()), out.num_rows))
            yield out.num_rows, encode_rows(dialect, table, out)

    n = 0
    for rows, payload in ahead(prepared()):
        send_rows(conn, table, payload)
        n += rows
    return n
