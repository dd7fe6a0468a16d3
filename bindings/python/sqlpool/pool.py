"""The blocking API: :class:`Pool`, :class:`Connection`, :class:`Transaction`."""

from __future__ import annotations

import inspect
import json
import logging
import threading
import weakref
import struct
from ctypes import byref, c_char, c_char_p, c_size_t, c_uint64, c_void_p, create_string_buffer, sizeof
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Type, Union

from . import _convert, _lib, _managed
from ._convert import Params, build_param_sets, build_params, free_params
from ._lib import BUFFER_TOO_SMALL as _BUFFER_TOO_SMALL
from ._lib import CONN_CALLBACK, QUERY_HEADER_SIZE, PoolStats, lib
from ._lib import CONNECTION_ERROR as _CONNECTION_ERROR
from ._managed import Managed
from ._options import Duration, IsolationLevel, Recycling, build_options, isolation_value, is_postgres_uri, to_ms
from .errors import InterfaceError, ProgrammingError, check, last_error
from .row import Row

__all__ = ["Pool", "Connection", "Transaction", "Rollback"]

_log = logging.getLogger("sqlpool")

_TX_READ_ONLY = 1
_TX_DEFERRABLE = 2


def encode_sql(sql: str) -> bytes:
    """SQL text as NUL-terminated-safe UTF-8."""
    if not isinstance(sql, str):
        raise ProgrammingError(f"sql must be a str, not {type(sql).__name__}")
    b = sql.encode("utf-8")
    if b"\0" in b:
        raise ProgrammingError("sql must not contain NUL characters")
    return b


def _execute(fn: Any, handle: int, sql: str, parameters: Params) -> int:
    """One statement through ``fn`` (``sqlpool_pool_execute`` or
    ``sqlpool_conn_execute``); the rows it changed."""
    s = encode_sql(sql)
    p = build_params(parameters)
    n = c_uint64()
    try:
        check(fn(handle, s, p, byref(n)))
    finally:
        free_params(p)
    return n.value


def _query(fn: Any, handle: int, sql: str, parameters: Params, reader: Any, mode: int) -> Any:
    """One query through ``fn`` (``sqlpool_pool_query`` or
    ``sqlpool_conn_query``), its result read by ``reader`` and freed."""
    s = encode_sql(sql)
    p = build_params(parameters)
    out = c_void_p()
    try:
        check(fn(handle, s, p, byref(out)))
    finally:
        free_params(p)
    try:
        return reader(out.value, mode)
    finally:
        lib.sqlpool_result_free(out.value)


_pack_params = _convert.pack_params
# Called with ctypes instances, bytes or None only (see _lib.unchecked).
_query_into_fn = _lib.unchecked("sqlpool_conn_query_into")
_result_free = lib.sqlpool_result_free
_shape_of = _convert.shape_of
_decode_text = _convert.decode_text
_TEXT_AS_BYTES = _convert.TEXT_AS_BYTES
_HEADER = struct.Struct("<7Q").unpack_from
_HEADER_SIZE = QUERY_HEADER_SIZE
# The buffer sqlpool_conn_query_into writes a small result into: a row of
# names and values this long needs no result handle.
_SCRATCH_SIZE = 8192
_SCRATCH_LEN = c_size_t(_SCRATCH_SIZE)
# Lengths of packed parameters as ctypes instances, for the small ones.
_SIZES = tuple(c_size_t(n) for n in range(256))
_SIZE_0 = _SIZES[0]


class _Plan:
    """What one statement text needs on the hot path, kept per distinct
    str: its UTF-8 bytes, and the last result shape and row format seen
    (checked against each new result, never trusted). Each is one tuple,
    replaced whole: threads sharing the plan never see half an update."""

    __slots__ = ("sql", "shape", "row")

    def __init__(self, sql: bytes) -> None:
        # A ctypes instance: passed as it is (no conversion per call).
        self.sql = c_char_p(sql)
        # (names as the library lists them, read mode, _convert._Shape)
        self.shape: Tuple[bytes, int, Any] = (b"", -1, None)
        # (row format, its struct unpack_from)
        self.row: Tuple[bytes, Any] = (b"", None)


