"""The PEP 249 (DB-API 2.0) driver: :func:`connect`, :class:`Connection`,
:class:`Cursor`, type objects and constructors; and its asyncio flavour,
:class:`AsyncConnection` / :class:`AsyncCursor`, shaped like psycopg's.

The ``sqlpool`` module itself is the DB-API module (``apilevel``,
``threadsafety``, ``paramstyle``, ``connect``, the exceptions, ``STRING``...
are all importable from it), so tools that take a DB-API module take
``sqlpool``::

    import sqlpool

    conn = sqlpool.connect("sqlite:./app.db")          # or "postgresql://..."
    cur = conn.cursor()
    cur.execute("SELECT name FROM users WHERE id = :id", {"id": 1})
    print(cur.fetchone())
    conn.commit()
    conn.close()

Transactions follow PEP 249 and psycopg: with ``autocommit`` off (the
default) the first statement opens a transaction, which lasts until
:meth:`Connection.commit` or :meth:`Connection.rollback`; ``commit()`` and
``rollback()`` with no transaction open do nothing. On PostgreSQL the
implicit transaction is ``BEGIN`` (with ``isolation_level`` when set); on
SQLite it is a plain (deferred) ``BEGIN``, as Python's ``sqlite3`` does, so
readers do not take the write lock. With ``autocommit = True`` every
statement commits at once (needed for ``VACUUM``, ``CREATE DATABASE``, ...).

A connection made by :func:`connect` owns a private pool of one connection;
``pool.dbapi_connection()`` borrows one from an existing :class:`~sqlpool.Pool`
instead, and ``close()`` gives it back (rolling back what was not committed).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import re
import threading
import time as _time
from ctypes import byref, c_uint64, c_void_p
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

from . import _convert, _lib, errors
from ._convert import Params, build_params, free_params
from ._lib import lib
from ._options import IsolationLevel, isolation_value
from .errors import InterfaceError, ProgrammingError, check, last_error
from .pool import Connection as NativeConnection
from .pool import Pool, encode_sql

__all__ = [
    "connect",
    "connect_async",
    "Connection",
    "Cursor",
    "AsyncConnection",
    "AsyncCursor",
    "Column",
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
]

# ---------------------------------------------------------------------------
# Type objects and constructors


def _base_type(type_code: str) -> str:
    """``varchar(20)`` -> ``varchar``; ``int4[]`` stays an array."""
    t = type_code.strip().lower()
    if t.endswith("[]"):
        return t
    return re.split(r"[\s(]", t, maxsplit=1)[0] if t else t


_PG_FAMILIES: Dict[str, str] = {}
for _name in ("text", "varchar", "bpchar", "char", "name", "character", "citext", "uuid", "json",
              "jsonb", "xml", "inet", "cidr", "macaddr", "clob"):
    _PG_FAMILIES[_name] = "STRING"
for _name in ("int2", "int4", "int8", "float4", "float8", "numeric", "decimal", "money", "bool",
              "boolean", "integer", "smallint", "bigint", "real", "double", "float", "tinyint",
              "mediumint", "serial", "bigserial"):
    _PG_FAMILIES[_name] = "NUMBER"
for _name in ("bytea", "blob"):
    _PG_FAMILIES[_name] = "BINARY"
for _name in ("date", "time", "timetz", "timestamp", "timestamptz", "interval", "datetime"):
    _PG_FAMILIES[_name] = "DATETIME"
for _name in ("oid", "rowid", "tid", "xid"):
    _PG_FAMILIES[_name] = "ROWID"


def type_family(type_code: Optional[str]) -> Optional[str]:
    """The DB-API family (``"STRING"``, ``"NUMBER"``...) of a column's
    declared type: PostgreSQL's type names, SQLite's by its affinity rules."""
    if not type_code:
        return None
    base = _base_type(type_code)
    family = _PG_FAMILIES.get(base)
    if family is not None:
        return family
    # SQLite's affinity rules (section 3.1 of its datatype documentation).
    t = type_code.upper()
    if "INT" in t:
        return "NUMBER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "STRING"
    if "BLOB" in t:
        return "BINARY"
    if "DATE" in t or "TIME" in t:
        return "DATETIME"
    if "REAL" in t or "FLOA" in t or "DOUB" in t or "NUM" in t or "DEC" in t or "BOOL" in t:
        return "NUMBER"
    return "STRING"  # enums, domains and types without a mapping arrive as text


class DBAPITypeObject:
    """A PEP 249 type object: equal to every ``type_code`` (a column's
    declared type name, as in ``cursor.description``) of its family."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DBAPITypeObject):
            return other is self
        if isinstance(other, str):
            return type_family(other) == self.name
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<DBAPITypeObject {self.name}>"


