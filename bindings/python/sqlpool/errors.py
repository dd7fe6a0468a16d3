"""PEP 249 exceptions, mapped from sqlpool status codes and SQLSTATEs.

Hierarchy::

    Exception
     └── Error
          ├── InterfaceError          misuse of the API (closed handle, fork, ...)
          └── DatabaseError
               ├── DataError          SQLSTATE class 22
               ├── OperationalError   connection lost, 08/53/57/..., cancelled
               │    ├── PoolTimeout   no connection within the acquire timeout
               │    ├── PoolClosed    the pool is closed
               │    └── TooManyRequests  ``max_waiting`` callers already wait
               ├── IntegrityError     SQLSTATE class 23 (unique, foreign key, ...)
               ├── InternalError      library bugs, SQLSTATE XX/F0/P0/...
               ├── ProgrammingError   bad SQL (42), bad parameters, bad options
               └── NotSupportedError  SQLSTATE 0A, unsupported operations

Every exception raised from a failed library call carries ``status`` (int),
``status_name`` (``"SQLPOOL_POOL_TIMEOUT"``), ``sqlstate`` (``"23505"`` or
``""``), ``message``, ``native_code`` (SQLite's extended result code) and
``json`` (the library's JSON description). ``str(exc)`` is the message, or
the JSON when ``LOG_CONFIG.SQLPOOL_ERROR_JSON_FMT`` is true.
"""

from __future__ import annotations

import json as _json
from typing import Any, Dict, Optional, Type

from . import _lib
from ._lib import lib

__all__ = [
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
    "QueryTimeout",
    "PoolClosed",
    "TooManyRequests",
]

# Set by LOG_CONFIG.SQLPOOL_ERROR_JSON_FMT.
_json_format = False


class Warning(Exception):  # noqa: A001 - PEP 249 name
    """PEP 249 ``Warning`` (never raised by sqlpool; present for compatibility)."""


