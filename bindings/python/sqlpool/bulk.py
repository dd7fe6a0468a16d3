"""Bulk data: streaming results, COPY and LISTEN/NOTIFY, with psycopg 3's
names (``conn.stream()``, ``conn.copy()``, ``conn.notifies()``).

A stream or a COPY holds its connection: until it is finished or closed,
other calls on the connection raise (the library answers
``SQLPOOL_BUSY``). Leaving a ``for`` loop over :meth:`Connection.stream`
early, or a ``with conn.copy(...)`` block with an exception, gives the
statement up and leaves the connection clean (cancelled outside a
transaction, drained inside one; an unfinished COPY FROM STDIN is rolled
back).
"""

from __future__ import annotations

import datetime
import time
from ctypes import (
    POINTER,
    Structure,
    byref,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
    create_string_buffer,
    string_at,
)
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import _convert, _lib
from ._convert import Params, build_params, free_params
from ._lib import lib
from ._managed import Managed
from .errors import InterfaceError, NotSupportedError, check
from .row import Row

__all__ = ["Notify", "Copy"]


class NotificationInfo(Structure):
    """``sqlpool_notification_info``."""

    _fields_ = [
        ("pid", c_int32),
        ("_reserved", c_uint32),
        ("channel", c_void_p),
        ("channel_len", c_size_t),
        ("payload", c_void_p),
        ("payload_len", c_size_t),
    ]


_P = c_void_p
_OUT = POINTER(c_void_p)
_PROTOTYPES = {
    "sqlpool_conn_query_stream": (c_uint32, [_P, c_char_p, _P, _OUT]),
    "sqlpool_stream_next": (c_uint32, [_P, c_size_t, _OUT]),
    "sqlpool_stream_free": (c_uint32, [_P]),
    "sqlpool_conn_copy_in": (c_uint32, [_P, c_char_p, _OUT]),
    "sqlpool_conn_copy_out": (c_uint32, [_P, c_char_p, _OUT]),
    "sqlpool_copy_write": (c_uint32, [_P, c_char_p, c_size_t]),
    "sqlpool_copy_finish": (c_uint32, [_P, POINTER(c_uint64)]),
    "sqlpool_copy_read": (c_uint32, [_P, c_void_p, c_size_t, POINTER(c_size_t)]),
    "sqlpool_copy_free": (c_uint32, [_P]),
    "sqlpool_conn_next_notification": (c_uint32, [_P, c_int64, _OUT]),
    "sqlpool_notification_get": (c_uint32, [_P, POINTER(NotificationInfo)]),
    "sqlpool_notification_free": (c_uint32, [_P]),
    # The callback argument is always passed as NULL from Python.
    "sqlpool_conn_next_notification_async": (
        c_uint32,
        [_P, c_int64, _P, c_void_p, c_void_p, POINTER(c_uint64)],
    ),
}
COMPLETION_NOTIFY = 5
HAS_BULK: bool = _lib._declare(_PROTOTYPES, required=False)


def _require() -> None:
    if not HAS_BULK:
        raise NotSupportedError(
            f"the native library at {_lib.library_path} has no streaming/COPY/notification API; rebuild it"
        )


# ---------------------------------------------------------------------------
# Streaming


def stream_rows(conn_ptr: int, sql: str, parameters: Params, chunk_size: int, postgres: bool) -> Iterator[Row]:
    """Rows of ``sql`` read ``chunk_size`` at a time (the generator behind
    :meth:`Connection.stream`)."""
    _require()
    from .pool import encode_sql

    if chunk_size < 1:
        raise InterfaceError("chunk_size must be at least 1")
    s = encode_sql(sql)
    p = build_params(parameters)
    out = c_void_p()
    try:
        check(lib.sqlpool_conn_query_stream(conn_ptr, s, p, byref(out)))
    finally:
        free_params(p)
    stream = out.value
    res = c_void_p()
    try:
        while True:
            st = lib.sqlpool_stream_next(stream, chunk_size, byref(res))
            if st == _lib.EMPTY:
                return
            check(st)
            try:
                rows = _convert.read_result(res.value, postgres)
            finally:
                lib.sqlpool_result_free(res.value)
            yield from rows
    finally:
        # Gives an unfinished stream up (cancel or drain): the connection is
        # free again when this returns.
        lib.sqlpool_stream_free(stream)