STRING = DBAPITypeObject("STRING")
BINARY = DBAPITypeObject("BINARY")
NUMBER = DBAPITypeObject("NUMBER")
DATETIME = DBAPITypeObject("DATETIME")
ROWID = DBAPITypeObject("ROWID")

Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> _dt.date:  # noqa: N802 - PEP 249 name
    """The local date of a POSIX timestamp."""
    return Date(*_time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:  # noqa: N802
    """The local time of day of a POSIX timestamp."""
    return Time(*_time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:  # noqa: N802
    """The local date and time of a POSIX timestamp."""
    return Timestamp(*_time.localtime(ticks)[:6])


class Column(NamedTuple):
    """One entry of ``cursor.description`` (PEP 249's 7-item sequence)."""

    name: str
    type_code: Optional[str]
    display_size: Optional[int] = None
    internal_size: Optional[int] = None
    precision: Optional[int] = None
    scale: Optional[int] = None
    null_ok: Optional[bool] = None


# ---------------------------------------------------------------------------
# Statement classification

_SKIP_RE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
_WORD_RE = re.compile(r"[A-Za-z_]+")
_RETURNING_RE = re.compile(r"\bRETURNING\b", re.I)
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE"})
_PROC_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


def leading_keyword(sql: str) -> str:
    """The statement's first keyword, upper-case, after comments and ``(``."""
    m = _SKIP_RE.match(sql)
    pos = m.end() if m else 0
    w = _WORD_RE.match(sql, pos)
    return w.group(0).upper() if w else ""


def _is_plain_dml(sql: str, keyword: str) -> bool:
    """An INSERT/UPDATE/DELETE without RETURNING: run for its row count."""
    return keyword in _DML and _RETURNING_RE.search(sql) is None


_NO_RESULT = "no result to fetch: the last statement returned no rows (or none was executed)"


def _new_connection_options(dsn: Optional[str], options: Dict[str, Any]) -> Tuple[Optional[str], Dict[str, Any]]:
    """psycopg/libpq keyword names -> sqlpool's, and a one-connection pool."""
    renames = {"user": "username", "dbname": "db_name", "database": "db_name"}
    out: Dict[str, Any] = {}
    for key, value in options.items():
        out[renames.get(key, key)] = value
    if dsn is None:
        dsn = out.pop("conninfo", None) or out.pop("uri", None)
    out["min_size"] = 1
    out["max_size"] = 1
    return dsn, out


class _State:
    """What the blocking and asyncio connections share: flags and checks."""

    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    _closed = False
    _in_tx = False
    _autocommit = False
    _postgres = False
    isolation_level: Union[None, str, int, IsolationLevel] = None
    """Isolation of the implicit transactions (PostgreSQL; None: the server's default)."""

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def in_transaction(self) -> bool:
        """Whether an implicit transaction is open (work not yet committed)."""
        return self._in_tx

    @property
    def is_postgres(self) -> bool:
        """Whether this connection talks to PostgreSQL (else SQLite)."""
        return self._postgres

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the connection is closed")

    def _set_autocommit_flag(self, value: bool) -> None:
        self._check_open()
        value = bool(value)
        if value != self._autocommit and self._in_tx:
            raise ProgrammingError(
                "cannot change autocommit inside a transaction: call commit() or rollback() first"
            )
        self._autocommit = value


# ---------------------------------------------------------------------------
# Blocking


class Connection(_State):
    """A DB-API 2.0 connection (see the module documentation).

    Made by :func:`sqlpool.connect` or ``pool.dbapi_connection()``. The
    exceptions are attributes too (``conn.Error``, ``conn.IntegrityError``,
    ...). ``with conn:`` commits at the end of the block (rolls back on an
    exception) and closes the connection, as psycopg 3 does. Threads may
    share a connection: its calls are serialized by a lock.
    """

    def __init__(self, native: NativeConnection, owned_pool: Optional[Pool] = None,
                 autocommit: bool = False) -> None:
        self._native = native
        self._owned_pool = owned_pool
        self._postgres = native._postgres
        #: ``str`` (default) or ``bytes``: TEXT values undecoded, as
        #: sqlite3's ``text_factory``. TEXT that is not UTF-8 read as ``str``
        #: raises DataError.
        self.text_factory: type = str
        self._autocommit = bool(autocommit)
        self._lock = threading.RLock()

    # -- PEP 249 -----------------------------------------------------------

    @property
    def autocommit(self) -> bool:
        """Off by default: statements run in an implicit transaction that
        :meth:`commit` ends. Changing it inside a transaction raises."""
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        with self._lock:
            self._set_autocommit_flag(value)

    def cursor(self) -> "Cursor":
        """A new cursor on this connection."""
        self._check_open()
        return Cursor(self)

    def commit(self) -> None:
        """Commits the open transaction; does nothing when none is open."""
        with self._lock:
            self._check_open()
            if not self._in_tx:
                return
            self._in_tx = False
            check(lib.sqlpool_conn_commit(self._native._handle()))

    def rollback(self) -> None:
        """Rolls the open transaction back; does nothing when none is open."""
        with self._lock:
            self._check_open()
            if not self._in_tx:
                return
            self._in_tx = False
            st = lib.sqlpool_conn_rollback(self._native._handle())
            # SQLite may already have rolled back by itself (SQLITE_FULL,
            # ON CONFLICT ROLLBACK): nothing is open, which is what was asked.
            if st and not (st == _lib.TRANSACTION_STATE and not self._postgres):
                raise last_error(st)

    def close(self) -> None:
        """Closes the connection; uncommitted work is rolled back. A second
        close raises InterfaceError (PEP 249: the connection is unusable)."""
        with self._lock:
            self._check_open()
            self._close()

    def _close(self) -> None:
        self._closed = True
        self._in_tx = False
        try:
            self._native.close()  # rolls back an open transaction
        finally:
            if self._owned_pool is not None:
                self._owned_pool.close()

    def __enter__(self) -> "Connection":
        self._check_open()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], *rest: Any) -> None:
        if self._closed:
            return
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            with self._lock:
                if not self._closed:
                    self._close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self._close()
        except BaseException:  # noqa: BLE001 - interpreter shutdown, fork
            pass

    # -- extensions (as sqlite3 and psycopg) --------------------------------

    def execute(self, operation: str, parameters: Params = None) -> "Cursor":
        """A new cursor that has run ``operation`` (sqlite3's and psycopg's shortcut)."""
        return self.cursor().execute(operation, parameters)

    @property
    def native(self) -> NativeConnection:
        """The underlying :class:`sqlpool.Connection` (the native API)."""
        self._check_open()
        return self._native

    # -- internals -----------------------------------------------------------

    def _begin_if_needed(self, h: int) -> None:
        if self._autocommit or self._in_tx:
            return
        if self._postgres:
            check(lib.sqlpool_conn_begin(h, isolation_value(self.isolation_level), 0))
        else:
            # Deferred, as sqlite3: a reader takes no write lock.
            check(lib.sqlpool_conn_execute(h, b"BEGIN", None, None))
        self._in_tx = True

    def _run(self, sql: str, parameters: Params) -> Tuple[Optional[Tuple[Column, ...]], List[Tuple[Any, ...]], int, Optional[int]]:
        """Runs one statement: (description, rows, rowcount, lastrowid)."""
        s = encode_sql(sql)
        with self._lock:
            self._check_open()
            h = self._native._handle()
            self._begin_if_needed(h)
            keyword = leading_keyword(sql)
            p = build_params(parameters)
            try:
                if _is_plain_dml(sql, keyword):
                    n = c_uint64()
                    check(lib.sqlpool_conn_execute(h, s, p, byref(n)))
                    lastrowid = None
                    if not self._postgres and keyword in ("INSERT", "REPLACE"):
                        lastrowid = self._native.query_first("SELECT last_insert_rowid()")[0]  # type: ignore[index]
                    return None, [], n.value, lastrowid
                out = c_void_p()
                check(lib.sqlpool_conn_query(h, s, p, byref(out)))
            finally:
                free_params(p)
        try:
            mode = _convert.read_mode(self._postgres, self.text_factory)
            names, decltypes, rows = _convert.read_table(out.value, mode)  # type: ignore[arg-type]
        finally:
            lib.sqlpool_result_free(out.value)
        if not names:
            return None, [], -1, None
        description = tuple(Column(n, d or None) for n, d in zip(names, decltypes))
        return description, rows, len(rows), None

    def _run_many(self, sql: str, seq_of_parameters: Iterable[Params]) -> int:
        with self._lock:
            self._check_open()
            self._begin_if_needed(self._native._handle())
            # The pool connection's batch: column-wise or packed when the
            # parameter sets allow it, parameter lists otherwise.
            return self._native.execute_many(sql, seq_of_parameters)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        kind = "postgresql" if self._postgres else "sqlite"
        state = "closed" if self._closed else ("in transaction" if self._in_tx else "idle")
        return f"<sqlpool.dbapi.Connection {kind} {state}>"


