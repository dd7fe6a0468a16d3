"""PySQLXEngine's API on sqlpool: change ``from pysqlx_engine import ...``
to ``from sqlpool.compat.pysqlx_engine import ...``.

Provides ``PySQLXEngine`` / ``PySQLXEngineSync`` (one connection),
``PySQLXEnginePool`` / ``PySQLXEnginePoolSync`` (pools: ``connection()``,
``new_connection()``, ``start()``/``stop()``), ``BaseRow`` and
``LOG_CONFIG`` with the ``PYSQLX_*`` switches. Behaviour is sqlpool's where
PySQLXEngine's is a bug: ``min_size == max_size`` is allowed, the pool opens
``min_size`` connections at once rather than one per ``check_interval``, and
``max_size`` always holds. Rows print as PySQLXEngine's do
(``BaseModel(id=1, x=1.2)``) and answer ``row.x``, ``row["x"]``, ``row[0]``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from ..aio import AsyncConnection, AsyncPool
from .._convert import Params
from .._log import LOG_CONFIG as _SQLPOOL_LOG_CONFIG
from .._options import IsolationLevel
from ..errors import InterfaceError
from ..pool import Connection, Pool
from ..row import Row

__all__ = [
    "PySQLXEngine",
    "PySQLXEngineSync",
    "PySQLXEnginePool",
    "PySQLXEnginePoolSync",
    "BaseRow",
    "LOG_CONFIG",
]

BaseRow = Row
Isolation = Union[None, str, int, IsolationLevel]


class _LogConfig:
    """``LOG_CONFIG.PYSQLX_*``: the same switches as ``sqlpool.LOG_CONFIG.SQLPOOL_*``."""

    _names = ("PYSQLX_DEV_MODE", "PYSQLX_SQL_LOG", "PYSQLX_USE_COLOR", "PYSQLX_ERROR_JSON_FMT")

    def __getattr__(self, name: str) -> Any:
        if name in self._names:
            return getattr(_SQLPOOL_LOG_CONFIG, "SQLPOOL_" + name[len("PYSQLX_"):])
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._names:
            raise AttributeError(f"LOG_CONFIG has no setting {name!r} (settings: {', '.join(self._names)})")
        setattr(_SQLPOOL_LOG_CONFIG, "SQLPOOL_" + name[len("PYSQLX_"):], value)

    def __repr__(self) -> str:
        return "LOG_CONFIG(" + ", ".join(f"{n}={getattr(self, n)}" for n in self._names) + ")"


LOG_CONFIG = _LogConfig()


# ---------------------------------------------------------------------------
# asyncio


class _AsyncEngineConnection(AsyncConnection):
    """A pooled connection with PySQLXEngine's engine methods."""

    _isolation: Isolation = None

    async def connect(self) -> None:
        """Already connected (it came from the pool)."""
        self._handle()

    async def query_first_as_dict(self, sql: str, parameters: Params = None) -> Optional[Dict[str, Any]]:
        """The first row as a dict, or None."""
        row = await self.query_first(sql, parameters)
        return None if row is None else row.to_dict()

    async def raw_cmd(self, sql: str) -> None:
        """Runs SQL without parameters (several statements allowed)."""
        await self.execute_script(sql)

    async def set_isolation_level(self, isolation_level: Isolation) -> None:
        """The isolation of the next :meth:`begin` / :meth:`start_transaction`."""
        self._isolation = isolation_level

    async def begin(self, isolation: Isolation = None, read_only: bool = False,
                    deferrable: bool = False) -> None:
        """Begins a transaction (with the isolation set before, if any)."""
        await super().begin(isolation if isolation is not None else self._isolation, read_only, deferrable)

    async def start_transaction(self, isolation_level: Isolation = None) -> None:
        """Begins a transaction with this isolation level."""
        await self.begin(isolation_level)

    async def is_healthy(self) -> bool:
        """Whether the connection answers ``SELECT 1``."""
        try:
            await self.query_first("SELECT 1")
            return True
        except Exception:  # noqa: BLE001
            return False

    def is_connected(self) -> bool:
        """Whether the connection is still held."""
        return not self.closed


class PySQLXEnginePool(AsyncPool):
    """PySQLXEngine's asyncio pool (``max_connections`` is ``max_size``)."""

    async def new_connection(self) -> _AsyncEngineConnection:
        """Borrows a connection; ``await conn.close()`` gives it back."""
        return await self.connection()  # type: ignore[return-value]


PySQLXEnginePool._connection_class = _AsyncEngineConnection