def next_chunk(stream: int, chunk_size: int, postgres: bool) -> Optional[List[Row]]:
    """One chunk of a native stream (``None`` at the end); for the async API."""
    res = c_void_p()
    st = lib.sqlpool_stream_next(stream, chunk_size, byref(res))
    if st == _lib.EMPTY:
        return None
    check(st)
    try:
        return _convert.read_result(res.value, postgres)
    finally:
        lib.sqlpool_result_free(res.value)


def open_stream(conn_ptr: int, sql: str, parameters: Params) -> int:
    """Starts a native stream; the caller frees it with ``sqlpool_stream_free``."""
    _require()
    from .pool import encode_sql

    s = encode_sql(sql)
    p = build_params(parameters)
    out = c_void_p()
    try:
        check(lib.sqlpool_conn_query_stream(conn_ptr, s, p, byref(out)))
    finally:
        free_params(p)
    assert out.value is not None
    return out.value


# ---------------------------------------------------------------------------
# COPY

_FLUSH_AT = 1 << 16
_READ_SIZE = 1 << 16


def _escape(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    else:
        text = str(value)
    return _escape_text(text)


def _escape_text(text: str) -> str:
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


# The common types by exact type (one dict look-up instead of a chain of
# isinstance checks: write_row's cost is mostly this); others, subclasses
# included, go through _escape.
_ESCAPE_BY_TYPE: Dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    float: float.__repr__,
    str: _escape_text,
    type(None): lambda _: "\\N",
    bool: lambda v: "t" if v else "f",
}


_escape_of = _ESCAPE_BY_TYPE.get


def _format_row(row: Sequence[Any]) -> str:
    """One row in COPY's text format, without its line end."""
    return "\t".join([(_escape_of(type(v)) or _escape)(v) for v in row])


# A column holding one of these types only is formatted by one %-format
# per row for the whole chunk (no Python call per value); the specs give
# the same text as _ESCAPE_BY_TYPE.
_SPEC_BY_TYPE: Dict[type, str] = {int: "%d", float: "%r", str: "%s"}
_ROWS_PER_CHUNK = 1024


def _needs_escape(text: str) -> bool:
    return "\\" in text or "\t" in text or "\n" in text or "\r" in text


def _format_rows(rows: List[Tuple[Any, ...]]) -> str:
    """Rows in COPY's text format, one per line, without the last line end.
    Where every column holds one plain type (int, float, or text needing no
    escape), one %-format is applied to each row in a C loop; otherwise each
    value is formatted on its own."""
    specs = []
    for column in zip(*rows):
        kinds = set(map(type, column))
        spec = _SPEC_BY_TYPE.get(kinds.pop()) if len(kinds) == 1 else None
        if spec is None or (spec == "%s" and _needs_escape("\x00".join(column))):
            break
        specs.append(spec)
    else:
        try:
            # Raises TypeError unless every row has exactly len(specs) values
            # (zip stops at the shortest row).
            return "\n".join(map("\t".join(specs).__mod__, rows))
        except TypeError:
            pass
    return "\n".join([_format_row(row) for row in rows])


_UNESCAPE = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "\\": "\\"}


