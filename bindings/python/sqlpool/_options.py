"""Pool options: Python keyword arguments -> a native ``sqlpool_options``."""

from __future__ import annotations

import datetime as _dt
import enum
from ctypes import byref, c_void_p
from typing import Any, Callable, Dict, Optional, Tuple, Union

from ._lib import lib
from .errors import ProgrammingError, check

__all__ = ["Recycling", "IsolationLevel", "Duration", "build_options", "is_postgres_uri", "to_ms"]

Duration = Union[int, float, _dt.timedelta]


class Recycling(enum.IntEnum):
    """What a checkout does before handing a connection out."""

    FAST = 0
    """Nothing."""
    VERIFIED = 1
    """A cheap round trip (the default)."""
    CLEAN = 2
    """PostgreSQL ``DISCARD ALL``."""


class IsolationLevel(enum.IntEnum):
    """Transaction isolation levels (``SQLPOOL_ISOLATION_*``)."""

    DEFAULT = 0
    READ_UNCOMMITTED = 1
    READ_COMMITTED = 2
    REPEATABLE_READ = 3
    SERIALIZABLE = 4


def isolation_value(isolation: Union[None, int, str, IsolationLevel]) -> int:
    if isolation is None:
        return IsolationLevel.DEFAULT
    if isinstance(isolation, str):
        key = isolation.strip().upper().replace(" ", "_").replace("-", "_")
        try:
            return IsolationLevel[key]
        except KeyError:
            raise ProgrammingError(
                f"unknown isolation level {isolation!r} (expected one of "
                "'read uncommitted', 'read committed', 'repeatable read', 'serializable')"
            ) from None
    try:
        return IsolationLevel(int(isolation))
    except (ValueError, TypeError):
        raise ProgrammingError(f"unknown isolation level {isolation!r}") from None


def to_ms(name: str, value: Duration) -> int:
    """A duration in seconds (int, float or timedelta) as whole milliseconds."""
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProgrammingError(f"{name} must be a number of seconds or a timedelta, not {value!r}")
    else:
        seconds = float(value)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ProgrammingError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return int(round(seconds * 1000))


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ProgrammingError(f"{name} must be an int in 0..2**32-1, not {value!r}")
    return value


def _text(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise ProgrammingError(f"{name} must be a str, not {value!r}")
    if "\0" in value:
        raise ProgrammingError(f"{name} must not contain NUL characters")
    return value.encode("utf-8")


def _recycling(value: Any) -> int:
    if isinstance(value, str):
        try:
            return Recycling[value.strip().upper()]
        except KeyError:
            raise ProgrammingError(
                f"recycling must be 'fast', 'verified' or 'clean', not {value!r}"
            ) from None
    try:
        return Recycling(int(value))
    except (ValueError, TypeError):
        raise ProgrammingError(f"recycling must be 'fast', 'verified' or 'clean', not {value!r}") from None


def _port(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ProgrammingError(f"port must be an int in 1..65535, not {value!r}")
    return value


# keyword -> (setter, Python value -> C value)
_SETTERS: Dict[str, Tuple[Callable[..., int], Callable[[str, Any], Any]]] = {
    "min_size": (lib.sqlpool_options_set_min_size, _count),
    "max_size": (lib.sqlpool_options_set_max_size, _count),
    "max_waiting": (lib.sqlpool_options_set_max_waiting, _count),
    "conn_timeout": (lib.sqlpool_options_set_acquire_timeout_ms, to_ms),
    "connect_timeout": (lib.sqlpool_options_set_connect_timeout_ms, to_ms),
    "query_timeout": (lib.sqlpool_options_set_query_timeout_ms, to_ms),
    "idle_timeout": (lib.sqlpool_options_set_idle_timeout_ms, to_ms),
    "max_lifetime": (lib.sqlpool_options_set_max_lifetime_ms, to_ms),
    "check_interval": (lib.sqlpool_options_set_check_interval_ms, to_ms),
    "recycling": (lib.sqlpool_options_set_recycling, lambda n, v: _recycling(v)),
    "lazy": (lib.sqlpool_options_set_lazy, lambda n, v: 1 if v else 0),
    "leak_threshold": (lib.sqlpool_options_set_leak_threshold_ms, to_ms),
    "statement_cache_size": (lib.sqlpool_options_set_statement_cache_size, _count),
    "username": (lib.sqlpool_options_set_user, _text),
    "password": (lib.sqlpool_options_set_password, _text),
    "host": (lib.sqlpool_options_set_host, _text),
    "port": (lib.sqlpool_options_set_port, lambda n, v: _port(v)),
    "db_name": (lib.sqlpool_options_set_dbname, _text),
}

# Other libraries' names for the same options (PySQLXEngine, psqlpy, psycopg_pool).
ALIASES = {
    "acquire_timeout": "conn_timeout",
    "timeout": "conn_timeout",
    "max_connections": "max_size",
    "max_db_pool_size": "max_size",
    "conn_recycling_method": "recycling",
    "user": "username",
    "dbname": "db_name",
}


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.timedelta):
        return repr(value.total_seconds())
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, enum.Enum):
        return str(value.name).lower()
    return str(value)


def build_options(options: Dict[str, Any]) -> int:
    """A native options object for the given keyword options (None values
    are left unset). The caller frees it with ``sqlpool_options_free``."""
    h = c_void_p()
    check(lib.sqlpool_options_new(byref(h)))
    ptr = h.value
    assert ptr is not None
    try:
        for key, value in options.items():
            if value is None:
                continue
            key = ALIASES.get(key, key)
            setter = _SETTERS.get(key)
            if setter is not None:
                fn, convert = setter
                check(fn(ptr, convert(key, value)))
            else:
                check(lib.sqlpool_options_set(ptr, _text("option name", key),
                                              _text(key, _option_text(value))))
    except BaseException:
        lib.sqlpool_options_free(ptr)
        raise
    return ptr


def is_postgres_uri(uri: Optional[str]) -> bool:
    if uri is None:
        return True  # only PostgreSQL can be reached without a URI (host=..., db_name=...)
    return not uri.strip().lower().startswith(("sqlite:", "file:"))
