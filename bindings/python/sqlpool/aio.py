"""The asyncio API: :class:`AsyncPool` and :class:`AsyncConnection`.

Built on the library's completion queue, not on a thread per call: each
event loop gets one ``sqlpool_queue``, whose file descriptor is watched with
``loop.add_reader``. Operations are submitted with the ``*_async`` functions
(the work runs on the library's threads), and the reader pops completions
and resolves the futures, keyed by operation id. Cancelling a task that
waits calls ``sqlpool_cancel``; the completion still arrives, and a
connection acquired for a cancelled caller goes straight back to the pool.

Opening and closing a pool, ``execute_script`` and beginning/committing
transactions run in the loop's default executor (the C API has no
asynchronous form of those). Requires an event loop with ``add_reader``
(any loop on Linux and macOS; on Windows the selector loop).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from ctypes import byref, c_int, c_uint64, c_void_p
from types import TracebackType
from typing import Any, Callable, Dict, Generator, Iterable, List, Optional, Type, Union

from . import _convert, _lib
from ._convert import Params, ParamSets, build_params, free_params
from ._lib import Completion, lib
from ._managed import Managed, fork_generation
from ._options import Duration, IsolationLevel, isolation_value
from .errors import NotSupportedError, check, last_error
from .pool import _TX_DEFERRABLE, _TX_READ_ONLY, Rollback, _PoolBase, encode_sql, timeout_ms
from .row import Row

__all__ = ["AsyncPool", "AsyncConnection", "AsyncTransaction"]

_log = logging.getLogger("sqlpool")


def _require_async() -> None:
    if not _lib.HAS_ASYNC:
        raise NotSupportedError(
            f"the native library at {_lib.library_path} has no asynchronous API "
            "(sqlpool_queue_new); rebuild it"
        )


class _Op:
    """One submitted operation, until its completion is popped."""

    __slots__ = ("future", "kind", "reader", "mode", "abandoned")

    def __init__(self, future: "asyncio.Future[Any]", kind: int,
                 reader: Optional[Callable[..., Any]], mode: int) -> None:
        self.future = future
        self.kind = kind
        self.reader = reader
        self.mode = mode  # the reader's mode (_convert.read_mode)
        self.abandoned = False  # the awaiting task was cancelled


class _LoopQueue:
    """The completion queue of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        _require_async()
        h = c_void_p()
        check(lib.sqlpool_queue_new(byref(h)))
        assert h.value is not None
        self.ptr: Optional[int] = h.value
        self.generation = fork_generation()
        fd = c_int()
        st = lib.sqlpool_queue_fd(self.ptr, byref(fd))
        if st:
            err = last_error(st)
            lib.sqlpool_queue_free(self.ptr)
            raise err
        self.fd = fd.value
        self.ops: Dict[int, _Op] = {}
        self._completion = Completion()
        self._loop_ref = weakref.ref(loop)
        try:
            loop.add_reader(self.fd, self.drain)
        except NotImplementedError:
            lib.sqlpool_queue_free(self.ptr)
            raise NotSupportedError(
                "this event loop cannot watch file descriptors (loop.add_reader); "
                "on Windows use asyncio.WindowsSelectorEventLoopPolicy()"
            ) from None

    def register(self, op_id: int, kind: int, reader: Optional[Callable[..., Any]] = None,
                 mode: int = 0) -> _Op:
        loop = self._loop_ref()
        assert loop is not None
        op = _Op(loop.create_future(), kind, reader, mode)
        self.ops[op_id] = op
        return op

    def drain(self) -> None:
        """Pops every waiting completion and resolves its future."""
        ptr = self.ptr
        if ptr is None:
            return
        c = self._completion
        pop = lib.sqlpool_queue_pop
        while True:
            st = pop(ptr, byref(c))
            if st == _lib.EMPTY:
                return
            if st:
                _log.error("sqlpool_queue_pop failed: %s", last_error(st))
                return
            status = c.status
            # The thread's last error describes a failed completion: read it now.
            error = last_error(status) if status else None
            if c.error:
                # The completion's own copy of that error: ours to free.
                lib.sqlpool_error_free(c.error)
                c.error = None
            op = self.ops.pop(c.op_id, None)
            try:
                self._complete(op, c.kind, status, error, c.handle, c.rows_affected)
            except Exception:  # noqa: BLE001 - never break the loop's reader
                _log.exception("sqlpool: handling a completion failed")

    @staticmethod
    def _complete(op: Optional[_Op], kind: int, status: int, error: Optional[BaseException],
                  handle: Optional[int], rows_affected: int) -> None:
        fut = op.future if op is not None else None
        wanted = op is not None and not op.abandoned and not op.future.done()
        if status:
            if wanted:
                fut.set_exception(error)  # type: ignore[union-attr, arg-type]
            elif fut is not None and not fut.done():
                fut.cancel()
            return
        if kind == _lib.COMPLETION_ACQUIRE:
            if wanted:
                fut.set_result(handle)  # type: ignore[union-attr]
            else:
                lib.sqlpool_conn_release(handle)  # the caller gave up: back to the pool
                if fut is not None and not fut.done():
                    fut.cancel()
        elif kind == _lib.COMPLETION_QUERY:
            try:
                if wanted:
                    assert op is not None and op.reader is not None
                    try:
                        value = op.reader(handle, op.mode)
                    except Exception as e:  # noqa: BLE001
                        fut.set_exception(e)  # type: ignore[union-attr]
                    else:
                        fut.set_result(value)  # type: ignore[union-attr]
                elif fut is not None and not fut.done():
                    fut.cancel()
            finally:
                lib.sqlpool_result_free(handle)
        elif kind == _bulk_completion_notify():
            from . import bulk

            if wanted:
                try:
                    value = bulk.read_notification(handle) if handle else None
                except Exception as e:  # noqa: BLE001
                    fut.set_exception(e)  # type: ignore[union-attr]
                else:
                    fut.set_result(value)  # type: ignore[union-attr]
            else:
                if handle:
                    lib.sqlpool_notification_free(handle)
                if fut is not None and not fut.done():
                    fut.cancel()
        else:  # EXECUTE, BATCH
            if wanted:
                fut.set_result(rows_affected)  # type: ignore[union-attr]
            elif fut is not None and not fut.done():
                fut.cancel()

    def close(self) -> None:
        ptr, self.ptr = self.ptr, None
        if ptr is None:
            return
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed():
            try:
                loop.remove_reader(self.fd)
            except Exception:  # noqa: BLE001
                pass
        if self.generation == fork_generation():
            # Completions still queued or pending are discarded by the
            # library: connections go back to their pools, results are freed.
            lib.sqlpool_queue_free(ptr)