class PySQLXEngine:
    """One asyncio connection (``await db.connect()`` ... ``await db.close()``)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._pool: Optional[AsyncPool] = None
        self._conn: Optional[_AsyncEngineConnection] = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def is_connected(self) -> bool:
        return self.connected

    async def connect(self) -> None:
        """Opens the connection (a one-connection pool). Idempotent."""
        if self.connected:
            return
        pool = PySQLXEnginePool(self.uri, min_size=1, max_size=1)
        await pool.start()
        self._pool = pool
        self._conn = await pool.new_connection()

    async def close(self) -> None:
        """Closes the connection. Idempotent."""
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if conn is not None:
            conn.close()
        if pool is not None:
            await pool.stop()

    async def __aenter__(self) -> "PySQLXEngine":
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def _c(self) -> _AsyncEngineConnection:
        if self._conn is None:
            raise InterfaceError("not connected: call await db.connect() first")
        return self._conn

    async def is_healthy(self) -> bool:
        return self.connected and await self._c().is_healthy()

    async def query(self, sql: str, parameters: Params = None) -> List[Row]:
        return await self._c().query(sql, parameters)

    async def query_first(self, sql: str, parameters: Params = None) -> Optional[Row]:
        return await self._c().query_first(sql, parameters)

    async def query_as_dict(self, sql: str, parameters: Params = None) -> List[Dict[str, Any]]:
        return await self._c().query_as_dict(sql, parameters)

    async def query_first_as_dict(self, sql: str, parameters: Params = None) -> Optional[Dict[str, Any]]:
        return await self._c().query_first_as_dict(sql, parameters)

    async def execute(self, sql: str, parameters: Params = None) -> int:
        return await self._c().execute(sql, parameters)

    async def raw_cmd(self, sql: str) -> None:
        await self._c().raw_cmd(sql)

    async def begin(self) -> None:
        await self._c().begin()

    async def commit(self) -> None:
        await self._c().commit()

    async def rollback(self) -> None:
        await self._c().rollback()

    async def start_transaction(self, isolation_level: Isolation = None) -> None:
        await self._c().start_transaction(isolation_level)

    async def set_isolation_level(self, isolation_level: Isolation) -> None:
        await self._c().set_isolation_level(isolation_level)


# ---------------------------------------------------------------------------
# blocking


class _SyncEngineConnection(Connection):
    """A pooled blocking connection with PySQLXEngine's engine methods."""

    _isolation: Isolation = None

    def connect(self) -> None:
        """Already connected (it came from the pool)."""
        self._handle()

    def query_first_as_dict(self, sql: str, parameters: Params = None) -> Optional[Dict[str, Any]]:
        row = self.query_first(sql, parameters)
        return None if row is None else row.to_dict()

    def raw_cmd(self, sql: str) -> None:
        self.execute_script(sql)

    def set_isolation_level(self, isolation_level: Isolation) -> None:
        self._isolation = isolation_level

    def begin(self, isolation: Isolation = None, read_only: bool = False, deferrable: bool = False) -> None:
        super().begin(isolation if isolation is not None else self._isolation, read_only, deferrable)

    def start_transaction(self, isolation_level: Isolation = None) -> None:
        self.begin(isolation_level)

    def is_healthy(self) -> bool:
        try:
            self.query_first("SELECT 1")
            return True
        except Exception:  # noqa: BLE001
            return False

    def is_connected(self) -> bool:
        return not self.closed


class PySQLXEnginePoolSync(Pool):
    """PySQLXEngine's blocking pool (``max_connections`` is ``max_size``)."""

    def new_connection(self) -> _SyncEngineConnection:
        """Borrows a connection; ``conn.close()`` gives it back."""
        return self.connection()  # type: ignore[return-value]


PySQLXEnginePoolSync._connection_class = _SyncEngineConnection


class PySQLXEngineSync:
    """One blocking connection (``db.connect()`` ... ``db.close()``)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._pool: Optional[Pool] = None
        self._conn: Optional[_SyncEngineConnection] = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def is_connected(self) -> bool:
        return self.connected

    def connect(self) -> None:
        if self.connected:
            return
        pool = PySQLXEnginePoolSync(self.uri, min_size=1, max_size=1)
        self._pool = pool
        self._conn = pool.new_connection()

    def close(self) -> None:
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if conn is not None:
            conn.close()
        if pool is not None:
            pool.stop()

    def __enter__(self) -> "PySQLXEngineSync":
        self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _c(self) -> _SyncEngineConnection:
        if self._conn is None:
            raise InterfaceError("not connected: call db.connect() first")
        return self._conn

    def is_healthy(self) -> bool:
        return self.connected and self._c().is_healthy()

    def query(self, sql: str, parameters: Params = None) -> List[Row]:
        return self._c().query(sql, parameters)

    def query_first(self, sql: str, parameters: Params = None) -> Optional[Row]:
        return self._c().query_first(sql, parameters)

    def query_as_dict(self, sql: str, parameters: Params = None) -> List[Dict[str, Any]]:
        return self._c().query_as_dict(sql, parameters)

    def query_first_as_dict(self, sql: str, parameters: Params = None) -> Optional[Dict[str, Any]]:
        return self._c().query_first_as_dict(sql, parameters)

    def execute(self, sql: str, parameters: Params = None) -> int:
        return self._c().execute(sql, parameters)

    def raw_cmd(self, sql: str) -> None:
        self._c().raw_cmd(sql)

    def begin(self) -> None:
        self._c().begin()

    def commit(self) -> None:
        self._c().commit()

    def rollback(self) -> None:
        self._c().rollback()

    def start_transaction(self, isolation_level: Isolation = None) -> None:
        self._c().start_transaction(isolation_level)

    def set_isolation_level(self, isolation_level: Isolation) -> None:
        self._c().set_isolation_level(isolation_level)
