"""sqlpool: pooled SQLite and PostgreSQL connections, blocking and asyncio.

A thin ctypes layer over the ``libsqlpool`` C library::

    import sqlpool

    with sqlpool.Pool("sqlite:./app.db", min_size=1, max_size=10) as pool:
        with pool.connection() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, x REAL)")
            conn.execute("INSERT INTO t (x) VALUES (:x)", {"x": 1.5})
            row = conn.query_first("SELECT id, x FROM t")
            print(row.id, row["x"], row[1])

    async def main():
        pool = sqlpool.AsyncPool("postgresql://user:pw@localhost/db", max_size=30)
        await pool.start()
        async with pool.connection() as conn:
            rows = await conn.query("SELECT $1::int AS a", [1])
        await pool.stop()
"""

from __future__ import annotations

from ._version import __version__
from ._lib import library_path, native_version  # loads the library (ImportError if missing)
from .errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    PoolClosed,
    PoolTimeout,
    QueryTimeout,
    ProgrammingError,
    TooManyRequests,
    Warning,
)
from ._log import LOG_CONFIG, TRACE, LogConfig
from ._options import IsolationLevel, Recycling
from .row import Row
from .pool import Connection, Pool, Rollback, Transaction
from .aio import AsyncConnection, AsyncPool, AsyncTransaction
from . import dbapi
from .dbapi import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    connect,
    connect_async,
)

# PEP 249 module globals: ``sqlpool`` is the DB-API module (see sqlpool.dbapi).
apilevel = "2.0"
# Threads may share the module, pools and DB-API connections (a DB-API
# connection serializes its calls with a lock), not cursors.
threadsafety = 2
# ``:name`` with a mapping works on both databases. Positional ``$1`` (both)
# and ``?`` (SQLite) with a sequence are accepted too.
paramstyle = "named"

PoolSync = Pool  # PySQLXEngine's PySQLXEnginePoolSync

__all__ = [
    "__version__",
    "Pool",
    "PoolSync",
    "Connection",
    "Transaction",
    "Rollback",
    "AsyncPool",
    "AsyncConnection",
    "AsyncTransaction",
    "Row",
    "IsolationLevel",
    "Recycling",
    "LOG_CONFIG",
    "LogConfig",
    "TRACE",
    "Error",
    "Warning",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "PoolTimeout",
    "QueryTimeout",
    "PoolClosed",
    "TooManyRequests",
    "dbapi",
    "connect",
    "connect_async",
    "Date",
    "Time",
    "Timestamp",
    "DateFromTicks",
    "TimeFromTicks",
    "TimestampFromTicks",
    "Binary",
    "STRING",
    "BINARY",
    "NUMBER",
    "DATETIME",
    "ROWID",
    "apilevel",
    "threadsafety",
    "paramstyle",
    "library_path",
    "native_version",
]