_PLANS: Dict[str, _Plan] = {}
# A cell bit mask (sqlpool_conn_query_into's text_cells, null_cells) -> the
# indexes of its set bits, ascending.
_BITS: Dict[int, Tuple[int, ...]] = {}


_UNPACKERS: Dict[bytes, Any] = {}


def _unpacker(fmt: bytes) -> Any:
    """``struct.Struct(fmt).unpack_from``, cached per row format."""
    unpack = struct.Struct(fmt).unpack_from
    if len(_UNPACKERS) >= 1024:
        _UNPACKERS.clear()
    _UNPACKERS[fmt] = unpack
    return unpack


def _bits(mask: int) -> Tuple[int, ...]:
    bits = tuple(c for c in range(mask.bit_length()) if mask >> c & 1)
    if len(_BITS) >= 4096:
        _BITS.clear()
    _BITS[mask] = bits
    return bits


def _plan(sql: str) -> _Plan:
    plan = _PLANS.get(sql)
    if plan is None:
        plan = _Plan(encode_sql(sql))
        if len(_PLANS) >= 512:
            _PLANS.clear()
        _PLANS[sql] = plan
    return plan


class _Scratch(threading.local):
    """Per thread: the buffer of sqlpool_conn_query_into and its
    out-parameter (read before the thread's next query)."""

    def __init__(self) -> None:
        buf = bytearray(_SCRATCH_SIZE)
        # The exported view pins the bytearray (it cannot be resized).
        self.view = (c_char * _SCRATCH_SIZE).from_buffer(buf)
        out = c_void_p()
        self.t = (buf, self.view, out, byref(out))


_scratch = _Scratch()


def _query_into(conn: "Connection", sql: str, parameters: Params, first_only: bool) -> Any:
    """One query in one C call (``sqlpool_conn_query_into``): parameters
    packed, a one-row result read from the thread's buffer; a larger one
    through its handle."""
    plan = _PLANS.get(sql) or _plan(sql)
    if parameters is None:
        packed, size = None, _SIZE_0
    else:
        packed = _pack_params(parameters)
        if packed is None:  # named parameters, other types: the parameter list
            return conn._query(sql, parameters, _convert.read_first if first_only else _convert.read_result)
        n = len(packed)
        size = _SIZES[n] if n < 256 else c_size_t(n)
    if conn._ptr is None or conn._generation != _managed._generation:
        conn._handle()  # raises
    buf, view, out, out_ref = _scratch.t
    # Arguments that are ctypes instances already skip argtypes' conversion.
    st = _query_into_fn(conn._cptr, plan.sql, packed, size, view, _SCRATCH_LEN, out_ref)
    if st:
        raise last_error(st)
    return _read_into(buf, out.value, plan, conn._pool._read_mode, first_only)


def _read_into(buf: bytearray, res: Optional[int], plan: _Plan, mode: int, first_only: bool) -> Any:
    """The rows of a query that ``sqlpool_conn_query_into`` (or
    ``sqlpool_conn_query_into_start``) wrote into ``buf``, with ``res``
    its ``*out``: the result to read the rest from (then freed), or None."""
    rows, _ncols, nlen, flen, _dlen, texts, nulls = _HEADER(buf)
    if res is not None:  # more than the buffer holds
        try:
            if nlen and not (first_only and flen):
                names = bytes(buf[_HEADER_SIZE : _HEADER_SIZE + nlen])
                return _convert.read_rows(res, rows, _shape_of(names, mode), mode, first_only)
            return _convert.read_first(res, mode) if first_only else _convert.read_result(res, mode)
        finally:
            _result_free(res)
    if rows == 0:
        return None if first_only else []
    # The shape: the plan's when the names and mode are the same.
    names, shape_mode, shape = plan.shape
    if shape_mode != mode or len(names) != nlen or not buf.startswith(names, _HEADER_SIZE):
        names = bytes(buf[_HEADER_SIZE : _HEADER_SIZE + nlen])
        shape = _shape_of(names, mode)
        plan.shape = (names, mode, shape)
    at = _HEADER_SIZE + nlen
    fmt, unpack = plan.row
    if len(fmt) != flen or not buf.startswith(fmt, at):
        fmt = bytes(buf[at : at + flen])
        unpack = _UNPACKERS.get(fmt) or _unpacker(fmt)
        plan.row = (fmt, unpack)
    vals: Any = unpack(buf, at + flen)
    if nulls:
        vals = list(vals)
        for c in _BITS.get(nulls) or _bits(nulls):
            vals.insert(c, None)
    if texts and not mode & _TEXT_AS_BYTES:
        if not nulls:
            vals = list(vals)
        for c in _BITS.get(texts) or _bits(texts):
            try:
                vals[c] = vals[c].decode()
            except UnicodeDecodeError:
                vals[c] = _decode_text(c, 0, vals[c])  # raises DataError
    convs = shape.convs
    if convs is not None:
        vals = [v if conv is None or type(v) is not str else conv(v) for v, conv in zip(vals, convs)]
    row = shape.cls(vals)
    return row if first_only else [row]