_queues: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue]" = weakref.WeakKeyDictionary()


def _free_queue_later(queue: _LoopQueue) -> None:
    try:
        queue.close()
    except Exception:  # noqa: BLE001
        pass


def _queue() -> _LoopQueue:
    """The running loop's completion queue (created on first use)."""
    loop = asyncio.get_running_loop()
    q = _queues.get(loop)
    if q is None or q.ptr is None or q.generation != fork_generation():
        q = _LoopQueue(loop)
        _queues[loop] = q
        weakref.finalize(loop, _free_queue_later, q)
    return q


async def _await_op(op_id: int, op: _Op) -> Any:
    """Waits for an operation; a cancelled wait cancels the operation."""
    fut = op.future
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        op.abandoned = True
        if not fut.done():
            lib.sqlpool_cancel(op_id)
        elif not fut.cancelled() and fut.exception() is None and op.kind == _lib.COMPLETION_ACQUIRE:
            # Acquired just as the caller was cancelled: give it back.
            lib.sqlpool_conn_release(fut.result())
        raise


def _nothing() -> None:
    pass


def _bulk_completion_notify() -> int:
    return 5  # SQLPOOL_OP_NOTIFY (bulk.COMPLETION_NOTIFY)


class AsyncPool(_PoolBase):
    """A pool of connections used from asyncio (same options as
    :class:`~sqlpool.Pool`).

    ``await pool.start()`` opens it (the first use does too), ``await
    pool.stop()`` closes it; or ``async with AsyncPool(...) as pool:``.
    The pool may serve several event loops (one after another, or at once
    from different threads)."""

    _opening: Optional["asyncio.Future[None]"] = None
    _connection_class: Type["AsyncConnection"]  # set below the class

    async def start(self) -> None:
        """Opens the pool (in the default executor). Idempotent."""
        if self._check_startable():
            return
        if self._opening is not None:
            await asyncio.shield(self._opening)
            return
        loop = asyncio.get_running_loop()
        opening = self._opening = loop.create_future()
        try:
            ptr = await loop.run_in_executor(None, self._open_native)
            self._adopt(ptr)
            self._started = True
            opening.set_result(None)
        except BaseException as e:
            opening.set_exception(e)
            opening.exception()  # retrieved
            raise
        finally:
            self._opening = None

    open = start
    startup = start  # psqlpy's name

    async def stop(self) -> None:
        """Closes the pool (in the default executor). Idempotent."""
        ptr = self._ptr
        if ptr is None:
            return
        self._ptr = None
        self._started = True
        if self._generation != fork_generation():
            return
        await asyncio.get_running_loop().run_in_executor(None, lib.sqlpool_pool_close, ptr)

    async def __aenter__(self) -> "AsyncPool":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    async def _live_handle(self) -> int:
        if self._ptr is None and not self._started:
            await self.start()
        return self._handle()

    def connection(self, timeout: Optional[Duration] = None) -> "_AcquireContext":
        """Borrows a connection: ``async with pool.connection() as conn:``
        (given back at the end), or ``conn = await pool.connection()``
        (give it back with ``conn.close()``). Waits at most ``timeout``
        seconds (None: the pool's ``conn_timeout``).

        Raises PoolTimeout, PoolClosed, TooManyRequests."""
        return _AcquireContext(self, timeout)

    async def _acquire(self, timeout: Optional[Duration]) -> "AsyncConnection":
        h = await self._live_handle()
        q = _queue()
        op_id = c_uint64()
        check(lib.sqlpool_pool_acquire_async(h, timeout_ms(timeout), q.ptr, None, None, byref(op_id)))
        op = q.register(op_id.value, _lib.COMPLETION_ACQUIRE)
        # An idle connection is handed over before the call returns: take
        # it now rather than after a turn of the event loop.
        q.drain()
        ptr = await _await_op(op_id.value, op)
        return self._connection_class(self, ptr)

    async def execute(self, sql: str, parameters: Params = None) -> int:
        """Runs one statement on a pooled connection; returns the rows affected."""
        async with self.connection() as conn:
            return await conn.execute(sql, parameters)

    async def query(self, sql: str, parameters: Params = None) -> List[Row]:
        """Runs one query on a pooled connection; returns every row."""
        async with self.connection() as conn:
            return await conn.query(sql, parameters)

    async def query_first(self, sql: str, parameters: Params = None) -> Optional[Row]:
        """Runs one query on a pooled connection; returns its first row or None."""
        async with self.connection() as conn:
            return await conn.query_first(sql, parameters)

    async def query_as_dict(self, sql: str, parameters: Params = None) -> List[Dict[str, Any]]:
        """Runs one query on a pooled connection; returns every row as a dict."""
        async with self.connection() as conn:
            return await conn.query_as_dict(sql, parameters)

    async def execute_many(self, sql: str, seq_of_parameters: Iterable[Params]) -> int:
        """Runs one statement per parameter set, all in one transaction."""
        async with self.connection() as conn:
            return await conn.execute_many(sql, seq_of_parameters)

    async def execute_script(self, sql: str) -> None:
        """Runs a script of statements separated by ``;`` (no parameters)."""
        async with self.connection() as conn:
            await conn.execute_script(sql)