class Error(Exception):
    """Base class of every sqlpool error.

    Attributes:
        status: the sqlpool status code (``SQLPOOL_*``); for an error raised
            by the Python layer itself, the status the library uses for the
            same kind of failure (e.g. ``SQLPOOL_MISUSE`` for InterfaceError).
        status_name: the symbolic name of ``status``.
        sqlstate: the SQLSTATE (PostgreSQL's, or mapped from SQLite's code), or "".
        message: the human-readable message.
        native_code: SQLite's extended result code, else 0.
        json: the error as a JSON object text (``sqlpool_last_error_json``).
    """

    _default_status = 98

    status: int
    status_name: str
    sqlstate: str
    message: str
    native_code: int
    json: str

    def __init__(
        self,
        message: str = "",
        *,
        status: Optional[int] = None,
        status_name: Optional[str] = None,
        sqlstate: str = "",
        native_code: int = 0,
        json: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        if status is None:
            # Raised by the binding itself: the status the library gives the
            # same kind of failure.
            status = self._default_status
        self.message = message
        self.status = status
        self.status_name = status_name if status_name is not None else _status_name(status)
        self.sqlstate = sqlstate
        self.native_code = native_code
        if json is None:
            json = _json.dumps(
                {
                    "status": self.status_name,
                    "code": status,
                    "message": message,
                    "sqlstate": sqlstate,
                    "native_code": native_code,
                }
            )
        self.json = json

    @property
    def details(self) -> Dict[str, Any]:
        """The JSON description as a dict (``detail``, ``hint``, ``position`` when given)."""
        try:
            value = _json.loads(self.json)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def diag(self) -> Dict[str, Any]:
        """Alias of :attr:`details` (psycopg calls it ``diag``)."""
        return self.details

    def __str__(self) -> str:
        if _json_format:
            return self.json
        text = self.message
        details = self.details
        # As psql and psycopg do: the server's DETAIL and HINT lines.
        for key in ("detail", "hint"):
            value = details.get(key)
            if value and not _already_said(text, str(value)):
                text += f"\n{key.upper()}: {value}"
        return text

    def __reduce__(self) -> Any:
        return (
            _rebuild,
            (
                type(self),
                self.message,
                self.status,
                self.status_name,
                self.sqlstate,
                self.native_code,
                self.json,
            ),
        )


def _already_said(message: str, text: str) -> bool:
    """Whether the message already carries this DETAIL/HINT (the library
    may put a short form of a hint in the message itself)."""
    if text in message:
        return True
    core = text.split(" (", 1)[0].strip()
    return len(core) >= 12 and core in message


def _rebuild(cls: Type[Error], message: str, status: int, name: str, sqlstate: str,
             native: int, json: str) -> Error:
    return cls(message, status=status, status_name=name, sqlstate=sqlstate,
               native_code=native, json=json)


class InterfaceError(Error):
    """The API was used wrongly: a closed pool or connection, a handle used
    after ``os.fork()``, a connection used by two threads at once."""
    _default_status = 5


class DatabaseError(Error):
    """An error reported by, or about, the database."""
    _default_status = 14


class DataError(DatabaseError):
    """Bad data: SQLSTATE class 22 (division by zero, out of range, bad format)."""
    _default_status = 16


class OperationalError(DatabaseError):
    """The database could not be reached, the connection was lost, a query
    was cancelled, or resources ran out (SQLSTATE 08, 53, 57, 40, ...)."""
    _default_status = 12


class IntegrityError(DatabaseError):
    """A constraint was violated (SQLSTATE class 23): unique, foreign key,
    not null, check."""
    _default_status = 15


class InternalError(DatabaseError):
    """An internal error of the database or of the library."""
    _default_status = 98


class ProgrammingError(DatabaseError):
    """Bad SQL (SQLSTATE 42), wrong parameters, invalid URI or option."""
    _default_status = 16


class NotSupportedError(DatabaseError):
    """The operation is not supported by this database or build."""
    _default_status = 17


class PoolTimeout(OperationalError):
    """No connection became available within the acquire timeout."""
    _default_status = 9


class QueryTimeout(OperationalError):
    """A statement ran past its ``query_timeout`` and was cancelled (or its
    connection closed when the server did not answer)."""
    _default_status = 23


class PoolClosed(OperationalError):
    """The pool is closed (or closing)."""
    _default_status = 10


class TooManyRequests(OperationalError):
    """Too many callers are already waiting for a connection (``max_waiting``)."""
    _default_status = 11


_BY_STATUS: Dict[int, Type[Error]] = {
    _lib.INVALID_ARGUMENT: InterfaceError,
    _lib.INVALID_UTF8: DataError,
    _lib.INVALID_URI: ProgrammingError,
    _lib.INVALID_OPTION: ProgrammingError,
    _lib.MISUSE: InterfaceError,
    _lib.OUT_OF_RANGE: InterfaceError,
    _lib.TYPE_MISMATCH: InterfaceError,
    _lib.NULL_VALUE: InterfaceError,
    _lib.POOL_TIMEOUT: PoolTimeout,
    _lib.QUERY_TIMEOUT: QueryTimeout,
    _lib.POOL_CLOSED: PoolClosed,
    _lib.POOL_EXHAUSTED: TooManyRequests,
    _lib.CONNECTION_ERROR: OperationalError,
    _lib.AUTH_ERROR: OperationalError,
    _lib.DATABASE_ERROR: DatabaseError,
    _lib.CONSTRAINT_VIOLATION: IntegrityError,
    _lib.PARAMETER_ERROR: ProgrammingError,
    _lib.UNSUPPORTED: NotSupportedError,
    _lib.CANCELLED: OperationalError,
    _lib.BUSY: InterfaceError,
    _lib.TRANSACTION_STATE: ProgrammingError,
    _lib.BUFFER_TOO_SMALL: InterfaceError,
    _lib.INTERNAL: InternalError,
    _lib.PANIC: InternalError,
}

# Statuses whose class is refined by the SQLSTATE when there is one.
_REFINED_BY_SQLSTATE = {
    _lib.DATABASE_ERROR,
    _lib.CONSTRAINT_VIOLATION,
    _lib.INVALID_ARGUMENT,
    _lib.CONNECTION_ERROR,
    _lib.UNSUPPORTED,
    _lib.CANCELLED,
}

# SQLSTATE class (first two characters) -> exception, as psycopg maps them.
_BY_SQLSTATE_CLASS: Dict[str, Type[Error]] = {
    "0A": NotSupportedError,
    "08": OperationalError,
    "20": ProgrammingError,
    "21": ProgrammingError,
    "22": DataError,
    "23": IntegrityError,
    "24": InternalError,
    "25": InternalError,
    "26": OperationalError,
    "27": OperationalError,
    "28": OperationalError,
    "2B": InternalError,
    "2D": InternalError,
    "2F": InternalError,
    "34": OperationalError,
    "38": InternalError,
    "39": InternalError,
    "3B": InternalError,
    "3D": ProgrammingError,
    "3F": ProgrammingError,
    "40": OperationalError,
    "42": ProgrammingError,
    "44": ProgrammingError,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
    "F0": InternalError,
    "HV": OperationalError,
    "P0": InternalError,
    "XX": InternalError,
}


def _status_name(status: int) -> str:
    if status == 0:
        return "SQLPOOL_OK"
    return _lib.cstr(lib.sqlpool_status_name(status))


def class_for(status: int, sqlstate: str) -> Type[Error]:
    """The exception class for a status code and SQLSTATE."""
    if sqlstate and status in _REFINED_BY_SQLSTATE:
        cls = _BY_SQLSTATE_CLASS.get(sqlstate[:2].upper())
        if cls is not None:
            return cls
    return _BY_STATUS.get(status, DatabaseError)


def last_error(status: int) -> Error:
    """An exception describing the calling thread's last library failure.

    Must be called on the thread that made the failing call, before any
    other failing call on it.
    """
    message = _lib.cstr(lib.sqlpool_last_error_message())
    sqlstate = _lib.cstr(lib.sqlpool_last_error_sqlstate())
    recorded = lib.sqlpool_last_error_status()
    native = lib.sqlpool_last_error_native_code()
    js = _lib.cstr(lib.sqlpool_last_error_json())
    json_text: Optional[str] = js
    if recorded != status:
        # The thread's record describes another failure (should not happen).
        message, sqlstate, native, json_text = "", "", 0, None
    if not message:
        message = _status_name(status)
    cls = class_for(status, sqlstate)
    return cls(message, status=status, sqlstate=sqlstate, native_code=native, json=json_text)


def check(status: int) -> None:
    """Raises the mapped exception when ``status`` is not SQLPOOL_OK."""
    if status:
        raise last_error(status)