def timeout_ms(timeout: Optional[Duration]) -> int:
    """Acquire timeout for the C API: None -> -1 (the pool's default)."""
    if timeout is None:
        return -1
    return to_ms("timeout", timeout)


class Rollback(Exception):
    """Raise inside ``with conn.transaction():`` to roll it back quietly."""


class _Callbacks:
    """The ``configure`` and ``reset`` functions of a pool, as the C
    callbacks the library calls (psycopg_pool's names and meanings).

    Each receives a :class:`Connection` valid during the call only (closing
    it does nothing: the pool takes it back). ``configure`` runs on each new
    connection, after ``init_sql``; an exception discards the connection and
    is the connect error's cause. ``reset`` runs when a connection is given
    back, after its transaction is rolled back and before its session is
    reset; an exception, or returning ``False``, discards it."""

    def __init__(self, pool: "_PoolBase", configure: Any, reset: Any) -> None:
        pool_ref = weakref.ref(pool)
        # The last exception a callback raised, for the error it caused.
        self.last_exception: Optional[BaseException] = None
        self._native = [
            (setter, CONN_CALLBACK(self._trampoline(pool_ref, fn, setter is lib.sqlpool_options_set_release_callback)))
            for setter, fn in (
                (lib.sqlpool_options_set_connect_callback, configure),
                (lib.sqlpool_options_set_release_callback, reset),
            )
            if fn is not None
        ]

    def _trampoline(self, pool_ref: Any, fn: Any, at_release: bool) -> Any:
        def call(_user_data: Any, ptr: Any) -> int:
            pool = pool_ref()
            if pool is None:
                return 0
            conn = _LentConnection(pool, ptr)
            try:
                outcome = fn(conn)
            except BaseException as e:  # noqa: BLE001 - reported through the status
                self.last_exception = e
                status = getattr(e, "status", None)
                if not isinstance(status, int) or status == 0:
                    status = _CONNECTION_ERROR
                if not at_release:
                    _log.warning("configure raised %r: the new connection is discarded", e)
                else:
                    _log.info("reset raised %r: the connection is discarded", e)
                return status
            finally:
                conn.close()
            if at_release and outcome is False:
                return _CONNECTION_ERROR
            return 0

        return call

    def install(self, opts: int) -> None:
        for setter, native in self._native:
            check(setter(opts, native, None))

    def raise_with_cause(self, error: BaseException) -> None:
        """Raises ``error`` (a failed open or acquire), chained to the
        callback exception behind it, if any."""
        cause, self.last_exception = self.last_exception, None
        if cause is not None and "callback" in str(error):
            raise error from cause
        raise error


