"""The asyncio API: :class:`AsyncPool` and :class:`AsyncConnection`.

Statements are driven by the event loop itself, as psycopg drives a
non-blocking libpq connection: ``sqlpool_*_start`` begins one (a
``sqlpool_task``), ``sqlpool_task_poll`` advances it and says which
descriptors (and deadline) it waits for, and the loop's
``add_reader``/``add_writer``/``call_at`` poll it again when they are ready.
On PostgreSQL no library thread takes part (one wake-up per round trip);
a SQLite statement runs on a library thread that wakes the task's
descriptor. While the loop has nothing else to do, the first poll waits
for a quick answer itself (until the loop's own selector becomes
readable, at most ``IDLE_WAIT_US``), so a fast statement completes without
a round of the loop. A query on an idle connection takes one C call for
all that (``sqlpool_conn_query_into_start``: its rows then come as the
blocking API reads them, with no future), and so does an acquire that
finds an idle connection with nobody queued before it
(``sqlpool_pool_acquire_now_or_async``). Cancelling the waiting task calls
``sqlpool_task_cancel``; the loop keeps driving the operation until the
server has ended it (or the connection is closed).

Everything else uses the library's completion queue, not a thread per
call: each event loop gets one ``sqlpool_queue``, whose file descriptor is
watched with ``loop.add_reader``. Operations are submitted with the
``*_async`` functions (the work runs on the library's threads), and the
reader pops completions and resolves the futures, keyed by operation id.
Cancelling a task that waits calls ``sqlpool_cancel``; the completion still
arrives, and a connection acquired for a cancelled caller goes straight
back to the pool.

Opening and closing a pool, ``execute_script`` and beginning/committing
transactions run in the loop's default executor (the C API has no
asynchronous form of those). Requires an event loop with ``add_reader``
(any loop on Linux and macOS; on Windows the selector loop).
"""

from __future__ import annotations

import asyncio
import logging
import select
import weakref
from ctypes import POINTER, Structure, byref, c_char_p, c_int, c_int64, c_size_t, c_uint32, c_uint64, c_void_p
from types import TracebackType
from typing import Any, Callable, Dict, Generator, Iterable, List, Optional, Type, Union

from . import _convert, _lib, _managed
from ._convert import Params, ParamSets, build_params, free_params
from ._lib import Completion, lib
from ._managed import Managed, fork_generation
from ._options import Duration, IsolationLevel, isolation_value
from .errors import NotSupportedError, check, last_error
from .pool import (_PLANS, _SCRATCH_LEN, _SIZE_0, _SIZES, _TX_DEFERRABLE, _TX_READ_ONLY, Rollback, _plan,
                   _PoolBase, _read_into, _scratch, encode_sql, timeout_ms)
from .row import Row

__all__ = ["AsyncPool", "AsyncConnection", "AsyncTransaction"]

_log = logging.getLogger("sqlpool")


def _require_async() -> None:
    if not _lib.HAS_ASYNC:
        raise NotSupportedError(
            f"the native library at {_lib.library_path} has no asynchronous API "
            "(sqlpool_queue_new); rebuild it"
        )


class _Wait(Structure):
    """``sqlpool_wait``: what an unfinished ``sqlpool_task`` waits for."""

    _fields_ = [
        ("count", c_uint32),
        ("fds", c_int * 4),
        ("events", c_uint32 * 4),
        ("timeout_us", c_int64),
    ]


_WAIT_READ = 1  # SQLPOOL_WAIT_READ
_WAIT_WRITE = 2  # SQLPOOL_WAIT_WRITE

