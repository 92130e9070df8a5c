"""The batches an apply or undo committed, and the store it logs them into: still the one it opened?"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.errors import Interrupted, ReconcileError, Refused, wrote
from reconcile.store import Store, meta_table, store_file, store_name
from reconcile.util.db import first_line
from reconcile.util.dberrors import disk_full

STORE_ID = "store_id"  # store_meta key: the store's identity, recorded with its first batch


class Ledger:
    """The batches an apply (or undo) has committed so far and the one in flight, and the store it logs
    them into. Before each target commit the store must still be the store that was opened: an embedded
    store the same file at its path (not deleted, moved or replaced), any store the same store_id. A
    batch logged into a file nobody can open again could not be undone. When the run stops (an error,
    Ctrl-C), `stopped` adds what was committed before it and how to undo it."""

    def __init__(self, store: Store, kind: str, again: Callable[[Ledger], str]) -> None:
        self.store, self.kind, self.again = store, kind, again  # the command that finishes the work, given it
        self.done: list[tuple[int, int | None]] = []  # committed batches (an undo's: with the batch it undid)
        self.in_flight: int | None = None  # logged; its target commit not known to be done
        self.committing = False  # the in-flight batch's target commit has begun
        self.file = store_file(store)
        self.inode = self._inode()
        self.store_id = _store_id(store)  # None: recorded with the first batch's log (opening writes nothing)
        self.recording = False  # store_id is being recorded by the log transaction under way

    @property
    def name(self) -> str:
        return store_name(self.store)

    def _inode(self) -> tuple[int, int] | None:
        """The embedded store's file at its path now (device, inode); None: none there, or a server store."""
        if self.file is None:
            return None
        try:
            st = os.stat(self.file)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def moved(self, log: Connection | None = None) -> str | None:
        """Why the store is not the one opened any more (`log`: a connection in the log's transaction, to
        read its store_id), or None."""
        if self.file is not None and self._inode() != self.inode:
            how = "deleted or moved away" if not self.file.exists() else "replaced by another file"
            return f"store {self.file} was {how} while {self.kind} ran"
        if log is not None and not self._same_id(log):
            return (f"store {self.name} is not the store {self.kind} opened any more (another {STORE_ID}: dropped "
                    "and created again?)")
        return None

    def _same_id(self, log: Connection) -> bool:
        """Whether the store holds the store_id it held when opened; a store that had none gets one in the
        log's transaction (its first batch), so that the next batches can tell."""
        found = _store_id(self.store, log)
        if self.store_id is None and found is None:
            self.store_id, self.recording = uuid.uuid4().hex, True
            log.execute(sa.insert(meta_table).values(key=STORE_ID, value=self.store_id))
            return True
        if self.store_id is None:  # recorded meanwhile by another apply or undo
            self.store_id = found
        return found == self.store_id

    def check(self, log: Connection | None = None) -> None:
        """Refuse the batch about to commit when the store moved (see `moved`)."""
        why = self.moved(log)
        if why:
            earlier = "; the change log of the batches before it is in that store: put it back before going on"
            raise Refused(f"{why}: this batch was rolled back, nothing of it written{earlier if self.done else ''}.")

    def log_rolled_back(self) -> None:
        """The log transaction rolled back (to be tried again): a store_id it recorded is not recorded."""
        if self.recording:
            self.store_id, self.recording = None, False

    def logged(self, batch_id: int) -> None:
        self.in_flight, self.committing, self.recording = batch_id, False, False

    def committed(self, batch_id: int, undo_of: int | None) -> None:
        self.done.append((batch_id, undo_of))
        self.in_flight, self.committing = None, False
        wrote(f"batch {batch_id} (`reconcile history --store {self.name}`)")

    def note(self) -> str:
        """What was committed and the batch in flight, as a clause (empty: nothing)."""
        ids = [b for b, _ in self.done]
        parts = []
        if ids and self.kind == "undo":
            parts.append(f"{_batches([u for _, u in self.done])} {'was' if len(ids) == 1 else 'were'} undone "
                         f"(by {_batches(ids)})")
        elif ids:
            parts.append(f"{_batches(ids)} {'was' if len(ids) == 1 else 'were'} committed (undo: `reconcile undo "
                         f"{' '.join(map(str, reversed(ids)))} --store {self.name}`)")
        if self.in_flight is not None and self.committing:
            parts.append(f"batch {self.in_flight} was stopped during its commit: the next `reconcile apply` or "
                         "`reconcile undo` finds out from the system's rows whether it was written (see `reconcile "
                         "history`)")
        elif self.in_flight is not None:
            parts.append(f"batch {self.in_flight} was rolled back (`reconcile history` shows it pending until the "
                         "next apply or undo records that)")
        return "; ".join(parts)

    def check_end(self) -> None:
        """After the last batch: a store moved meanwhile took the log of every batch with it (Refused)."""
        why = self.moved() if self.done else None
        if why:
            raise Refused(f"{why}: the change log of its batches went with it (put that store back before going on): "
                          f"{self.note()}.")

    def stopped(self, exc: BaseException) -> BaseException:
        """The error to raise when the run stops on `exc` (Ctrl-C: Interrupted), saying what was committed
        and how to finish. A bug keeps its type and traceback; the note goes with it (the CLI prints it)."""
        hint = f"Hint: `{self.again(self)} --store {self.name}` finishes the {self.kind}."
        note = self.note()
        if isinstance(exc, KeyboardInterrupt):
            done = f"{note}; the rest was not written" if note else \
                "no batch was committed: nothing was written to the system"
            return Interrupted(f"{self.kind} stopped: {done}. {hint}")
        if not note:
            return exc  # its own message says what was not written
        note = f"{note[0].upper()}{note[1:]}. {hint}"
        if not isinstance(exc, ReconcileError):
            exc.add_note(note)
            return exc
        listed = exc.problems != [str(exc)]  # e.g. every moved value, one a line: the note is one more
        return type(exc)(f"{exc} {note}", [*exc.problems, note] if listed else None)


@contextmanager
def stopping(ledger: Ledger | None) -> Iterator[None]:
    """Inside: an error or Ctrl-C is raised again saying what the ledger's run committed (Ledger.stopped)."""
    try:
        yield
    except (Exception, KeyboardInterrupt) as exc:
        stopped = ledger.stopped(exc) if ledger is not None else exc
        if stopped is exc:
            raise
        raise stopped from None


def _batches(ids: list[int]) -> str:
    return f"batch {ids[0]}" if len(ids) == 1 else f"batches {', '.join(map(str, ids))}"


def _store_id(store: Store, conn: Connection | None = None) -> str | None:
    """The store's identity (store_meta), recorded in it by its first apply or undo batch: a store dropped
    and created again, or another store at the same URL, has another (or none)."""
    if conn is not None:
        return conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == STORE_ID)).scalar()
    try:
        with store.connect() as c:
            return _store_id(store, c)
    except sa.exc.DBAPIError as exc:
        raise store_failed(store, exc, "read its store_id") from None


def store_failed(store: Store, exc: sa.exc.DBAPIError, doing: str) -> Refused:
    """The store could not be written (a full disk, a lock, a dropped table): one line."""
    why = "the disk it is on is full" if disk_full(exc) else first_line(exc)
    return Refused(f"store {store_name(store)}: cannot {doing}: {why}.")
