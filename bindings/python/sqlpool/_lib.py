"""Loading the native library and declaring every C function used.

One loader (:func:`load_library`): the ``SQLPOOL_LIBRARY`` environment
variable, then the copy inside this package, then the repository's build
output (``target/release``), with one :class:`ImportError` listing every
place tried. Every function has ``argtypes`` and ``restype`` declared;
handles are ``c_void_p`` and strings returned by the library are read with
``string_at`` (they are all borrowed: the library owns them).
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ._version import __version__

__all__ = ["lib", "library_path", "load_library", "HAS_ASYNC"]


def _library_file_name() -> str:
    if sys.platform == "darwin":
        return "libsqlpool.dylib"
    if sys.platform == "win32":
        return "sqlpool.dll"
    return "libsqlpool.so"


def _candidates() -> List[Tuple[str, Path]]:
    """Places to look for the library, in order, without the env override."""
    name = _library_file_name()
    here = Path(__file__).resolve().parent
    package_copy = here / name
    repo = here.parent.parent.parent  # bindings/python/sqlpool -> repository root
    builds = []
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        builds.append(("repository build (CARGO_TARGET_DIR)", Path(target) / "release" / name))
    builds.append(("repository build", repo / "target" / "release" / name))
    places = [("package copy", package_copy)] + builds
    # Inside a checkout, an in-place package copy can be older than the
    # library just rebuilt by cargo: the fresher repository build wins then.
    try:
        pkg_mtime = package_copy.stat().st_mtime
    except OSError:
        return places
    for i, (_, path) in enumerate(builds, start=1):
        try:
            if path.stat().st_mtime > pkg_mtime:
                places.insert(0, places.pop(i))
                break
        except OSError:
            continue
    return places


def load_library() -> Tuple[ctypes.CDLL, str]:
    """Loads the native library; raises one ImportError naming every place tried."""
    tried: List[str] = []
    override = os.environ.get("SQLPOOL_LIBRARY")
    if override:
        try:
            return ctypes.CDLL(override), override
        except OSError as e:
            raise ImportError(
                "sqlpool: cannot load the native library from SQLPOOL_LIBRARY="
                f"{override!r}: {e}"
            ) from None
    for label, path in _candidates():
        if not path.exists():
            tried.append(f"  {label}: {path} (not found)")
            continue
        try:
            return ctypes.CDLL(str(path)), str(path)
        except OSError as e:
            tried.append(f"  {label}: {path} ({e})")
    raise ImportError(
        "sqlpool: cannot find the native library (libsqlpool). Places tried:\n"
        + "\n".join(["  SQLPOOL_LIBRARY: (not set)"] + tried)
        + "\nInstall the package with `pip install ./bindings/python`, build it with "
        "`cargo build --release`, or set SQLPOOL_LIBRARY=/path/to/libsqlpool.so."
    )


lib, library_path = load_library()

# ---------------------------------------------------------------------------
# Types

status_t = c_uint32
handle_p = POINTER(c_void_p)  # out-parameter for a handle


class PoolStats(Structure):
    """``sqlpool_pool_stats`` (fields are only ever appended)."""

    _fields_ = [
        ("total", c_uint32),
        ("idle", c_uint32),
        ("in_use", c_uint32),
        ("waiting", c_uint32),
        ("pending", c_uint32),
        ("min_size", c_uint32),
        ("max_size", c_uint32),
        ("_reserved", c_uint32),
        ("created", c_uint64),
        ("closed", c_uint64),
        ("broken", c_uint64),
        ("acquires", c_uint64),
        ("acquire_timeouts", c_uint64),
        ("acquires_refused", c_uint64),
        ("wait_total_us", c_uint64),
        ("wait_max_us", c_uint64),
        ("leaks_reported", c_uint64),
        ("connect_errors", c_uint64),
    ]


class ColumnData(Structure):
    """``sqlpool_column_data``: one result column as arrays."""

    _fields_ = [
        ("kind", c_uint32),
        ("flags", c_uint32),
        ("rows", c_size_t),
        ("nulls", c_void_p),
        ("ints", c_void_p),
        ("doubles", c_void_p),
        ("offsets", c_void_p),
        ("bytes", c_void_p),
    ]


class ResultInfo(Structure):
    """``sqlpool_result_info``: a result's shape and column names in one call."""

    _fields_ = [
        ("rows", c_size_t),
        ("columns", c_size_t),
        ("names", c_void_p),
        ("names_len", c_size_t),
    ]