_TASK_PROTOTYPES = {
    "sqlpool_conn_execute_start": (c_uint32, [c_void_p, c_char_p, c_void_p, _lib.handle_p]),
    "sqlpool_conn_query_start": (c_uint32, [c_void_p, c_char_p, c_void_p, _lib.handle_p]),
    "sqlpool_conn_query_packed_start": (
        c_uint32, [c_void_p, c_char_p, c_char_p, c_size_t, _lib.handle_p]),
    "sqlpool_conn_execute_packed_start": (
        c_uint32, [c_void_p, c_char_p, c_char_p, c_size_t, _lib.handle_p]),
    "sqlpool_conn_execute_batch_start": (
        c_uint32, [c_void_p, c_char_p, POINTER(c_void_p), c_size_t, _lib.handle_p]),
    "sqlpool_conn_execute_many_columns_start": (
        c_uint32,
        [c_void_p, c_char_p, POINTER(_lib.ParamColumn), c_size_t, c_size_t, _lib.handle_p]),
    "sqlpool_task_poll": (
        c_uint32,
        [c_void_p, c_uint64, c_int, POINTER(_Wait), POINTER(Completion), POINTER(_lib.QueryInfo)],
    ),
    "sqlpool_task_cancel": (c_uint32, [c_void_p]),
    "sqlpool_task_free": (c_uint32, [c_void_p]),
}
# Whether statements are driven by the event loop (a library without the
# sqlpool_task functions, or tests, use the completion queue instead).
loop_driven: bool = _lib._declare(_TASK_PROTOTYPES, required=False)
# One C call for the common cases (an older library lacks them: the
# general paths then take every call).
_FAST_PROTOTYPES = {
    "sqlpool_conn_query_into_start": (
        c_uint32,
        [c_void_p, c_char_p, c_char_p, c_size_t, c_void_p, c_size_t, POINTER(c_void_p),
         c_uint64, c_int, _lib.handle_p, POINTER(_Wait)],
    ),
    "sqlpool_pool_acquire_now_or_async": (
        c_uint32, [c_void_p, c_int64, c_void_p, c_void_p, POINTER(c_void_p), POINTER(c_uint64)]),
}
_fast: bool = _lib._declare(_FAST_PROTOTYPES, required=False)
# Tests switch the fast paths off to exercise the general ones.
query_in_one_call: bool = loop_driven and _fast
acquire_in_one_call: bool = _fast
_EMPTY = _lib.EMPTY
if loop_driven:
    _task_poll = lib.sqlpool_task_poll
    _task_free = lib.sqlpool_task_free
    _query_start = lib.sqlpool_conn_query_packed_start
    _execute_start = lib.sqlpool_conn_execute_packed_start
if _fast:
    _query_into_start = lib.sqlpool_conn_query_into_start
    _acquire_now_or_async = lib.sqlpool_pool_acquire_now_or_async
_conn_release = lib.sqlpool_conn_release
_pack_params = _convert.pack_params
_select = select.select
_get_loop = asyncio.get_running_loop
_CancelledError = asyncio.CancelledError
_SQL_BYTES: Dict[str, bytes] = {}


def _sql_bytes(sql: str) -> bytes:
    """``encode_sql``, remembered for the statements used most recently."""
    s = _SQL_BYTES.get(sql)
    if s is None:
        s = encode_sql(sql)
        if len(_SQL_BYTES) >= 512:
            _SQL_BYTES.clear()
        _SQL_BYTES[sql] = s
    return s

# How long the first poll of an operation may wait for the server when the
# loop has nothing else to do (see _idle_budget), in microseconds. The
# loop's own descriptor and its next timer cut it short, so a longer bound
# takes nothing from the loop; a shorter one (1 ms) made each wait arm a
# near kernel timer, about 10 us more per query on a VM.
IDLE_WAIT_US = 10_000


# The arguments for "do not wait", as ctypes instances (passed as they are,
# with no conversion per call).
_NO_WAIT = (c_uint64(0), c_int(-1))
# (weak reference to a loop, its selector's descriptor or -1, the full
# budget's arguments) for the loop seen last: one tuple, replaced whole
# (loops on other threads may replace it). Weak: a closed loop is freed
# with its queue (see _queue).
_LOOP_FD: "tuple[Any, int, Any]" = (lambda: None, -1, _NO_WAIT)


def _loop_fd(loop: asyncio.AbstractEventLoop) -> "tuple[Any, int, Any]":
    """Learns the descriptor of the loop's selector; -1 for loops whose
    internals differ (uvloop, Windows)."""
    global _LOOP_FD
    try:
        loop._ready  # type: ignore[attr-defined]
        loop._scheduled  # type: ignore[attr-defined]
        fd = loop._selector.fileno()  # type: ignore[attr-defined]
    except (AttributeError, NotImplementedError):
        fd = -1
    known = _LOOP_FD = (weakref.ref(loop), fd, (c_uint64(IDLE_WAIT_US), c_int(fd)))
    return known


