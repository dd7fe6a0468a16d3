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
    ProgrammingError,
    TooManyRequests,
    Warning,
)
from ._log import LOG_CONFIG, TRACE, LogConfig
from ._options import IsolationLevel, Recycling
from .row import Row
from .pool import Connection, Pool, Rollback, Transaction
from .aio import AsyncConnection, AsyncPool, AsyncTransaction

# PEP 249 module globals
apilevel = "2.0"
threadsafety = 2  # threads may share the module and pools (connections: one call at a time)
paramstyle = "named"  # also numeric ($1) and qmark (?, SQLite)

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
    "PoolClosed",
    "TooManyRequests",
    "apilevel",
    "threadsafety",
    "paramstyle",
    "library_path",
    "native_version",
]