class ParamColumn(Structure):
    """``sqlpool_param_column``: one parameter's values for every set."""

    _fields_ = [
        ("kind", c_uint32),
        ("values", c_char_p),  # bytes, or an address (int)
        ("values_len", c_size_t),
        ("lengths", c_void_p),
        ("nulls", c_char_p),
    ]


class QueryInfo(Structure):
    """``sqlpool_query_info``: a result's shape and first row, packed."""

    _fields_ = [
        ("rows", c_size_t),
        ("columns", c_size_t),
        ("names", c_void_p),
        ("names_len", c_size_t),
        ("row_format", c_void_p),
        ("row_format_len", c_size_t),
        ("row_data", c_void_p),
        ("row_data_len", c_size_t),
        ("text_cells", c_uint64),
        ("null_cells", c_uint64),
    ]


class Completion(Structure):
    """``sqlpool_completion``: one finished asynchronous operation."""

    _fields_ = [
        ("op_id", c_uint64),
        ("user_data", c_void_p),
        ("status", c_uint32),
        ("kind", c_uint32),
        ("handle", c_void_p),
        ("rows_affected", c_uint64),
        ("error", c_void_p),
    ]


LOG_CALLBACK = ctypes.CFUNCTYPE(None, c_void_p, c_uint32, c_char_p, c_char_p)
# sqlpool_conn_callback: (user_data, conn) -> status
CONN_CALLBACK = ctypes.CFUNCTYPE(c_uint32, c_void_p, c_void_p)

# Status codes (SQLPOOL_*), values fixed by the ABI.
OK = 0
INVALID_ARGUMENT = 1
INVALID_UTF8 = 2
INVALID_URI = 3
INVALID_OPTION = 4
MISUSE = 5
OUT_OF_RANGE = 6
TYPE_MISMATCH = 7
NULL_VALUE = 8
POOL_TIMEOUT = 9
POOL_CLOSED = 10
POOL_EXHAUSTED = 11
CONNECTION_ERROR = 12
AUTH_ERROR = 13
DATABASE_ERROR = 14
CONSTRAINT_VIOLATION = 15
PARAMETER_ERROR = 16
UNSUPPORTED = 17
CANCELLED = 18
BUSY = 19
TRANSACTION_STATE = 20
BUFFER_TOO_SMALL = 21
EMPTY = 22
QUERY_TIMEOUT = 23
INTERNAL = 98
PANIC = 99

KIND_NULL = 0
KIND_BOOL = 1
KIND_INT64 = 2
KIND_DOUBLE = 3
KIND_TEXT = 4
KIND_BLOB = 5
KIND_MIXED = 6

COLUMN_NOT_UTF8 = 1

# Bytes of sqlpool_conn_query_into's header (SQLPOOL_QUERY_HEADER_SIZE).
QUERY_HEADER_SIZE = 56

COMPLETION_ACQUIRE = 1
COMPLETION_EXECUTE = 2
COMPLETION_QUERY = 3
COMPLETION_BATCH = 4

# ---------------------------------------------------------------------------
# Prototypes

_P = c_void_p  # any handle
_OUT = handle_p
_SIZE_OUT = POINTER(c_size_t)
_STR_OUT = POINTER(c_void_p)