def _idle_budget(loop: asyncio.AbstractEventLoop) -> "tuple[Any, Any]":
    """(microseconds, loop descriptor) the first poll of an operation may
    wait for the server inside the call: only while the loop has nothing
    else to do — no callback ready, nothing due before then — and only
    until the loop's own descriptor (its selector) becomes readable, so
    the wait replaces the loop's idle wait and takes nothing from other
    work. (0, -1) for loops whose internals differ (uvloop, Windows).
    Both as ctypes arguments."""
    known = _LOOP_FD
    if known[0]() is not loop:
        known = _loop_fd(loop)
    if known[1] < 0 or loop._ready:  # type: ignore[attr-defined]
        return _NO_WAIT
    scheduled = loop._scheduled  # type: ignore[attr-defined]
    if scheduled:
        left = int((scheduled[0].when() - loop.time()) * 1e6)
        if left < IDLE_WAIT_US:
            return (c_uint64(left), known[2][1]) if left > 0 else _NO_WAIT
    return known[2]


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
        # Out-parameters of sqlpool_pool_acquire_now_or_async (one loop, one
        # thread: read right after each call).
        self.conn_out = c_void_p()
        self.op_out = c_uint64()
        self.acquire_refs = (byref(self.conn_out), byref(self.op_out))
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

    def wait_briefly(self, op: _Op) -> None:
        """Waits on the loop thread for ``op``'s completion while the loop
        has nothing else to do (see _idle_budget), at most IDLE_WAIT_US:
        a quick operation then completes without a round of the loop."""
        loop = self._loop_ref()
        if loop is None or op.future.done():
            return
        budget, stop_fd = _idle_budget(loop)
        if budget.value <= 0:
            return
        try:
            ready, _, _ = _select([self.fd, stop_fd.value], (), (), budget.value / 1e6)
        except (OSError, ValueError):
            return
        if self.fd in ready:
            self.drain()

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


# (weak reference to a loop, its queue) for the loop seen last: one tuple,
# replaced whole. Weak: the loop's finalizer frees the queue.
_LAST_QUEUE: "tuple[Any, Optional[_LoopQueue]]" = (lambda: None, None)


def _queue() -> _LoopQueue:
    """The running loop's completion queue (created on first use)."""
    global _LAST_QUEUE
    loop = _get_loop()
    known, q = _LAST_QUEUE
    if known() is loop and q is not None and q.ptr is not None and q.generation == _managed._generation:
        return q
    q = _queues.get(loop)
    if q is None or q.ptr is None or q.generation != fork_generation():
        q = _LoopQueue(loop)
        _queues[loop] = q
        weakref.finalize(loop, _free_queue_later, q)
    _LAST_QUEUE = (weakref.ref(loop), q)
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


# Idle drivers, reused by the next connection objects.
_SPARE_DRIVERS: "List[_Driver]" = []
_SPARE_DRIVERS_MAX = 64


