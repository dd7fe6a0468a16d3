"""psqlpy's API on sqlpool: change ``from psqlpy import ...`` to
``from sqlpool.compat.psqlpy import ...``.

``ConnectionPool`` (and its old name ``PSQLPool``) takes psqlpy's arguments
(``dsn`` or ``username``/``password``/``host``/``port``/``db_name``,
``max_db_pool_size``, ``conn_recycling_method``), ``await pool.startup()``
opens it, ``pool.close()`` closes it. ``execute(querystring, parameters,
prepared=True)`` returns a :class:`QueryResult` (``.result()`` is a list of
dicts); ``fetch``, ``fetch_row`` and ``fetch_val`` as psqlpy's;
``await pool.connection()`` borrows a :class:`Connection`. Placeholders are
``$1``, ``$2``... with a list of parameters. ``prepared`` is accepted and
ignored: sqlpool always uses its per-connection prepared-statement cache.

Differences that are sqlpool's fixes: acquiring waits at most
``conn_timeout`` (psqlpy waits forever), server errors keep their SQLSTATE
(``exc.sqlstate``), Python ints are sent as int8 (``LIMIT $1`` works).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Generator, List, Optional, Sequence, Type, TypeVar

from ..aio import AsyncConnection, AsyncPool
from .._options import Duration
from ..row import Row

__all__ = ["ConnectionPool", "PSQLPool", "Connection", "QueryResult", "SingleQueryResult"]

_T = TypeVar("_T")
Parameters = Optional[Sequence[Any]]


class QueryResult:
    """The rows of a query (psqlpy's ``QueryResult``)."""

    def __init__(self, rows: List[Row]) -> None:
        self._rows = rows

    def result(self, custom_decoders: Optional[Dict[str, Callable[[Any], Any]]] = None) -> List[Dict[str, Any]]:
        """Every row as a dict; ``custom_decoders`` maps column names to functions."""
        rows = [r.to_dict() for r in self._rows]
        if custom_decoders:
            for row in rows:
                for name, decode in custom_decoders.items():
                    if name in row:
                        row[name] = decode(row[name])
        return rows

    def as_class(self, as_class: Type[_T]) -> List[_T]:
        """Every row as ``as_class(**row)``."""
        return [as_class(**r.to_dict()) for r in self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"QueryResult({self.result()!r})"


class SingleQueryResult:
    """One row (psqlpy's ``SingleQueryResult``)."""

    def __init__(self, row: Row) -> None:
        self._row = row

    def result(self, custom_decoders: Optional[Dict[str, Callable[[Any], Any]]] = None) -> Dict[str, Any]:
        """The row as a dict."""
        return QueryResult([self._row]).result(custom_decoders)[0]

    def as_class(self, as_class: Type[_T]) -> _T:
        return as_class(**self._row.to_dict())

    def __repr__(self) -> str:
        return f"SingleQueryResult({self.result()!r})"


def _no_row() -> Exception:
    from ..errors import DataError

    return DataError("the query returned no rows")


class Connection:
    """A connection borrowed from a :class:`ConnectionPool`; give it back with
    :meth:`back_to_pool` (or :meth:`close`, or ``async with``)."""

    def __init__(self, native: AsyncConnection) -> None:
        self._native = native

    @property
    def native(self) -> AsyncConnection:
        """The underlying :class:`sqlpool.AsyncConnection`."""
        return self._native

    async def execute(self, querystring: str, parameters: Parameters = None, prepared: bool = True) -> QueryResult:
        """Runs a query; its rows as a :class:`QueryResult`."""
        return QueryResult(await self._native.query(querystring, parameters))

    fetch = execute

    async def execute_many(self, querystring: str, parameters: Optional[Sequence[Sequence[Any]]] = None,
                           prepared: bool = True) -> None:
        """Runs one statement per parameter list, all or nothing."""
        await self._native.execute_many(querystring, parameters or [])

    async def fetch_row(self, querystring: str, parameters: Parameters = None, prepared: bool = True) -> SingleQueryResult:
        """Exactly one row (DataError when there is none)."""
        row = await self._native.query_first(querystring, parameters)
        if row is None:
            raise _no_row()
        return SingleQueryResult(row)

    async def fetch_val(self, querystring: str, parameters: Parameters = None, prepared: bool = True) -> Any:
        """The first column of the first row (DataError when there is none)."""
        row = await self._native.query_first(querystring, parameters)
        if row is None:
            raise _no_row()
        return row[0]

    def transaction(self, **options: Any) -> Any:
        """``async with conn.transaction():`` (sqlpool's transaction block;
        ``isolation_level``, ``read_only``, ``deferrable`` as psqlpy's)."""
        return self._native.transaction(
            isolation=options.get("isolation_level"),
            read_only=bool(options.get("read_variant") or options.get("read_only")),
            deferrable=bool(options.get("deferrable")),
        )

    def back_to_pool(self) -> None:
        """Gives the connection back to its pool."""
        self._native.close()

    close = back_to_pool

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.back_to_pool()


class _Acquire:
    """``await pool.connection()`` and ``async with pool.acquire() as conn``."""

    def __init__(self, pool: "ConnectionPool") -> None:
        self._pool = pool
        self._conn: Optional[Connection] = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._pool._connect().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._pool._connect()
        return self._conn

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._conn is not None:
            self._conn.back_to_pool()


class ConnectionPool:
    """psqlpy's pool: ``await pool.startup()`` (the first use starts it too),
    ``pool.close()``. Default and minimum ``max_db_pool_size``: 2."""

    def __init__(
        self,
        dsn: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        host: Optional[str] = None,
        port: Optional[int] = None,
        db_name: Optional[str] = None,
        max_db_pool_size: int = 2,
        conn_recycling_method: Any = None,
        conn_timeout: Optional[Duration] = None,
        **options: Any,
    ) -> None:
        if dsn is None and host is None:
            host = "localhost"
        self._pool = AsyncPool(
            dsn,
            username=None if dsn else username,
            password=None if dsn else password,
            host=None if dsn else host,
            port=None if dsn else port,
            db_name=None if dsn else db_name,
            max_size=max(int(max_db_pool_size), 2),
            min_size=1,
            recycling=conn_recycling_method,
            conn_timeout=conn_timeout,
            **options,
        )

    @property
    def native(self) -> AsyncPool:
        """The underlying :class:`sqlpool.AsyncPool`."""
        return self._pool

    async def startup(self) -> None:
        """Opens the pool. Idempotent."""
        await self._pool.start()

    def close(self) -> None:
        """Closes the pool."""
        self._pool.close()

    async def _connect(self) -> Connection:
        return Connection(await self._pool.connection())

    def connection(self) -> _Acquire:
        """``connection = await pool.connection()``."""
        return _Acquire(self)

    acquire = connection

    async def execute(self, querystring: str, parameters: Parameters = None, prepared: bool = True) -> QueryResult:
        """Runs a query on a pooled connection."""
        async with self.acquire() as conn:
            return await conn.execute(querystring, parameters, prepared)

    fetch = execute

    async def fetch_row(self, querystring: str, parameters: Parameters = None, prepared: bool = True) -> SingleQueryResult:
        async with self.acquire() as conn:
            return await conn.fetch_row(querystring, parameters, prepared)

    async def fetch_val(self, querystring: str, parameters: Parameters = None, prepared: bool = True) -> Any:
        async with self.acquire() as conn:
            return await conn.fetch_val(querystring, parameters, prepared)

    def status(self) -> Dict[str, int]:
        """The pool's statistics (``sqlpool.Pool.stats``)."""
        return self._pool.stats()


PSQLPool = ConnectionPool
