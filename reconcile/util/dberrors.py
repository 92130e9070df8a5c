"""What a database driver's error means to the user: a full disk, or an account that may not write."""

from __future__ import annotations

import errno
from typing import Iterator

# Driver error codes, by what they mean. PostgreSQL: SQLSTATE; MySQL/MariaDB: the error number (args[0]);
# SQLite: the primary result code (sqlite_errorcode & 0xff).
PG_DISK_FULL = {"53100"}  # disk_full
PG_CANNOT_WRITE = {"42501", "25006"}  # insufficient_privilege, read_only_sql_transaction
MYSQL_DISK_FULL = {1021, 1114}  # ER_DISK_FULL, ER_RECORD_FILE_FULL ("The table is full")
# ER_DBACCESS_DENIED, table/column access denied, table read only, --read-only server, read-only transaction
MYSQL_CANNOT_WRITE = {1044, 1142, 1143, 1036, 1290, 1792}
SQLITE_FULL, SQLITE_READONLY, SQLITE_AUTH = 13, 8, 23
# DuckDB and others say it in words only.
DISK_FULL_TEXTS = ("No space left on device", "database or disk is full")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error, the driver's error SQLAlchemy wraps (.orig), and their causes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def _mysql_code(e: BaseException) -> int | None:
    code = e.args[0] if e.args else None
    return code if type(e).__module__.startswith(("pymysql", "MySQLdb")) and isinstance(code, int) else None


def disk_full(exc: BaseException) -> bool:
    """Whether the error says the disk (or the server's table space) is full."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if getattr(e, "sqlstate", None) in PG_DISK_FULL or _mysql_code(e) in MYSQL_DISK_FULL:
            return True
        if (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL:
            return True
        if any(text in str(e) for text in DISK_FULL_TEXTS):
            return True
    return False


def cannot_write(exc: BaseException) -> bool:
    """Whether the error says the account (or the database) may not write: no privilege, read-only."""
    for e in _chain(exc):
        if getattr(e, "sqlstate", None) in PG_CANNOT_WRITE or _mysql_code(e) in MYSQL_CANNOT_WRITE:
            return True
        if (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF in (SQLITE_READONLY, SQLITE_AUTH):
            return True
    return False