class _PoolBase(Managed):
    """What :class:`Pool` and :class:`~sqlpool.AsyncPool` share: options,
    the native pool handle, stats, resize, drain."""

    _what = "pool"
    _closed_message = "the pool is closed (stopped) or was never started"

    def __init__(
        self,
        uri: Optional[str] = None,
        *,
        min_size: Optional[int] = None,
        max_size: Optional[int] = None,
        conn_timeout: Optional[Duration] = None,
        connect_timeout: Optional[Duration] = None,
        idle_timeout: Optional[Duration] = None,
        max_lifetime: Optional[Duration] = None,
        check_interval: Optional[Duration] = None,
        max_waiting: Optional[int] = None,
        recycling: Union[None, str, int, Recycling] = None,
        lazy: Optional[bool] = None,
        leak_threshold: Optional[Duration] = None,
        statement_cache_size: Optional[int] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        host: Optional[str] = None,
        port: Optional[int] = None,
        db_name: Optional[str] = None,
        configure: Optional[Callable[["Connection"], Any]] = None,
        reset: Optional[Callable[["Connection"], Any]] = None,
        **other_options: Any,
    ) -> None:
        for name, fn in (("configure", configure), ("reset", reset)):
            if fn is not None and (not callable(fn) or inspect.iscoroutinefunction(fn)):
                raise ProgrammingError(
                    f"{name} must be a plain function taking a Connection (it runs on the "
                    "thread that opens or gives back the connection, also for AsyncPool)"
                )
        self._callbacks = _Callbacks(self, configure, reset)
        if uri is None and "dsn" in other_options:  # psqlpy's name
            uri = other_options.pop("dsn")
        if uri is not None and not isinstance(uri, str):
            raise ProgrammingError(f"uri must be a str, not {type(uri).__name__}")
        self._uri = uri
        self._postgres = is_postgres_uri(uri)
        self._text_factory: type = str
        self._read_mode = _convert.read_mode(self._postgres, str)
        self._started = False
        self._options: Dict[str, Any] = dict(
            min_size=min_size,
            max_size=max_size,
            conn_timeout=conn_timeout,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            check_interval=check_interval,
            max_waiting=max_waiting,
            recycling=recycling,
            lazy=lazy,
            leak_threshold=leak_threshold,
            statement_cache_size=statement_cache_size,
            username=username,
            password=password,
            host=host,
            port=port,
            db_name=db_name,
            **other_options,
        )
        # Validate now, so a bad option fails in the constructor.
        lib.sqlpool_options_free(build_options(self._options))
        self._init_done()

    def _init_done(self) -> None:
        """Called at the end of the constructor (Pool opens here)."""

    # -- lifecycle ---------------------------------------------------------

    def _open_native(self) -> int:
        """Opens the native pool (blocking); returns the handle.

        The open runs on a helper thread so Ctrl-C (KeyboardInterrupt)
        interrupts the wait; a pool that opens after that is closed."""
        opts = build_options(self._options)
        try:
            self._callbacks.install(opts)
        except BaseException:
            lib.sqlpool_options_free(opts)
            raise
        uri = encode_sql(self._uri) if self._uri is not None else None
        outcome: List[Any] = []
        done = threading.Event()

        def run() -> None:
            out = c_void_p()
            try:
                st = lib.sqlpool_pool_open(uri, opts, byref(out))
                outcome.append((st, out.value, None if st == 0 else last_error(st)))
            finally:
                lib.sqlpool_options_free(opts)
                done.set()

        worker = threading.Thread(target=run, name="sqlpool-open", daemon=True)
        worker.start()
        try:
            while not done.wait(0.1):
                pass
        except BaseException:
            # Interrupted: whatever the open returns later is closed.
            def reap() -> None:
                done.wait()
                if outcome and outcome[0][0] == 0 and outcome[0][1]:
                    lib.sqlpool_pool_close(outcome[0][1])

            threading.Thread(target=reap, name="sqlpool-open-reap", daemon=True).start()
            raise
        st, ptr, error = outcome[0]
        if st:
            self._callbacks.raise_with_cause(error)
        assert ptr is not None
        return int(ptr)

    def _check_startable(self) -> bool:
        """True when already open; raises when stopped."""
        if self._ptr is not None:
            self._handle()  # raises after fork
            return True
        if self._started:
            raise InterfaceError("the pool was stopped and cannot be started again; create a new one")
        return False

    def _free(self, ptr: int) -> None:
        lib.sqlpool_pool_close(ptr)

    @property
    def is_postgres(self) -> bool:
        """Whether this is a PostgreSQL pool (else SQLite)."""
        return self._postgres

    @property
    def text_factory(self) -> type:
        """``str`` (the default) or ``bytes``: with ``bytes`` every TEXT
        value comes back undecoded, as the stdlib ``sqlite3``'s
        ``text_factory = bytes`` does. SQLite stores any bytes as TEXT;
        reading such a value as ``str`` raises :class:`DataError`."""
        return self._text_factory

    @text_factory.setter
    def text_factory(self, factory: type) -> None:
        self._read_mode = _convert.read_mode(self._postgres, factory)
        self._text_factory = factory

    # -- management --------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """The pool's statistics (``sqlpool_pool_stats``) as a dict:
        ``total``, ``idle``, ``in_use``, ``waiting``, ``pending``,
        ``min_size``, ``max_size``, ``created``, ``closed``, ``broken``,
        ``acquires``, ``acquire_timeouts``, ``acquires_refused``,
        ``wait_total_us``, ``wait_max_us``, ``leaks_reported``,
        ``connect_errors``."""
        s = PoolStats()
        check(lib.sqlpool_pool_stats(self._handle(), byref(s), sizeof(PoolStats)))
        names = (f[0] for f in PoolStats._fields_)
        return {name: getattr(s, name) for name in names if not name.startswith("_")}

    def host_stats(self) -> List[Dict[str, Any]]:
        """Connections per server (``sqlpool_pool_host_stats``): one dict per
        host the pool has connected to, in order of first use, with ``host``
        (``"host:port"`` as the host list names it, or a socket path),
        ``open`` (connections on it now) and ``opened`` (made since the pool
        started). Shows where a multi-host pool's connections are, e.g. on
        the new primary after a failover. SQLite pools return ``[]``."""
        handle = self._handle()
        needed = c_size_t(0)
        while True:
            check(lib.sqlpool_pool_host_stats(handle, None, 0, byref(needed)))
            buf = create_string_buffer(needed.value + 256)
            written = c_size_t(0)
            status = lib.sqlpool_pool_host_stats(handle, buf, len(buf), byref(written))
            if status != _BUFFER_TOO_SMALL:  # (it grew meanwhile: ask again)
                check(status)
                return json.loads(buf.raw[: written.value].decode("utf-8"))

    def resize(self, min_size: int, max_size: int) -> None:
        """Changes the pool's sizes at run time."""
        check(lib.sqlpool_pool_resize(self._handle(), min_size, max_size))

    def drain(self) -> None:
        """Replaces every connection without failing callers (after a
        failover or a password change)."""
        check(lib.sqlpool_pool_drain(self._handle()))

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else "open"
        kind = "postgresql" if self._postgres else "sqlite"
        return f"<{type(self).__name__} {kind} {state}>"