class _CursorBase:
    """Result bookkeeping shared by :class:`Cursor` and :class:`AsyncCursor`."""

    arraysize: int = 1
    """Rows :meth:`fetchmany` returns by default."""

    def __init__(self) -> None:
        self.description: Optional[Tuple[Column, ...]] = None
        self.rowcount: int = -1
        self.lastrowid: Optional[int] = None
        self._rows: Optional[List[Tuple[Any, ...]]] = None
        self._pos = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or its connection closed)."""
        return self._closed

    @property
    def rownumber(self) -> Optional[int]:
        """Index of the next row to fetch, or None without a result."""
        return None if self._rows is None else self._pos

    def _set(self, result: Tuple[Optional[Tuple[Column, ...]], List[Tuple[Any, ...]], int, Optional[int]]) -> None:
        description, rows, rowcount, lastrowid = result
        self.description = description
        self._rows = rows if description is not None else None
        self._pos = 0
        self.rowcount = rowcount
        if lastrowid is not None:
            self.lastrowid = lastrowid

    def _reset(self) -> None:
        self.description = None
        self._rows = None
        self._pos = 0
        self.rowcount = -1

    def _result(self) -> List[Tuple[Any, ...]]:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        if self._rows is None:
            raise ProgrammingError(_NO_RESULT)
        return self._rows

    def _fetchone(self) -> Optional[Tuple[Any, ...]]:
        rows = self._result()
        if self._pos >= len(rows):
            return None
        row = rows[self._pos]
        self._pos += 1
        return row

    def _fetchmany(self, size: Optional[int]) -> List[Tuple[Any, ...]]:
        rows = self._result()
        n = self.arraysize if size is None else size
        chunk = rows[self._pos:self._pos + max(n, 0)]
        self._pos += len(chunk)
        return chunk

    def _fetchall(self) -> List[Tuple[Any, ...]]:
        rows = self._result()
        chunk = rows[self._pos:]
        self._pos = len(rows)
        return chunk

    def setinputsizes(self, sizes: Any) -> None:
        """Accepted and ignored (PEP 249 allows it): values are bound by their Python type."""

    def setoutputsize(self, size: int, column: Optional[int] = None) -> None:
        """Accepted and ignored: results are read whole."""

    @staticmethod
    def _callproc_sql(procname: str, count: int, postgres: bool) -> str:
        if not isinstance(procname, str) or not _PROC_NAME_RE.match(procname):
            raise ProgrammingError(f"not a procedure or function name: {procname!r}")
        args = ", ".join(f"${i}" for i in range(1, count + 1))
        if postgres:
            return f"SELECT * FROM {procname}({args})"
        return f"SELECT {procname}({args})"


class Cursor(_CursorBase):
    """A DB-API 2.0 cursor. Results are read whole when a statement runs,
    so ``rowcount`` is known at once and fetching never waits."""

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self._connection = connection

    @property
    def connection(self) -> Connection:
        """The connection this cursor belongs to."""
        return self._connection

    def _check(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        self._connection._check_open()

    def execute(self, operation: str, parameters: Params = None) -> "Cursor":
        """Runs one statement. Placeholders: ``:name`` with a mapping (the
        module's ``paramstyle``), or ``$1`` (both databases) / ``?``
        (SQLite) with a sequence. Returns the cursor (so calls chain)."""
        self._check()
        self._reset()
        self._set(self._connection._run(operation, parameters))
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Params]) -> "Cursor":
        """Runs one statement once per parameter set, all or nothing;
        ``rowcount`` is the total of the rows changed."""
        self._check()
        self._reset()
        self.rowcount = self._connection._run_many(operation, seq_of_parameters)
        return self

    def callproc(self, procname: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """Calls a function: ``SELECT * FROM name(...)`` on PostgreSQL,
        ``SELECT name(...)`` on SQLite; its result is fetched as usual.
        Returns the parameters unchanged (no OUT parameters)."""
        params = list(parameters)
        self.execute(self._callproc_sql(procname, len(params), self._connection._postgres), params)
        return parameters

    def nextset(self) -> Optional[bool]:
        """There is only ever one result set: None."""
        self._check()
        return None

    def fetchone(self) -> Optional[Tuple[Any, ...]]:
        """The next row, or None after the last."""
        return self._fetchone()

    def fetchmany(self, size: Optional[int] = None) -> List[Tuple[Any, ...]]:
        """Up to ``size`` (default :attr:`arraysize`) further rows."""
        return self._fetchmany(size)

    def fetchall(self) -> List[Tuple[Any, ...]]:
        """Every remaining row."""
        return self._fetchall()

    def __iter__(self) -> Iterator[Tuple[Any, ...]]:
        return self

    def __next__(self) -> Tuple[Any, ...]:
        row = self._fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self) -> None:
        """Closes the cursor (its rows are dropped). Idempotent."""
        self._closed = True
        self._rows = None

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def connect(dsn: Optional[str] = None, *, autocommit: bool = False,
            isolation_level: Union[None, str, int, IsolationLevel] = None,
            **options: Any) -> Connection:
    """Opens a DB-API 2.0 :class:`Connection` to ``dsn`` (a ``sqlite:`` or
    ``postgresql://`` URI, as :class:`sqlpool.Pool` takes).

    ``options`` are :class:`~sqlpool.Pool` options (``connect_timeout``,
    ``busy_timeout``, ``application_name``, ``password``, ...); libpq's
    names ``user``, ``dbname``, ``host``, ``port``, ``password`` work too.
    The connection owns a private pool of exactly one connection.
    """
    dsn, opts = _new_connection_options(dsn, options)
    pool = Pool(dsn, **opts)
    try:
        native = pool.connection()
    except BaseException:
        pool.close()
        raise
    conn = Connection(native, owned_pool=pool, autocommit=autocommit)
    conn.isolation_level = isolation_level
    return conn


# ---------------------------------------------------------------------------
# asyncio (psycopg's AsyncConnection / AsyncCursor shape)


class AsyncConnection(_State):
    """An asyncio DB-API connection, shaped like psycopg's ``AsyncConnection``::

        conn = await sqlpool.dbapi.AsyncConnection.connect("postgresql://...")
        async with conn:                      # commit (or rollback) and close
            cur = conn.cursor()
            await cur.execute("SELECT $1::int", [1])
            print(await cur.fetchone())

    Same transaction rules as :class:`Connection`; runs on the library's
    completion queue (see :mod:`sqlpool.aio`).
    """

    def __init__(self, native: Any, owned_pool: Any = None, autocommit: bool = False) -> None:
        self._native = native  # a sqlpool.AsyncConnection
        self._owned_pool = owned_pool
        self._postgres = native._postgres
        #: ``str`` (default) or ``bytes``: TEXT values undecoded, as
        #: sqlite3's ``text_factory``. TEXT that is not UTF-8 read as ``str``
        #: raises DataError.
        self.text_factory: type = str
        self._autocommit = bool(autocommit)

    @classmethod
    async def connect(cls, dsn: Optional[str] = None, *, autocommit: bool = False,
                      isolation_level: Union[None, str, int, IsolationLevel] = None,
                      **options: Any) -> "AsyncConnection":
        """Opens a connection (options as :func:`sqlpool.connect`)."""
        from .aio import AsyncPool

        dsn, opts = _new_connection_options(dsn, options)
        pool = AsyncPool(dsn, **opts)
        try:
            await pool.start()
            native = await pool.connection()
        except BaseException:
            await pool.stop()
            raise
        conn = cls(native, owned_pool=pool, autocommit=autocommit)
        conn.isolation_level = isolation_level
        return conn

    @property
    def autocommit(self) -> bool:
        """Off by default (see :class:`Connection`). Set it with
        :meth:`set_autocommit` (as psycopg) or by assignment."""
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._set_autocommit_flag(value)

    async def set_autocommit(self, value: bool) -> None:
        """psycopg's spelling of ``conn.autocommit = value``."""
        self._set_autocommit_flag(value)

    def cursor(self) -> "AsyncCursor":
        """A new cursor on this connection."""
        self._check_open()
        return AsyncCursor(self)

    async def execute(self, query: str, params: Params = None) -> "AsyncCursor":
        """A new cursor that has run ``query``."""
        return await self.cursor().execute(query, params)

    async def commit(self) -> None:
        """Commits the open transaction; does nothing when none is open."""
        self._check_open()
        if not self._in_tx:
            return
        self._in_tx = False
        await self._native.commit()

    async def rollback(self) -> None:
        """Rolls the open transaction back; does nothing when none is open."""
        self._check_open()
        if not self._in_tx:
            return
        self._in_tx = False
        try:
            await self._native.rollback()
        except errors.Error as e:
            if self._postgres or e.status != _lib.TRANSACTION_STATE:
                raise

    async def close(self) -> None:
        """Closes the connection; uncommitted work is rolled back. A second
        close raises InterfaceError."""
        self._check_open()
        await self._close()

    async def _close(self) -> None:
        self._closed = True
        self._in_tx = False
        try:
            self._native.close()
        finally:
            if self._owned_pool is not None:
                await self._owned_pool.stop()

    async def __aenter__(self) -> "AsyncConnection":
        self._check_open()
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], *rest: Any) -> None:
        if self._closed:
            return
        try:
            if exc_type is None:
                await self.commit()
            else:
                await self.rollback()
        finally:
            if not self._closed:
                await self._close()

    async def _begin_if_needed(self) -> None:
        if self._autocommit or self._in_tx:
            return
        if self._postgres:
            await self._native.begin(self.isolation_level)
        else:
            await self._native.execute("BEGIN")
        self._in_tx = True

    async def _run(self, sql: str, parameters: Params) -> Tuple[Optional[Tuple[Column, ...]], List[Tuple[Any, ...]], int, Optional[int]]:
        self._check_open()
        await self._begin_if_needed()
        keyword = leading_keyword(sql)
        native = self._native
        if _is_plain_dml(sql, keyword):
            n = await native.execute(sql, parameters)
            lastrowid = None
            if not self._postgres and keyword in ("INSERT", "REPLACE"):
                row = await native.query_first("SELECT last_insert_rowid()")
                lastrowid = row[0] if row is not None else None
            return None, [], n, lastrowid
        names, decltypes, rows = await native._query(sql, parameters, _convert.read_table)
        if not names:
            return None, [], -1, None
        description = tuple(Column(n, d or None) for n, d in zip(names, decltypes))
        return description, rows, len(rows), None

    async def _run_many(self, sql: str, seq_of_parameters: Iterable[Params]) -> int:
        self._check_open()
        await self._begin_if_needed()
        return await self._native.execute_many(sql, seq_of_parameters)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        kind = "postgresql" if self._postgres else "sqlite"
        state = "closed" if self._closed else ("in transaction" if self._in_tx else "idle")
        return f"<sqlpool.dbapi.AsyncConnection {kind} {state}>"