_PROTOTYPES = {
    "sqlpool_version": (c_void_p, []),
    "sqlpool_status_name": (c_void_p, [c_uint32]),
    "sqlpool_last_error_message": (c_void_p, []),
    "sqlpool_last_error_sqlstate": (c_void_p, []),
    "sqlpool_last_error_status": (status_t, []),
    "sqlpool_last_error_native_code": (c_int64, []),
    "sqlpool_last_error_json": (c_void_p, []),
    "sqlpool_live_handles": (c_size_t, []),
    # options
    "sqlpool_options_new": (status_t, [_OUT]),
    "sqlpool_options_free": (status_t, [_P]),
    "sqlpool_options_set": (status_t, [_P, c_char_p, c_char_p]),
    "sqlpool_options_set_max_size": (status_t, [_P, c_uint32]),
    "sqlpool_options_set_min_size": (status_t, [_P, c_uint32]),
    "sqlpool_options_set_max_waiting": (status_t, [_P, c_uint32]),
    "sqlpool_options_set_acquire_timeout_ms": (status_t, [_P, c_uint64]),
    "sqlpool_options_set_connect_timeout_ms": (status_t, [_P, c_uint64]),
    "sqlpool_options_set_query_timeout_ms": (status_t, [_P, c_uint64]),
    "sqlpool_conn_set_query_timeout": (status_t, [_P, c_int64]),
    "sqlpool_options_set_idle_timeout_ms": (status_t, [_P, c_uint64]),
    "sqlpool_options_set_max_lifetime_ms": (status_t, [_P, c_uint64]),
    "sqlpool_options_set_check_interval_ms": (status_t, [_P, c_uint64]),
    "sqlpool_options_set_recycling": (status_t, [_P, c_uint32]),
    "sqlpool_options_set_lazy": (status_t, [_P, c_int32]),
    "sqlpool_options_set_leak_threshold_ms": (status_t, [_P, c_uint64]),
    "sqlpool_options_set_statement_cache_size": (status_t, [_P, c_uint32]),
    "sqlpool_options_set_user": (status_t, [_P, c_char_p]),
    "sqlpool_options_set_password": (status_t, [_P, c_char_p]),
    "sqlpool_options_set_host": (status_t, [_P, c_char_p]),
    "sqlpool_options_set_dbname": (status_t, [_P, c_char_p]),
    "sqlpool_options_set_port": (status_t, [_P, c_uint16]),
    "sqlpool_options_set_connect_callback": (status_t, [_P, CONN_CALLBACK, c_void_p]),
    "sqlpool_options_set_release_callback": (status_t, [_P, CONN_CALLBACK, c_void_p]),
    # pool
    "sqlpool_pool_open": (status_t, [c_char_p, _P, _OUT]),
    "sqlpool_pool_close": (status_t, [_P]),
    "sqlpool_pool_acquire": (status_t, [_P, c_int64, _OUT]),
    "sqlpool_pool_execute": (status_t, [_P, c_char_p, _P, POINTER(c_uint64)]),
    "sqlpool_pool_query": (status_t, [_P, c_char_p, _P, _OUT]),
    "sqlpool_pool_stats": (status_t, [_P, POINTER(PoolStats), c_size_t]),
    "sqlpool_pool_host_stats": (status_t, [_P, c_void_p, c_size_t, POINTER(c_size_t)]),
    "sqlpool_pool_resize": (status_t, [_P, c_uint32, c_uint32]),
    "sqlpool_pool_drain": (status_t, [_P]),
    # connection
    "sqlpool_conn_release": (status_t, [_P]),
    "sqlpool_conn_execute": (status_t, [_P, c_char_p, _P, POINTER(c_uint64)]),
    "sqlpool_conn_query": (status_t, [_P, c_char_p, _P, _OUT]),
    "sqlpool_conn_query_packed": (
        status_t,
        [_P, c_char_p, c_char_p, c_size_t, _OUT, POINTER(QueryInfo)],
    ),
    "sqlpool_conn_query_into": (
        status_t,
        [_P, c_char_p, c_char_p, c_size_t, c_void_p, c_size_t, _OUT],
    ),
    "sqlpool_conn_execute_script": (status_t, [_P, c_char_p]),
    "sqlpool_params_next_set": (status_t, [_P]),
    "sqlpool_conn_execute_many": (status_t, [_P, c_char_p, _P, POINTER(c_uint64)]),
    "sqlpool_conn_execute_many_packed": (
        status_t,
        [_P, c_char_p, c_char_p, c_size_t, POINTER(c_uint64)],
    ),
    "sqlpool_conn_execute_many_columns": (
        status_t,
        [_P, c_char_p, POINTER(ParamColumn), c_size_t, c_size_t, POINTER(c_uint64)],
    ),
    "sqlpool_conn_execute_batch": (
        status_t,
        [_P, c_char_p, POINTER(c_void_p), c_size_t, POINTER(c_uint64)],
    ),
    "sqlpool_conn_begin": (status_t, [_P, c_uint32, c_uint32]),
    "sqlpool_conn_commit": (status_t, [_P]),
    "sqlpool_conn_rollback": (status_t, [_P]),
    "sqlpool_conn_savepoint": (status_t, [_P, c_char_p]),
    "sqlpool_conn_release_savepoint": (status_t, [_P, c_char_p]),
    "sqlpool_conn_rollback_to_savepoint": (status_t, [_P, c_char_p]),
    # params
    "sqlpool_params_new": (status_t, [_OUT]),
    "sqlpool_params_free": (status_t, [_P]),
    "sqlpool_params_clear": (status_t, [_P]),
    "sqlpool_params_add_null": (status_t, [_P, c_char_p]),
    "sqlpool_params_add_bool": (status_t, [_P, c_char_p, c_int32]),
    "sqlpool_params_add_int64": (status_t, [_P, c_char_p, c_int64]),
    "sqlpool_params_add_double": (status_t, [_P, c_char_p, c_double]),
    "sqlpool_params_add_text": (status_t, [_P, c_char_p, c_char_p, c_size_t]),
    "sqlpool_params_add_blob": (status_t, [_P, c_char_p, c_char_p, c_size_t]),
    # results
    "sqlpool_result_column_data": (status_t, [_P, c_size_t, POINTER(ColumnData)]),
    "sqlpool_result_describe": (status_t, [_P, POINTER(ResultInfo)]),
    "sqlpool_result_free": (status_t, [_P]),
    "sqlpool_result_column_joined": (
        status_t,
        [_P, c_size_t, c_uint32, c_void_p, c_size_t, _SIZE_OUT],
    ),
    "sqlpool_result_row_count": (status_t, [_P, _SIZE_OUT]),
    "sqlpool_result_column_count": (status_t, [_P, _SIZE_OUT]),
    "sqlpool_result_column_name": (status_t, [_P, c_size_t, _STR_OUT, _SIZE_OUT]),
    "sqlpool_result_column_decltype": (status_t, [_P, c_size_t, _STR_OUT, _SIZE_OUT]),
    "sqlpool_result_column_index": (status_t, [_P, c_char_p, _SIZE_OUT]),
    "sqlpool_result_kind": (status_t, [_P, c_size_t, c_size_t, POINTER(c_uint32)]),
    "sqlpool_result_is_null": (status_t, [_P, c_size_t, c_size_t, POINTER(c_int32)]),
    "sqlpool_result_get_int64": (status_t, [_P, c_size_t, c_size_t, POINTER(c_int64)]),
    "sqlpool_result_get_double": (status_t, [_P, c_size_t, c_size_t, POINTER(c_double)]),
    "sqlpool_result_get_bool": (status_t, [_P, c_size_t, c_size_t, POINTER(c_int32)]),
    "sqlpool_result_get_text": (status_t, [_P, c_size_t, c_size_t, _STR_OUT, _SIZE_OUT]),
    "sqlpool_result_get_blob": (status_t, [_P, c_size_t, c_size_t, _STR_OUT, _SIZE_OUT]),
    "sqlpool_result_text_is_utf8": (status_t, [_P, c_size_t, c_size_t, POINTER(c_int32)]),
    # logging
    "sqlpool_set_logger": (status_t, [LOG_CALLBACK, c_uint32, c_void_p]),
    "sqlpool_set_sql_logging": (status_t, [c_int32, c_int32]),
}