class _Driver:
    """Drives the loop-driven operations (``sqlpool_task``) of one
    connection, one at a time: the loop watches what the last poll said
    the operation waits for and polls again when that is ready; the
    completion resolves the operation's future. Its buffers are reused
    from one operation to the next."""

    __slots__ = ("loop", "ptr", "future", "kind", "reader", "mode", "first_only", "generation",
                 "watched", "timer", "timer_at", "idle", "_wait", "_completion", "_info",
                 "_refs", "wait_ref", "task_out", "task_ref")

    def __init__(self) -> None:
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.ptr: Optional[int] = None  # the task in flight
        self.future: Optional["asyncio.Future[Any]"] = None
        self.kind = 0
        self.reader: Optional[Callable[..., Any]] = None
        self.mode = 0
        self.first_only: Optional[bool] = None  # read a query's rows from its packed info
        self.generation = fork_generation()
        self.watched: Dict[int, int] = {}
        self.timer: Optional[asyncio.TimerHandle] = None
        self.timer_at = 0.0
        self.idle: List[Callable[[], None]] = []  # called once the task has ended
        self._wait = _Wait()
        self._completion = Completion()
        self._info = _lib.QueryInfo()
        self._refs = (byref(self._wait), byref(self._completion), byref(self._info))
        self.wait_ref = self._refs[0]
        self.task_out = c_void_p()
        self.task_ref = byref(self.task_out)

    def adopt(self, loop: asyncio.AbstractEventLoop, ptr: int, kind: int,
              reader: Optional[Callable[..., Any]], mode: int,
              first_only: Optional[bool]) -> "asyncio.Future[Any]":
        """Takes a started task; returns its future."""
        self.loop = loop
        self.ptr = ptr
        self.generation = fork_generation()
        fut = self.future = loop.create_future()
        self.kind = kind
        self.reader = reader
        self.mode = mode
        self.first_only = first_only
        return fut

    def follow(self, loop: asyncio.AbstractEventLoop, ptr: int, kind: int, mode: int,
               first_only: Optional[bool]) -> "asyncio.Future[Any]":
        """Takes a task already polled once (its wait in ``self._wait``):
        the loop drives the rest; returns its future."""
        fut = self.adopt(loop, ptr, kind, None, mode, first_only)
        try:
            self._watch()
        except Exception:  # noqa: BLE001 - as step
            _log.exception("sqlpool: driving an operation failed")
        return fut

    def begin(self, loop: asyncio.AbstractEventLoop, ptr: int, kind: int,
              reader: Optional[Callable[..., Any]], mode: int,
              first_only: Optional[bool]) -> "asyncio.Future[Any]":
        """Takes a started task and polls it once; returns its future."""
        fut = self.adopt(loop, ptr, kind, reader, mode, first_only)
        budget, stop_fd = _idle_budget(loop)
        wait, completion, info = self._refs
        try:
            st = _task_poll(ptr, budget, stop_fd, wait, completion, info)
            if st == _EMPTY:
                self._watch()
            else:
                self._end(ptr, st)
        except Exception:  # noqa: BLE001 - as step
            _log.exception("sqlpool: driving an operation failed")
        return fut

    def step(self) -> None:
        """Polls the task; on completion resolves the future. Never raises."""
        ptr = self.ptr
        if ptr is None:
            return
        try:
            wait, completion, info = self._refs
            st = _task_poll(ptr, 0, -1, wait, completion, info)
            if st == _EMPTY:
                self._watch()
                return
            self._end(ptr, st)
        except Exception:  # noqa: BLE001 - never break the loop's callbacks
            _log.exception("sqlpool: driving an operation failed")

    def _end(self, ptr: int, st: int) -> None:
        self.ptr = None
        if self.watched or self.timer is not None:
            self._unwatch()
        fut = self.future
        self.future = None
        try:
            if st:
                error = last_error(st)
                if fut is not None and not fut.done():
                    fut.set_exception(error)
                return
            c = self._completion
            status = c.status
            handle = c.handle
            if status:
                error = last_error(status)
                if c.error:
                    lib.sqlpool_error_free(c.error)
                    c.error = None
                if fut is not None and not fut.done():
                    fut.set_exception(error)
            elif self.kind == _lib.COMPLETION_QUERY:
                try:
                    if fut is not None and not fut.done():
                        try:
                            if self.first_only is None:
                                assert self.reader is not None
                                value = self.reader(handle, self.mode)
                            else:
                                value = _convert.read_packed(handle, self._info, self.mode, self.first_only)
                        except Exception as e:  # noqa: BLE001
                            fut.set_exception(e)
                        else:
                            fut.set_result(value)
                finally:
                    lib.sqlpool_result_free(handle)
            elif fut is not None and not fut.done():
                fut.set_result(c.rows_affected)
        finally:
            _task_free(ptr)
            if self.idle:
                idle, self.idle = self.idle, []
                for fn in idle:
                    try:
                        fn()
                    except Exception:  # noqa: BLE001
                        _log.exception("sqlpool: a callback after an operation failed")

    def _on_timer(self) -> None:
        self.timer = None
        self.step()

    def _watch(self) -> None:
        w = self._wait
        loop = self.loop
        assert loop is not None
        watched = self.watched
        if w.count == 1:
            fd = w.fds[0]
            ev = w.events[0]
            same = len(watched) == 1 and watched.get(fd) == ev
            want = watched if same else {fd: ev}
        else:
            want = {w.fds[i]: w.events[i] for i in range(w.count)}
            same = want == watched
        if not same:
            for fd, ev in watched.items():
                if want.get(fd) != ev:
                    if ev & _WAIT_READ:
                        loop.remove_reader(fd)
                    if ev & _WAIT_WRITE:
                        loop.remove_writer(fd)
            for fd, ev in want.items():
                if watched.get(fd) != ev:
                    if ev & _WAIT_READ:
                        loop.add_reader(fd, self.step)
                    if ev & _WAIT_WRITE:
                        loop.add_writer(fd, self.step)
            self.watched = want
        t = w.timeout_us
        if t >= 0:
            at = loop.time() + t / 1e6
            # A timer that fires no later than needed is kept (firing early
            # only means a poll that finds nothing to do).
            if self.timer is None or self.timer_at > at:
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = loop.call_at(at, self._on_timer)
                self.timer_at = at

    def _unwatch(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            for fd, ev in self.watched.items():
                if ev & _WAIT_READ:
                    loop.remove_reader(fd)
                if ev & _WAIT_WRITE:
                    loop.remove_writer(fd)
        self.watched = {}
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def outcome(self, fut: "asyncio.Future[Any]") -> Any:
        """Awaits ``fut``, an operation's future: a caller cancelled
        meanwhile cancels the operation (see give_up)."""
        try:
            return await fut
        except _CancelledError:
            self.give_up(fut)
            raise

    def give_up(self, fut: "asyncio.Future[Any]") -> None:
        """The caller awaiting ``fut`` was cancelled: cancel its operation
        if it is still the one in flight."""
        if self.future is fut:
            self.cancel()

    def cancel(self) -> None:
        """Requests the operation's cancellation (its caller gave up): the
        loop goes on driving it until the server has ended it."""
        ptr = self.ptr
        if ptr is not None:
            lib.sqlpool_task_cancel(ptr)
            self.step()

    def wait_idle(self) -> "asyncio.Future[None]":
        """A future resolved once the operation in flight has ended."""
        assert self.loop is not None
        fut: "asyncio.Future[None]" = self.loop.create_future()

        def done() -> None:
            if not fut.done():
                fut.set_result(None)

        self.idle.append(done)
        return fut

    def abandon(self) -> None:
        """Frees an unfinished task (its connection is then closed at
        release, never reused): for a loop that will not run again."""
        ptr, self.ptr = self.ptr, None
        if ptr is None:
            return
        try:
            self._unwatch()
        except Exception:  # noqa: BLE001
            pass
        self.future = None
        if self.generation == fork_generation():
            _task_free(ptr)

    def __del__(self) -> None:
        try:
            self.abandon()
        except Exception:  # noqa: BLE001
            pass


def _nothing() -> None:
    pass


class _Later:
    """A loop-driven operation's future (what ``_query_now`` returns when
    the operation did not complete in its first call)."""

    __slots__ = ("future",)

    def __init__(self, future: "asyncio.Future[Any]") -> None:
        self.future = future


# ``_query_now``: the general path must take the call.
_GENERAL: Any = object()


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

    def _acquire_now(self, timeout: Optional[Duration]) -> Any:
        """The common case in one C call: an idle connection taken now (the
        library never takes one ahead of queued waiters). Otherwise the
        acquire started as an operation, ``(op_id, _Op)``, or None when the
        general path must take it all."""
        h = self._ptr
        if h is None or self._generation != _managed._generation or not acquire_in_one_call:
            return None
        q = _queue()
        conn_ref, op_ref = q.acquire_refs
        st = _acquire_now_or_async(h, -1 if timeout is None else timeout_ms(timeout), q.ptr, None,
                                   conn_ref, op_ref)
        if st == 0:
            return self._connection_class(self, q.conn_out.value)
        if st == _EMPTY:
            # Started as an operation: its completion will come on the queue.
            op_id = q.op_out.value
            return op_id, q.register(op_id, _lib.COMPLETION_ACQUIRE)
        raise last_error(st)

    async def _acquire(self, timeout: Optional[Duration], started: Any = None) -> "AsyncConnection":
        """Waits for a connection; ``started``: what _acquire_now returned."""
        if started is not None:
            op_id, op = started
        else:
            h = await self._live_handle()
            q = _queue()
            out = c_uint64()
            check(lib.sqlpool_pool_acquire_async(h, timeout_ms(timeout), q.ptr, None, None, byref(out)))
            op_id = out.value
            op = q.register(op_id, _lib.COMPLETION_ACQUIRE)
            # An idle connection is handed over before the call returns: take
            # it now rather than after a turn of the event loop.
            q.drain()
        ptr = await _await_op(op_id, op)
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
        return self._acquire().__await__()

    async def _acquire(self) -> "AsyncConnection":
        got = self._pool._acquire_now(self._timeout)
        if got is None or type(got) is tuple:
            return await self._pool._acquire(self._timeout, got)
        return got  # type: ignore[no-any-return]

    async def __aenter__(self) -> "AsyncConnection":
        got = self._pool._acquire_now(self._timeout)
        if got is None or type(got) is tuple:
            got = await self._pool._acquire(self._timeout, got)
        self._conn = got
        return got  # type: ignore[no-any-return]

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


_DONE = _Done()


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
        self._guard: Optional[asyncio.Lock] = None  # made when first needed
        self._current: Optional["asyncio.Future[Any]"] = None
        self._driver: Optional[_Driver] = None
        if loop_driven:
            try:
                self._driver = _SPARE_DRIVERS.pop()
            except IndexError:
                self._driver = _Driver()
        self._tx_depth = 0
        self._cptr: Optional[c_void_p] = None  # the handle as a ctypes argument, made when first needed
        # Managed._adopt, without its getpid(): a connection belongs to its
        # pool's process.
        self._ptr = ptr
        self._generation = _managed._generation
        self._pid = pool._pid

    @property
    def _lock(self) -> asyncio.Lock:
        """Serialises operations that wait their turn."""
        g = self._guard
        if g is None:
            g = self._guard = asyncio.Lock()
        return g

    @property
    def pool(self) -> AsyncPool:
        """The pool this connection came from."""
        return self._pool

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` block is open on this connection."""
        return self._tx_depth > 0

    def _free(self, ptr: int) -> None:
        d = self._driver
        if d is not None and d.ptr is not None:
            loop = d.loop
            if loop is None or loop.is_closed():
                # Its loop will not drive it any more: give it up (the
                # connection is then closed, not reused).
                d.abandon()
            else:
                # An abandoned operation still runs on it: release after it ends.
                d.idle.append(lambda: lib.sqlpool_conn_release(ptr))
                return
        cur = self._current
        if cur is not None and not cur.done():
            # An abandoned operation still runs on it: release after it ends.
            cur.add_done_callback(lambda _f: lib.sqlpool_conn_release(ptr))
            return
        _conn_release(ptr)
        if d is not None and not d.idle and len(_SPARE_DRIVERS) < _SPARE_DRIVERS_MAX:
            # Idle: the next connection object takes it (its ctypes buffers
            # cost more to make than an acquire).
            d.loop = None
            self._driver = None
            _SPARE_DRIVERS.append(d)

    def close(self) -> _Done:  # type: ignore[override]
        """Gives the connection back to its pool. Idempotent; may be awaited."""
        ptr = self._ptr
        if ptr is not None:
            self._ptr = None
            self._cptr = None
            if self._generation == _managed._generation:  # else the parent's
                self._free(ptr)
        self._tx_depth = 0
        return _DONE

    release = close

    async def __aenter__(self) -> "AsyncConnection":
        self._handle()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()

    async def _wait_idle(self) -> None:
        d = self._driver
        while d is not None and d.ptr is not None:
            await d.wait_idle()
        cur = self._current
        if cur is not None and not cur.done():
            await asyncio.wait({cur})

    def _idle_now(self) -> bool:
        """No operation in flight and nobody waiting for the connection."""
        g = self._guard
        if g is not None and g.locked():
            return False
        d = self._driver
        if d is not None and d.ptr is not None:
            return False
        cur = self._current
        return cur is None or cur.done()

    async def _drive(self, start: Callable[[int, Any], int], kind: int,
                     reader: Optional[Callable[..., Any]], cleanup: Callable[[], None],
                     first_only: Optional[bool] = None) -> Any:
        """Runs one loop-driven operation (PostgreSQL): started here, then
        polled by the loop's callbacks. If the caller is cancelled, the
        operation is cancelled and the loop drives it to its end."""
        d = self._driver
        assert d is not None
        try:
            if self._idle_now():
                fut = self._begin(d, start, kind, reader, first_only)
            else:
                async with self._lock:
                    await self._wait_idle()
                    fut = self._begin(d, start, kind, reader, first_only)
        finally:
            cleanup()
        return await d.outcome(fut)

    def _start_packed(self, start: Any, sql: str, parameters: Params, kind: int,
                      first_only: Optional[bool]) -> "Optional[asyncio.Future[Any]]":
        """The common case in one go: the connection idle, the parameters
        packable. Starts the operation and polls it (a quick answer
        completes it now); None when the general path must take it."""
        d = self._driver
        if d is None or not self._idle_now():
            return None
        packed = _pack_params(parameters)
        if packed is None:
            return None
        st = start(self._handle(), _sql_bytes(sql), packed, len(packed), d.task_ref)
        if st:
            raise last_error(st)
        return d.begin(_get_loop(), d.task_out.value, kind, None, self._pool._read_mode, first_only)

    def _query_now(self, sql: str, parameters: Params, first_only: bool) -> Any:
        """A query in one C call (``sqlpool_conn_query_into_start``) when
        the connection is idle and the parameters packable: the rows when it
        completed in the call (read as the blocking API reads them), a
        ``_Later`` when the loop drives the rest, ``_GENERAL`` when the
        general path must take it (nothing started then)."""
        d = self._driver
        if d is None or d.ptr is not None or not query_in_one_call:
            return _GENERAL
        g = self._guard
        cur = self._current
        if (g is not None and g.locked()) or (cur is not None and not cur.done()):
            return _GENERAL
        plan = _PLANS.get(sql) or _plan(sql)
        if parameters is None:
            packed, size = None, _SIZE_0
        else:
            packed = _pack_params(parameters)
            if packed is None:
                return _GENERAL
            n = len(packed)
            size = _SIZES[n] if n < 256 else n
        cptr = self._cptr
        if cptr is None or self._generation != _managed._generation:
            cptr = self._cptr = c_void_p(self._handle())
        loop = _get_loop()
        budget, stop_fd = _idle_budget(loop)
        buf, view, out, out_ref = _scratch.t
        st = _query_into_start(cptr, plan.sql, packed, size, view, _SCRATCH_LEN, out_ref, budget, stop_fd,
                               d.task_ref, d.wait_ref)
        if st == 0:
            return _read_into(buf, out.value, plan, self._pool._read_mode, first_only)
        if st == _EMPTY:
            return _Later(d.follow(loop, d.task_out.value, _lib.COMPLETION_QUERY, self._pool._read_mode,
                                   first_only))
        raise last_error(st)

    def _begin(self, d: _Driver, start: Callable[[int, Any], int], kind: int,
               reader: Optional[Callable[..., Any]], first_only: Optional[bool]) -> "asyncio.Future[Any]":
        """Starts the task (the library copies the parameters) and polls it once."""
        st = start(self._handle(), d.task_ref)
        if st:
            raise last_error(st)
        ptr = d.task_out.value
        assert ptr is not None
        return d.begin(asyncio.get_running_loop(), ptr, kind, reader, self._pool._read_mode, first_only)

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
                q.wait_briefly(op)
                return await _await_op(op_id.value, op)
        finally:
            cleanup()

    async def execute(self, sql: str, parameters: Params = None) -> int:
        """Runs one statement; returns the rows it changed."""
        if self._driver is not None:
            fut = self._start_packed(_execute_start, sql, parameters, _lib.COMPLETION_EXECUTE, None)
            if fut is not None:
                return await self._driver.outcome(fut)
        s = encode_sql(sql)
        p = build_params(parameters)
        if self._driver is not None:
            return await self._drive(  # type: ignore[no-any-return]
                lambda h, out: lib.sqlpool_conn_execute_start(h, s, p, out),
                _lib.COMPLETION_EXECUTE, None, lambda: free_params(p),
            )
        return await self._run(  # type: ignore[no-any-return]
            lambda h, q, out: lib.sqlpool_conn_execute_async(h, s, p, q, None, None, out),
            _lib.COMPLETION_EXECUTE, None, lambda: free_params(p),
        )

    async def _query(self, sql: str, parameters: Params, reader: Callable[..., Any],
                     first_only: Optional[bool] = None) -> Any:
        s = encode_sql(sql)
        if self._driver is not None:
            packed = _convert.pack_params(parameters)
            if packed is not None and first_only is not None:
                return await self._drive(
                    lambda h, out: lib.sqlpool_conn_query_packed_start(h, s, packed, len(packed), out),
                    _lib.COMPLETION_QUERY, reader, _nothing, first_only,
                )
            p = build_params(parameters)
            return await self._drive(
                lambda h, out: lib.sqlpool_conn_query_start(h, s, p, out),
                _lib.COMPLETION_QUERY, reader, lambda: free_params(p),
            )
        p = build_params(parameters)
        return await self._run(
            lambda h, q, out: lib.sqlpool_conn_query_async(h, s, p, q, None, None, out),
            _lib.COMPLETION_QUERY, reader, lambda: free_params(p),
        )

    async def query(self, sql: str, parameters: Params = None) -> List[Row]:
        """Runs one query; returns every row."""
        rows = self._query_now(sql, parameters, False)
        if rows is not _GENERAL:
            if rows.__class__ is _Later:
                return await self._driver.outcome(rows.future)  # type: ignore[union-attr, no-any-return]
            return rows  # type: ignore[no-any-return]
        if self._driver is not None:
            fut = self._start_packed(_query_start, sql, parameters, _lib.COMPLETION_QUERY, False)
            if fut is not None:
                return await self._driver.outcome(fut)
        return await self._query(sql, parameters, _convert.read_result, False)  # type: ignore[no-any-return]

    async def query_first(self, sql: str, parameters: Params = None) -> Optional[Row]:
        """Runs one query; returns its first row, or None."""
        row = self._query_now(sql, parameters, True)
        if row is not _GENERAL:
            if row.__class__ is _Later:
                return await self._driver.outcome(row.future)  # type: ignore[union-attr, no-any-return]
            return row  # type: ignore[no-any-return]
        if self._driver is not None:
            fut = self._start_packed(_query_start, sql, parameters, _lib.COMPLETION_QUERY, True)
            if fut is not None:
                return await self._driver.outcome(fut)
        return await self._query(sql, parameters, _convert.read_first, True)  # type: ignore[no-any-return]

    async def query_as_dict(self, sql: str, parameters: Params = None) -> List[Dict[str, Any]]:
        """Runs one query; returns every row as a dict."""
        return await self._query(sql, parameters, _convert.read_result_dicts)  # type: ignore[no-any-return]

    async def execute_many(self, sql: str, seq_of_parameters: Iterable[Params]) -> int:
        """Runs one statement per parameter set, all or nothing; returns the total rows changed."""
        s = encode_sql(sql)
        if self._driver is not None:
            # Column by column when every column holds one kind of value:
            # read (and copied) by the start call, no parameter objects.
            listed = seq_of_parameters
            if not isinstance(listed, (list, tuple)):
                listed = list(listed)  # a generator is read once
            columns = _convert.pack_param_columns(listed)
            if columns is not None:
                return await self._drive(  # type: ignore[no-any-return]
                    lambda h, out: lib.sqlpool_conn_execute_many_columns_start(h, s, *columns, out),
                    _lib.COMPLETION_BATCH, None, _nothing,
                )
            seq_of_parameters = listed
        sets = ParamSets(seq_of_parameters)
        if self._driver is not None:
            return await self._drive(  # type: ignore[no-any-return]
                lambda h, out: lib.sqlpool_conn_execute_batch_start(
                    h, s, sets.array, len(sets.handles), out),
                _lib.COMPLETION_BATCH, None, sets.free,
            )
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