def _unescape(field: str) -> Optional[str]:
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            nxt = field[i + 1]
            out.append(_UNESCAPE.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Copy(Managed):
    """A running ``COPY … FROM STDIN`` (:meth:`write`, :meth:`write_row`) or
    ``COPY … TO STDOUT`` (iterate it for bytes, :meth:`read`, :meth:`rows`),
    from :meth:`Connection.copy` (psycopg 3's ``cursor.copy()`` shape).

    As a context manager: leaving the block normally ends a COPY FROM STDIN
    (the server's error for a bad row is raised there, with its SQLSTATE)
    and sets :attr:`rowcount`; leaving with an exception gives it up (rolled
    back). The connection is busy until then.
    """

    _what = "COPY"
    _closed_message = "the COPY is over (used after its with block?)"

    def __init__(self, ptr: int, copy_in: bool) -> None:
        self._copy_in = copy_in
        self._buffer = bytearray()
        # Rows written since the last flush: not yet formatted (as tuples of
        # hashable values, formatted a chunk at a time), then as text
        # (encoded together, once per flush) with its length.
        self._rows: List[Tuple[Any, ...]] = []
        self._lines: List[str] = []
        self._pending = 0
        self._finished = False
        self.rowcount = -1
        self._read_buf = create_string_buffer(_READ_SIZE) if not copy_in else None
        self._adopt(ptr)

    def _free(self, ptr: int) -> None:
        lib.sqlpool_copy_free(ptr)

    def __enter__(self) -> "Copy":
        self._handle()
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        try:
            if exc_type is None and self._copy_in and not self._finished:
                self.finish()
        finally:
            self.close()

    # -- COPY FROM STDIN ---------------------------------------------------

    def _need_in(self) -> None:
        if not self._copy_in:
            raise InterfaceError("this is a COPY TO STDOUT: read it, do not write")

    def _take_rows(self) -> None:
        """Formats the rows not yet formatted, in order."""
        rows = self._rows
        if rows:
            self._rows = []
            text = _format_rows(rows)
            self._lines.append(text)
            self._pending += len(text) + 1

    def _add_row(self, row: Sequence[Any]) -> bool:
        """Buffers one row; True when the buffer should be flushed."""
        if not self._copy_in:
            self._need_in()
        if type(row) is not tuple:
            row = tuple(row)
        try:
            hash(row)
        except Exception:
            # A mutable value (bytearray, list, writable memoryview) is
            # formatted now: the caller may change it once we return.
            self._take_rows()
            line = _format_row(row)
            self._lines.append(line)
            self._pending += len(line) + 1
        else:
            rows = self._rows
            rows.append(row)
            if len(rows) >= _ROWS_PER_CHUNK:
                self._take_rows()
        return self._pending >= _FLUSH_AT

    def _take_lines(self) -> None:
        """Moves the rows written so far into the byte buffer, in order."""
        self._take_rows()
        lines = self._lines
        if lines:
            lines.append("")
            self._buffer += "\n".join(lines).encode("utf-8")
            lines.clear()
            self._pending = 0

    def _flush(self) -> None:
        self._take_lines()
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            check(lib.sqlpool_copy_write(self._handle(), data, len(data)))

    def write(self, data: Union[bytes, bytearray, memoryview, str]) -> None:
        """Sends COPY data as is (any split; text is sent as UTF-8)."""
        self._need_in()
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._take_lines()
        self._buffer += data
        if len(self._buffer) >= _FLUSH_AT:
            self._flush()

    def write_row(self, row: Sequence[Any]) -> None:
        """Sends one row in COPY's text format (the statement's default
        format): ``None`` is NULL, bools ``t``/``f``, bytes as bytea hex,
        dates and times in ISO 8601, anything else as ``str()``.

        Rows are formatted a chunk at a time, at the latest by the next
        :meth:`write` or :meth:`finish`: a row of hashable values is kept
        as given until then (a mutable value, such as a ``bytearray``, is
        formatted at once)."""
        if self._add_row(row):
            self._flush()

    def finish(self) -> int:
        """Ends the COPY FROM STDIN; returns (and sets :attr:`rowcount` to)
        the rows copied. Raises the server's error for a bad row."""
        self._need_in()
        if self._finished:
            return self.rowcount
        try:
            self._flush()
        except BaseException:
            self._finished = True
            raise
        n = c_uint64()
        self._finished = True
        check(lib.sqlpool_copy_finish(self._handle(), byref(n)))
        self.rowcount = n.value
        return n.value

    # -- COPY TO STDOUT ----------------------------------------------------

    def read(self) -> bytes:
        """The next block of COPY TO STDOUT data; ``b""`` at the end."""
        if self._copy_in:
            raise InterfaceError("this is a COPY FROM STDIN: write it, do not read")
        if self._finished:
            return b""
        buf = self._read_buf
        assert buf is not None
        n = c_size_t()
        st = lib.sqlpool_copy_read(self._handle(), buf, _READ_SIZE, byref(n))
        if st == _lib.EMPTY:
            self._finished = True
            return b""
        check(st)
        return string_at(buf, n.value)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read()
            if not data:
                return
            yield data

    def rows(self) -> Iterator[Tuple[Optional[str], ...]]:
        """Rows of a text-format COPY TO STDOUT, as tuples of ``str`` (or
        ``None`` for NULL); no type conversion."""
        pending = b""
        for data in self:
            pending += data
            lines = pending.split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield tuple(_unescape(f) for f in line.decode("utf-8").split("\t"))
        if pending:
            yield tuple(_unescape(f) for f in pending.decode("utf-8").split("\t"))


def open_copy(conn_ptr: int, sql: str) -> Copy:
    """Starts a COPY (direction from the statement: ``FROM STDIN`` or
    ``TO STDOUT``)."""
    _require()
    from .pool import encode_sql

    words = " ".join(sql.upper().split())
    copy_in = "FROM STDIN" in words
    if not copy_in and "TO STDOUT" not in words:
        raise InterfaceError("conn.copy() takes COPY … FROM STDIN or COPY … TO STDOUT")
    out = c_void_p()
    fn = lib.sqlpool_conn_copy_in if copy_in else lib.sqlpool_conn_copy_out
    check(fn(conn_ptr, encode_sql(sql), byref(out)))
    assert out.value is not None
    return Copy(out.value, copy_in)


# ---------------------------------------------------------------------------
# LISTEN/NOTIFY


class Notify(NamedTuple):
    """One notification, as psycopg 3's ``Notify``."""

    channel: str
    payload: str
    pid: int


def read_notification(ptr: int) -> Notify:
    """A native notification as :class:`Notify` (frees it)."""
    info = NotificationInfo()
    try:
        check(lib.sqlpool_notification_get(ptr, byref(info)))
        channel = string_at(info.channel, info.channel_len).decode("utf-8") if info.channel_len else ""
        payload = string_at(info.payload, info.payload_len).decode("utf-8") if info.payload_len else ""
        return Notify(channel, payload, info.pid)
    finally:
        lib.sqlpool_notification_free(ptr)


def take_notification(conn_ptr: int, timeout_ms: int) -> Optional[Notify]:
    """The oldest notification, waiting up to ``timeout_ms`` (negative: no
    bound); ``None`` when none came."""
    _require()
    out = c_void_p()
    st = lib.sqlpool_conn_next_notification(conn_ptr, timeout_ms, byref(out))
    if st == _lib.EMPTY:
        return None
    check(st)
    assert out.value is not None
    return read_notification(out.value)


# Waits are made in slices so that Ctrl-C interrupts a long wait.
_SLICE_MS = 1000


def notifies(
    handle: Any, timeout: Optional[float] = None, stop_after: Optional[int] = None
) -> Iterator[Notify]:
    """Notifications as they arrive (the generator behind
    :meth:`Connection.notifies`): ends after ``timeout`` seconds in all, or
    after ``stop_after`` notifications; ``None`` for no bound."""
    deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
    taken = 0
    while stop_after is None or taken < stop_after:
        if deadline is None:
            wait = _SLICE_MS
        else:
            left = deadline - time.monotonic()
            wait = max(0, min(_SLICE_MS, int(left * 1000)))
        n = take_notification(handle(), wait)
        if n is not None:
            taken += 1
            yield n
        elif deadline is not None and time.monotonic() >= deadline:
            return


# ---------------------------------------------------------------------------
# asyncio: COPY (the library calls run in the loop's default executor)


class AsyncCopy:
    """:class:`Copy` for asyncio (``async with conn.copy(sql) as cp``):
    ``await cp.write(...)``, ``await cp.write_row(...)``, ``async for data in
    cp``, ``await cp.read()``. Rows are buffered in Python; the library calls
    run in the loop's default executor."""

    def __init__(self, copy: Copy) -> None:
        self._copy = copy

    @property
    def rowcount(self) -> int:
        return self._copy.rowcount

    async def _call(self, fn: Any, *args: Any) -> Any:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def write(self, data: Union[bytes, bytearray, memoryview, str]) -> None:
        c = self._copy
        c._need_in()
        c._take_lines()
        c._buffer += data.encode("utf-8") if isinstance(data, str) else data
        if len(c._buffer) >= _FLUSH_AT:
            await self._call(c._flush)

    async def write_row(self, row: Sequence[Any]) -> None:
        c = self._copy
        if c._add_row(row):
            await self._call(c._flush)

    async def finish(self) -> int:
        return await self._call(self._copy.finish)  # type: ignore[no-any-return]

    async def read(self) -> bytes:
        return await self._call(self._copy.read)  # type: ignore[no-any-return]

    def __aiter__(self) -> "AsyncCopy":
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data

    async def close(self) -> None:
        await self._call(self._copy.close)

    async def __aenter__(self) -> "AsyncCopy":
        return self

    async def __aexit__(self, exc_type: Any, *exc_info: Any) -> None:
        try:
            if exc_type is None and self._copy._copy_in and not self._copy._finished:
                await self.finish()
        finally:
            await self.close()