class Pool(_PoolBase):
    """A pool of blocking connections to one SQLite or PostgreSQL database.

    Opened by the constructor (so bad URIs, options or credentials fail
    here, unless ``lazy=True``); :meth:`start` is a no-op on an open pool.
    Closed by :meth:`stop` / :meth:`close`, by leaving a ``with`` block, or
    when garbage-collected. Share it freely across threads.

    Options (None leaves the library default; durations in seconds, float
    or :class:`datetime.timedelta`):

    - ``min_size`` / ``max_size``: connections kept open / at most (1 / 10)
    - ``conn_timeout``: how long :meth:`connection` waits (30 s)
    - ``connect_timeout``: opening one connection, PostgreSQL (10 s)
    - ``idle_timeout``: idle connections above min_size close (600 s; 0 = never)
    - ``max_lifetime``: connections are replaced after (1800 s; 0 = never)
    - ``check_interval``: idle connections are verified this often (30 s)
    - ``max_waiting``: most callers waiting at once (0 = no limit), else
      :class:`~sqlpool.TooManyRequests`
    - ``recycling``: ``"fast"``, ``"verified"`` (default) or ``"clean"``
    - ``lazy``: do not connect in the constructor
    - ``leak_threshold``: report connections held longer (0 = off)
    - ``statement_cache_size``: prepared statements per connection (128)
    - ``username``, ``password``, ``host``, ``port``, ``db_name``: PostgreSQL
      connection parts (override the URI's)
    - any other library option by name (``busy_timeout``, ``journal_mode``,
      ``pragma.NAME``, ``application_name``): ``**{"pragma.foreign_keys": "on"}``
    """

    _connection_class: Type["Connection"]  # set below the class

    def _init_done(self) -> None:
        self.start()

    def start(self) -> None:
        """Opens the pool (the constructor already did; then a no-op)."""
        if self._check_startable():
            return
        self._adopt(self._open_native())
        self._started = True

    def stop(self) -> None:
        """Closes the pool: waiting callers fail with PoolClosed, idle
        connections close now, borrowed ones when released. Idempotent."""
        self.close()

    open = start

    def __enter__(self) -> "Pool":
        self.start()
        return self

    # -- connections -------------------------------------------------------

    def connection(self, timeout: Optional[Duration] = None) -> "Connection":
        """Borrows a connection, waiting at most ``timeout`` seconds (None:
        the pool's ``conn_timeout``; 0: do not wait). Use it as a context
        manager (``with pool.connection() as conn:``) or call
        :meth:`Connection.close` to give it back.

        Raises PoolTimeout, PoolClosed, TooManyRequests."""
        out = c_void_p()
        st = lib.sqlpool_pool_acquire(self._handle(), timeout_ms(timeout), byref(out))
        if st:
            self._callbacks.raise_with_cause(last_error(st))
        assert out.value is not None
        return self._connection_class(self, out.value)

    def dbapi_connection(self, timeout: Optional[Duration] = None, *, autocommit: bool = False) -> Any:
        """Borrows a connection as a DB-API 2.0 connection
        (:class:`sqlpool.dbapi.Connection`); its ``close()`` gives it back
        to this pool, rolling back what was not committed."""
        from .dbapi import Connection as DBAPIConnection

        return DBAPIConnection(self.connection(timeout), autocommit=autocommit)

    # -- one-shot statements (acquire, run, release) -----------------------

    def execute(self, sql: str, parameters: Params = None) -> int:
        """Runs one statement on a pooled connection; returns the rows affected."""
        return _execute(lib.sqlpool_pool_execute, self._handle(), sql, parameters)

    def _query(self, sql: str, parameters: Params, reader: Any) -> Any:
        return _query(lib.sqlpool_pool_query, self._handle(), sql, parameters, reader, self._read_mode)

    def query(self, sql: str, parameters: Params = None) -> List[Row]:
        """Runs one query on a pooled connection; returns every row."""
        return self._query(sql, parameters, _convert.read_result)  # type: ignore[no-any-return]

    def query_first(self, sql: str, parameters: Params = None) -> Optional[Row]:
        """Runs one query on a pooled connection; returns its first row or None."""
        return self._query(sql, parameters, _convert.read_first)  # type: ignore[no-any-return]

    def query_as_dict(self, sql: str, parameters: Params = None) -> List[Dict[str, Any]]:
        """Runs one query on a pooled connection; returns every row as a dict."""
        return self._query(sql, parameters, _convert.read_result_dicts)  # type: ignore[no-any-return]

    def execute_many(self, sql: str, seq_of_parameters: Iterable[Params]) -> int:
        """Runs one statement per parameter set, all in one transaction."""
        with self.connection() as conn:
            return conn.execute_many(sql, seq_of_parameters)

    def execute_script(self, sql: str) -> None:
        """Runs a script of statements separated by ``;`` (no parameters)."""
        with self.connection() as conn:
            conn.execute_script(sql)