class _AcquireContext:
    """What :meth:`AsyncPool.connection` returns: awaitable, and an async
    context manager that gives the connection back on exit."""

    __slots__ = ("_pool", "_timeout", "_conn")

    def __init__(self, pool: AsyncPool, timeout: Optional[Duration]) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: Optional[AsyncConnection] = None

    def __await__(self) -> Generator[Any, None, "AsyncConnection"]:
        return self._pool._acquire(self._timeout).__await__()

    async def __aenter__(self) -> "AsyncConnection":
        self._conn = await self._pool._acquire(self._timeout)
        return self._conn

    async def __aexit__(self, *exc_info: Any) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class _Done:
    """An already-finished awaitable: lets ``await conn.close()`` work."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover


class AsyncConnection(Managed):
    """A connection borrowed from an :class:`AsyncPool`.

    Operations on one connection run one at a time (later ones wait their
    turn). Give it back with ``close()`` (also awaitable) or by leaving its
    ``async with`` block; if an operation of a cancelled task still runs on
    it, it goes back when that operation completes."""

    _what = "connection"
    _closed_message = "the connection was given back to its pool (used after its async with block?)"

    def __init__(self, pool: AsyncPool, ptr: int) -> None:
        self._pool = pool  # keeps the pool alive while the connection is
        self._postgres = pool._postgres
        self._lock = asyncio.Lock()
        self._current: Optional["asyncio.Future[Any]"] = None
        self._tx_depth = 0
        self._adopt(ptr)

    @property
    def pool(self) -> AsyncPool:
        """The pool this connection came from."""
        return self._pool

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` block is open on this connection."""
        return self._tx_depth > 0

    def _free(self, ptr: int) -> None:
        cur = self._current
        if cur is not None and not cur.done():
            # An abandoned operation still runs on it: release after it ends.
            cur.add_done_callback(lambda _f: lib.sqlpool_conn_release(ptr))
            return
        lib.sqlpool_conn_release(ptr)

    def close(self) -> _Done:  # type: ignore[override]
        """Gives the connection back to its pool. Idempotent; may be awaited."""
        Managed.close(self)
        self._tx_depth = 0
        return _Done()

    release = close

    async def __aenter__(self) -> "AsyncConnection":
        self._handle()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()

    async def _wait_idle(self) -> None:
        cur = self._current
        if cur is not None and not cur.done():
            await asyncio.wait({cur})

    async def _run(self, submit: Callable[[int, int, Any], int], kind: int,
                   reader: Optional[Callable[..., Any]], cleanup: Callable[[], None]) -> Any:
        """Submits one operation (once the previous one has finished) and
        waits for it. ``cleanup`` frees the native parameters once submitted
        (the library copies them), or when the call is abandoned before."""
        try:
            async with self._lock:
                await self._wait_idle()
                h = self._handle()
                q = _queue()
                assert q.ptr is not None
                op_id = c_uint64()
                try:
                    st = submit(h, q.ptr, byref(op_id))
                    if st:
                        raise last_error(st)
                finally:
                    cleanup()
                    cleanup = _nothing
                op = q.register(op_id.value, kind, reader, self._pool._read_mode)
                self._current = op.future
                return await _await_op(op_id.value, op)
        finally:
            cleanup()

    async def execute(self, sql: str, parameters: Params = None) -> int:
        """Runs one statement; returns the rows it changed."""
        s = encode_sql(sql)
        p = build_params(parameters)
        return await self._run(  # type: ignore[no-any-return]
            lambda h, q, out: lib.sqlpool_conn_execute_async(h, s, p, q, None, None, out),
            _lib.COMPLETION_EXECUTE, None, lambda: free_params(p),
        )

    async def _query(self, sql: str, parameters: Params, reader: Callable[..., Any]) -> Any:
        s = encode_sql(sql)
        p = build_params(parameters)
        return await self._run(
            lambda h, q, out: lib.sqlpool_conn_query_async(h, s, p, q, None, None, out),
            _lib.COMPLETION_QUERY, reader, lambda: free_params(p),
        )

    async def query(self, sql: str, parameters: Params = None) -> List[Row]:
        """Runs one query; returns every row."""
        return await self._query(sql, parameters, _convert.read_result)  # type: ignore[no-any-return]

    async def query_first(self, sql: str, parameters: Params = None) -> Optional[Row]:
        """Runs one query; returns its first row, or None."""
        return await self._query(sql, parameters, _convert.read_first)  # type: ignore[no-any-return]

    async def query_as_dict(self, sql: str, parameters: Params = None) -> List[Dict[str, Any]]:
        """Runs one query; returns every row as a dict."""
        return await self._query(sql, parameters, _convert.read_result_dicts)  # type: ignore[no-any-return]

    async def execute_many(self, sql: str, seq_of_parameters: Iterable[Params]) -> int:
        """Runs one statement per parameter set, all or nothing; returns the total rows changed."""
        s = encode_sql(sql)
        sets = ParamSets(seq_of_parameters)
        return await self._run(  # type: ignore[no-any-return]
            lambda h, q, out: lib.sqlpool_conn_execute_batch_async(
                h, s, sets.array, len(sets.handles), q, None, None, out),
            _lib.COMPLETION_BATCH, None, sets.free,
        )

    executemany = execute_many

    # -- bulk data (bulk.py) -------------------------------------------------

    async def stream(self, sql: str, params: Params = None, *, chunk_size: int = 1000) -> Any:
        """``async for row in conn.stream(sql)``: the rows of one query read
        ``chunk_size`` at a time with bounded memory (each chunk is read in
        the loop's default executor). The connection is busy until the rows
        are over or the generator is closed (which gives the query up)."""
        from . import bulk

        if chunk_size < 1:
            raise NotSupportedError("chunk_size must be at least 1")
        loop = asyncio.get_running_loop()
        async with self._lock:
            await self._wait_idle()
            h = self._handle()
            ptr = await loop.run_in_executor(None, bulk.open_stream, h, sql, params)
        try:
            while True:
                rows = await loop.run_in_executor(None, bulk.next_chunk, ptr, chunk_size, self._postgres)
                if rows is None:
                    return
                for row in rows:
                    yield row
        finally:
            try:
                await loop.run_in_executor(None, lib.sqlpool_stream_free, ptr)
            except RuntimeError:  # the loop is closing
                lib.sqlpool_stream_free(ptr)

    def copy(self, sql: str) -> "_CopyContext":
        """``async with conn.copy(sql) as cp`` (or ``cp = await
        conn.copy(sql)``): a :class:`sqlpool.bulk.AsyncCopy`."""
        return _CopyContext(self, sql)

    async def _open_copy(self, sql: str) -> Any:
        from . import bulk

        async with self._lock:
            await self._wait_idle()
            h = self._handle()
            loop = asyncio.get_running_loop()
            c = await loop.run_in_executor(None, bulk.open_copy, h, sql)
        return bulk.AsyncCopy(c)

    async def notifies(self, timeout: Optional[float] = None, stop_after: Optional[int] = None) -> Any:
        """``async for n in conn.notifies(timeout=…, stop_after=…)``:
        :class:`sqlpool.bulk.Notify` as they arrive. Waiting costs no thread:
        the library's completion queue wakes the loop when one comes."""
        import time

        from . import bulk

        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        taken = 0
        while stop_after is None or taken < stop_after:
            n = bulk.take_notification(self._handle(), 0)  # those already received
            if n is None:
                if deadline is None:
                    ms = -1
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    ms = int(left * 1000) + 1
                n = await self._run(
                    lambda h, q, out: lib.sqlpool_conn_next_notification_async(h, ms, q, None, None, out),
                    bulk.COMPLETION_NOTIFY, None, _nothing,
                )
                if n is None:
                    return
            taken += 1
            yield n

    async def _blocking(self, fn: Callable[..., int], *args: Any) -> None:
        """Runs a blocking C call on this connection in the default executor."""
        async with self._lock:
            await self._wait_idle()
            h = self._handle()
            loop = asyncio.get_running_loop()

            def call() -> None:
                check(fn(h, *args))  # the error is read on the calling thread

            fut = loop.run_in_executor(None, call)
            self._current = fut
            await asyncio.shield(fut)

    async def execute_script(self, sql: str) -> None:
        """Runs a script of statements separated by ``;`` (in the default executor)."""
        await self._blocking(lib.sqlpool_conn_execute_script, encode_sql(sql))

    async def begin(
        self,
        isolation: Union[None, str, int, IsolationLevel] = None,
        read_only: bool = False,
        deferrable: bool = False,
    ) -> None:
        """Begins a transaction explicitly (prefer :meth:`transaction`)."""
        flags = (_TX_READ_ONLY if read_only else 0) | (_TX_DEFERRABLE if deferrable else 0)
        await self._blocking(lib.sqlpool_conn_begin, isolation_value(isolation), flags)

    async def commit(self) -> None:
        """Commits the open transaction. Without one: as the C function
        (``SQLPOOL_TRANSACTION_STATE`` on SQLite -> ProgrammingError)."""
        await self._blocking(lib.sqlpool_conn_commit)

    async def rollback(self) -> None:
        """Rolls the open transaction back (no transaction: as :meth:`commit`)."""
        await self._blocking(lib.sqlpool_conn_rollback)

    def transaction(
        self,
        isolation: Union[None, str, int, IsolationLevel] = None,
        read_only: bool = False,
        deferrable: bool = False,
    ) -> "AsyncTransaction":
        """``async with conn.transaction():`` commits on success, rolls back
        on an exception; nested blocks are savepoints."""
        return AsyncTransaction(self, isolation, read_only, deferrable)

    def __repr__(self) -> str:
        state = "released" if self._ptr is None else "open"
        return f"<{type(self).__name__} {state}>"