class AsyncCursor(_CursorBase):
    """An asyncio cursor, shaped like psycopg's ``AsyncCursor``: ``await
    cur.execute(...)``, ``await cur.fetchone()``, ``async for row in cur``."""

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__()
        self._connection = connection

    @property
    def connection(self) -> AsyncConnection:
        """The connection this cursor belongs to."""
        return self._connection

    def _check(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        self._connection._check_open()

    async def execute(self, query: str, params: Params = None) -> "AsyncCursor":
        """Runs one statement (placeholders as :meth:`Cursor.execute`)."""
        self._check()
        self._reset()
        self._set(await self._connection._run(query, params))
        return self

    async def executemany(self, query: str, params_seq: Iterable[Params]) -> "AsyncCursor":
        """Runs one statement per parameter set, all or nothing."""
        self._check()
        self._reset()
        self.rowcount = await self._connection._run_many(query, params_seq)
        return self

    async def callproc(self, procname: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """As :meth:`Cursor.callproc`."""
        params = list(parameters)
        await self.execute(self._callproc_sql(procname, len(params), self._connection._postgres), params)
        return parameters

    async def fetchone(self) -> Optional[Tuple[Any, ...]]:
        """The next row, or None after the last."""
        return self._fetchone()

    async def fetchmany(self, size: Optional[int] = None) -> List[Tuple[Any, ...]]:
        """Up to ``size`` (default :attr:`arraysize`) further rows."""
        return self._fetchmany(size)

    async def fetchall(self) -> List[Tuple[Any, ...]]:
        """Every remaining row."""
        return self._fetchall()

    def nextset(self) -> Optional[bool]:
        """There is only ever one result set: None."""
        return None

    def __aiter__(self) -> AsyncIterator[Tuple[Any, ...]]:
        return self

    async def __anext__(self) -> Tuple[Any, ...]:
        row = self._fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def close(self) -> None:
        """Closes the cursor. Idempotent."""
        self._closed = True
        self._rows = None

    async def __aenter__(self) -> "AsyncCursor":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


async def connect_async(dsn: Optional[str] = None, **kwargs: Any) -> AsyncConnection:
    """``await sqlpool.connect_async(dsn)``: :meth:`AsyncConnection.connect`."""
    return await AsyncConnection.connect(dsn, **kwargs)