class Connection(Managed):
    """A connection borrowed from a :class:`Pool`.

    Give it back with :meth:`close` (or by leaving its ``with`` block); an
    open transaction is rolled back then. One call at a time: it may move
    between threads, but two threads using it at once get InterfaceError.
    """

    _what = "connection"
    _closed_message = "the connection was given back to its pool (used after its with block?)"

    def __init__(self, pool: _PoolBase, ptr: int) -> None:
        self._pool = pool  # keeps the pool alive while the connection is
        self._cptr = c_void_p(ptr)  # the handle as a ctypes argument
        self._postgres = pool._postgres
        self._tx_depth = 0
        self._adopt(ptr)

    @property
    def pool(self) -> _PoolBase:
        """The pool this connection came from."""
        return self._pool

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` block is open on this connection."""
        return self._tx_depth > 0

    def _free(self, ptr: int) -> None:
        lib.sqlpool_conn_release(ptr)

    def close(self) -> None:
        """Gives the connection back to its pool. Idempotent."""
        ptr = self._ptr
        if ptr is None:
            return
        if self._generation != _managed_generation():
            self._ptr = None
            return
        st = lib.sqlpool_conn_release(ptr)
        if st == _BUSY:
            raise last_error(st)  # another thread is inside a call: keep it
        self._ptr = None
        self._tx_depth = 0

    release = close

    def __enter__(self) -> "Connection":
        self._handle()
        return self

    # -- statements --------------------------------------------------------

    def set_query_timeout(self, seconds: Optional[float]) -> None:
        """Bounds each later statement on this connection until it goes back
        to the pool (PostgreSQL): ``None`` restores the pool's
        ``query_timeout``, ``0`` means no bound. A statement past it raises
        :class:`QueryTimeout`."""
        ms = -1 if seconds is None else int(round(float(seconds) * 1000))
        if ms < -1:
            raise ProgrammingError("query timeout must be >= 0 seconds, or None")
        check(lib.sqlpool_conn_set_query_timeout(self._handle(), ms))

    def execute(self, sql: str, parameters: Params = None) -> int:
        """Runs one statement; returns the rows it changed.

        ``parameters``: a mapping for ``:name`` placeholders, or a sequence
        for ``$1``/``?`` placeholders."""
        return _execute(lib.sqlpool_conn_execute, self._handle(), sql, parameters)

    def _query(self, sql: str, parameters: Params, reader: Any) -> Any:
        return _query(lib.sqlpool_conn_query, self._handle(), sql, parameters, reader, self._pool._read_mode)

    def query(self, sql: str, parameters: Params = None) -> List[Row]:
        """Runs one query; returns every row as a :class:`Row`."""
        return _query_into(self, sql, parameters, False)  # type: ignore[no-any-return]

    def query_first(self, sql: str, parameters: Params = None) -> Optional[Row]:
        """Runs one query; returns its first row, or None when it has none."""
        return _query_into(self, sql, parameters, True)  # type: ignore[no-any-return]

    def query_as_dict(self, sql: str, parameters: Params = None) -> List[Dict[str, Any]]:
        """Runs one query; returns every row as a dict."""
        return self._query(sql, parameters, _convert.read_result_dicts)  # type: ignore[no-any-return]

    def execute_many(self, sql: str, seq_of_parameters: Iterable[Params]) -> int:
        """Runs one statement once per parameter set, all or nothing (in the
        open transaction, or in its own); returns the total rows changed."""
        h = self._handle()
        s = encode_sql(sql)
        n = c_uint64()
        if not self._postgres:
            sets = seq_of_parameters
            if not isinstance(sets, (list, tuple)):
                sets = list(sets)  # a generator is read once
            columns = _convert.pack_param_columns(sets)
            if columns is not None:
                check(lib.sqlpool_conn_execute_many_columns(h, s, *columns, byref(n)))
                return n.value
            seq_of_parameters = sets
        packed, sets = _convert.pack_param_sets(seq_of_parameters)
        if packed is not None:
            check(lib.sqlpool_conn_execute_many_packed(h, s, packed, len(packed), byref(n)))
            return n.value
        p = build_param_sets(sets)
        try:
            check(lib.sqlpool_conn_execute_many(h, s, p, byref(n)))
        finally:
            free_params(p)
        return n.value

    executemany = execute_many

    def execute_script(self, sql: str) -> None:
        """Runs a script of statements separated by ``;`` (no parameters)."""
        check(lib.sqlpool_conn_execute_script(self._handle(), encode_sql(sql)))

    # -- bulk data (bulk.py) -------------------------------------------------

    def stream(self, sql: str, params: Params = None, *, chunk_size: int = 1000) -> Iterator[Row]:
        """Yields the rows of one query, read ``chunk_size`` at a time with
        bounded memory (psycopg 3's ``cursor.stream()``). The connection is
        busy until the rows are over or the generator is closed (leaving the
        ``for`` loop early gives the query up and leaves the connection clean)."""
        from . import bulk

        return bulk.stream_rows(self._handle(), sql, params, chunk_size, self._postgres)

    def copy(self, sql: str) -> Any:
        """Starts ``COPY … FROM STDIN`` or ``COPY … TO STDOUT`` (PostgreSQL);
        use it as ``with conn.copy(sql) as cp:`` (psycopg 3's shape). See
        :class:`sqlpool.bulk.Copy`."""
        from . import bulk

        return bulk.open_copy(self._handle(), sql)

    def notifies(self, timeout: Optional[float] = None, stop_after: Optional[int] = None) -> Iterator[Any]:
        """Yields :class:`sqlpool.bulk.Notify` (channel, payload, pid) for this
        connection's ``LISTEN``s as they arrive, for at most ``timeout``
        seconds or ``stop_after`` notifications (psycopg 3's
        ``conn.notifies()``). A connection lost meanwhile raises
        OperationalError. At release the connection stops listening."""
        from . import bulk

        return bulk.notifies(self._handle, timeout, stop_after)

    # -- transactions ------------------------------------------------------

    def transaction(
        self,
        isolation: Union[None, str, int, IsolationLevel] = None,
        read_only: bool = False,
        deferrable: bool = False,
    ) -> "Transaction":
        """A transaction block: ``with conn.transaction():`` commits on
        success and rolls back on an exception. Nested blocks are
        savepoints. ``isolation``: ``"read committed"``, ``"repeatable
        read"``, ``"serializable"``, ... (outermost block only)."""
        return Transaction(self, isolation, read_only, deferrable)

    def begin(
        self,
        isolation: Union[None, str, int, IsolationLevel] = None,
        read_only: bool = False,
        deferrable: bool = False,
    ) -> None:
        """Begins a transaction explicitly (prefer :meth:`transaction`)."""
        flags = (_TX_READ_ONLY if read_only else 0) | (_TX_DEFERRABLE if deferrable else 0)
        check(lib.sqlpool_conn_begin(self._handle(), isolation_value(isolation), flags))

    def commit(self) -> None:
        """Commits the open transaction."""
        check(lib.sqlpool_conn_commit(self._handle()))

    def rollback(self) -> None:
        """Rolls the open transaction back."""
        check(lib.sqlpool_conn_rollback(self._handle()))

    def __repr__(self) -> str:
        state = "released" if self._ptr is None else "open"
        return f"<{type(self).__name__} {state}>"


class _LentConnection(Connection):
    """The connection a ``configure``/``reset`` function receives: usable
    during the call only; the pool takes it back, so closing it only stops
    this object from using it."""

    _closed_message = "the connection was lent to configure/reset, which has returned"

    def _free(self, ptr: int) -> None:
        pass

    def close(self) -> None:
        self._ptr = None

    release = close


class Transaction:
    """``with conn.transaction():`` — see :meth:`Connection.transaction`."""

    def __init__(
        self,
        connection: Connection,
        isolation: Union[None, str, int, IsolationLevel],
        read_only: bool,
        deferrable: bool,
    ) -> None:
        self.connection = connection
        self._isolation = isolation_value(isolation)
        self._flags = (_TX_READ_ONLY if read_only else 0) | (_TX_DEFERRABLE if deferrable else 0)
        self._savepoint: Optional[bytes] = None
        self._active = False

    @property
    def savepoint_name(self) -> Optional[str]:
        """The savepoint of a nested block, None for the outermost one."""
        return self._savepoint.decode() if self._savepoint else None

    def __enter__(self) -> "Transaction":
        conn = self.connection
        h = conn._handle()
        depth = conn._tx_depth
        if self._active:
            raise InterfaceError("this transaction block is already active")
        if depth == 0:
            check(lib.sqlpool_conn_begin(h, self._isolation, self._flags))
        else:
            self._savepoint = f"sqlpool_sp_{depth}".encode()
            check(lib.sqlpool_conn_savepoint(h, self._savepoint))
        conn._tx_depth = depth + 1
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        conn = self.connection
        self._active = False
        conn._tx_depth = max(conn._tx_depth - 1, 0)
        h = conn._handle()
        sp = self._savepoint
        if exc_type is None:
            if sp is None:
                check(lib.sqlpool_conn_commit(h))
            else:
                check(lib.sqlpool_conn_release_savepoint(h, sp))
            return False
        try:
            if sp is None:
                check(lib.sqlpool_conn_rollback(h))
            else:
                check(lib.sqlpool_conn_rollback_to_savepoint(h, sp))
                check(lib.sqlpool_conn_release_savepoint(h, sp))
        except Exception as rollback_error:  # the block's exception matters more
            _log.warning("rollback after %r failed: %s", exc, rollback_error)
        return exc_type is Rollback


Pool._connection_class = Connection

from ._lib import BUSY as _BUSY  # noqa: E402
from ._managed import fork_generation as _managed_generation  # noqa: E402