# The asynchronous completion API (optional: older builds lack it).
_ASYNC_PROTOTYPES = {
    "sqlpool_queue_new": (status_t, [_OUT]),
    "sqlpool_queue_fd": (status_t, [_P, POINTER(c_int)]),
    "sqlpool_queue_pop": (status_t, [_P, POINTER(Completion)]),
    "sqlpool_queue_free": (status_t, [_P]),
    # The callback argument is always passed as NULL from Python.
    "sqlpool_pool_acquire_async": (
        status_t,
        [_P, c_int64, _P, c_void_p, c_void_p, POINTER(c_uint64)],
    ),
    "sqlpool_conn_execute_async": (
        status_t,
        [_P, c_char_p, _P, _P, c_void_p, c_void_p, POINTER(c_uint64)],
    ),
    "sqlpool_conn_query_async": (
        status_t,
        [_P, c_char_p, _P, _P, c_void_p, c_void_p, POINTER(c_uint64)],
    ),
    "sqlpool_conn_execute_batch_async": (
        status_t,
        [_P, c_char_p, POINTER(c_void_p), c_size_t, _P, c_void_p, c_void_p, POINTER(c_uint64)],
    ),
    "sqlpool_cancel": (status_t, [c_uint64]),
    "sqlpool_error_status": (status_t, [_P]),
    "sqlpool_error_message": (c_void_p, [_P]),
    "sqlpool_error_sqlstate": (c_void_p, [_P]),
    "sqlpool_error_detail": (c_void_p, [_P]),
    "sqlpool_error_json": (c_void_p, [_P]),
    "sqlpool_error_free": (status_t, [_P]),
}