class _CopyContext:
    """What :meth:`AsyncConnection.copy` returns: awaitable, or an async
    context manager."""

    def __init__(self, conn: AsyncConnection, sql: str) -> None:
        self._conn = conn
        self._sql = sql
        self._copy: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._conn._open_copy(self._sql).__await__()

    async def __aenter__(self) -> Any:
        self._copy = await self._conn._open_copy(self._sql)
        return self._copy

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._copy.__aexit__(*exc_info)


class AsyncTransaction:
    """``async with conn.transaction():`` — see :meth:`AsyncConnection.transaction`."""

    def __init__(self, connection: AsyncConnection, isolation: Union[None, str, int, IsolationLevel],
                 read_only: bool, deferrable: bool) -> None:
        self.connection = connection
        self._isolation = isolation_value(isolation)
        self._flags = (_TX_READ_ONLY if read_only else 0) | (_TX_DEFERRABLE if deferrable else 0)
        self._savepoint: Optional[bytes] = None

    async def __aenter__(self) -> "AsyncTransaction":
        conn = self.connection
        depth = conn._tx_depth
        if depth == 0:
            await conn._blocking(lib.sqlpool_conn_begin, self._isolation, self._flags)
        else:
            self._savepoint = f"sqlpool_sp_{depth}".encode()
            await conn._blocking(lib.sqlpool_conn_savepoint, self._savepoint)
        conn._tx_depth = depth + 1
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        conn = self.connection
        conn._tx_depth = max(conn._tx_depth - 1, 0)
        sp = self._savepoint
        if exc_type is None:
            if sp is None:
                await conn._blocking(lib.sqlpool_conn_commit)
            else:
                await conn._blocking(lib.sqlpool_conn_release_savepoint, sp)
            return False
        try:
            if sp is None:
                await conn._blocking(lib.sqlpool_conn_rollback)
            else:
                await conn._blocking(lib.sqlpool_conn_rollback_to_savepoint, sp)
                await conn._blocking(lib.sqlpool_conn_release_savepoint, sp)
        except Exception as rollback_error:  # noqa: BLE001
            _log.warning("rollback after %r failed: %s", exc, rollback_error)
        return exc_type is Rollback


AsyncPool._connection_class = AsyncConnection