def _declare(table: Dict[str, Tuple[Any, Any]], required: bool) -> bool:
    ok = True
    for name, (restype, argtypes) in table.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            if required:
                raise ImportError(
                    f"sqlpool: the native library at {library_path} lacks {name}; "
                    "it is too old for this package"
                ) from None
            ok = False
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    return ok


_declare(_PROTOTYPES, required=True)
HAS_ASYNC: bool = _declare(_ASYNC_PROTOTYPES, required=False)


def unchecked(name: str) -> Any:
    """``name`` as ``lib.name`` declares it, but without ``argtypes``: ctypes
    then converts no argument (a ``from_param`` call per argument costs about
    an eighth of a quick SQLite query). Only for hot call sites that pass,
    in every position, a ctypes instance of the declared type, ``bytes`` for
    a ``char *`` or None for NULL: a bare int would go as a C ``int``."""
    fn = lib[name]  # a new function object: lib.name keeps its argtypes
    fn.restype = getattr(lib, name).restype
    return fn


def cstr(ptr: Optional[int]) -> str:
    """A borrowed NUL-terminated UTF-8 string from the library, copied."""
    if not ptr:
        return ""
    return ctypes.string_at(ptr).decode("utf-8", "replace")


def native_version() -> str:
    return cstr(lib.sqlpool_version())


def _check_version() -> None:
    found = native_version()
    if found != __version__:
        raise ImportError(
            f"sqlpool: the native library at {library_path} is version {found!r}, "
            f"but this Python package is version {__version__!r}; rebuild the library "
            "(cargo build --release) or reinstall the package (pip install ./bindings/python)"
        )


_check_version()
