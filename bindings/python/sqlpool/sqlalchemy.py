"""SQLAlchemy dialects that use sqlpool's DB-API driver.

Installed as entry points, so once the package is installed::

    from sqlalchemy import create_engine
    create_engine("sqlite+sqlpool:///./app.db")
    create_engine("postgresql+sqlpool://user:password@localhost:5432/db")

or with a ``creator`` (any sqlpool URI and options)::

    create_engine("postgresql+sqlpool://",
                  creator=lambda: sqlpool.connect("postgresql://...", application_name="app"))

They are SQLAlchemy's own SQLite and PostgreSQL dialects (SQL, types and
reflection) over the :mod:`sqlpool.dbapi` connection, with ``named``
parameters and ``isolation_level="AUTOCOMMIT"`` mapped to
``connection.autocommit``. SQLAlchemy is not a dependency of sqlpool: this
module imports it, nothing else does.
"""

from __future__ import annotations

import types
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import DATE, DATETIME, TIME, SQLiteDialect

__all__ = ["SQLiteDialect_sqlpool", "PGDialect_sqlpool"]

_sqlite_version: Optional[Tuple[int, ...]] = None


def _bundled_sqlite_version() -> Tuple[int, ...]:
    """The version of the SQLite built into the library (asked once)."""
    global _sqlite_version
    if _sqlite_version is None:
        import sqlpool

        with sqlpool.Pool("sqlite::memory:", min_size=1, max_size=1) as pool:
            row = pool.query_first("SELECT sqlite_version()")
        text = str(row[0]) if row is not None else "3.0.0"
        _sqlite_version = tuple(int(x) for x in text.split(".") if x.isdigit())
    return _sqlite_version


def _dbapi_module(sqlite: bool) -> Any:
    """The ``sqlpool`` module, plus what SQLAlchemy's SQLite dialect reads
    from its driver module (``sqlite_version_info``)."""
    import sqlpool

    if not sqlite:
        return sqlpool
    mod = types.ModuleType("sqlpool")
    mod.__dict__.update({k: getattr(sqlpool, k) for k in dir(sqlpool) if not k.startswith("__")})
    version = _bundled_sqlite_version()
    mod.__dict__["sqlite_version_info"] = version
    mod.__dict__["sqlite_version"] = ".".join(map(str, version))
    return mod


class _AutocommitMixin:
    """``isolation_level="AUTOCOMMIT"`` as ``connection.autocommit``."""

    def get_isolation_level_values(self, dbapi_conn: Any) -> Any:
        return ["AUTOCOMMIT"] + list(super().get_isolation_level_values(dbapi_conn))  # type: ignore[misc]

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        if level == "AUTOCOMMIT":
            dbapi_connection.autocommit = True
            return
        dbapi_connection.rollback()
        dbapi_connection.autocommit = False
        super().set_isolation_level(dbapi_connection, level)  # type: ignore[misc]

    def get_isolation_level(self, dbapi_connection: Any) -> Any:
        if dbapi_connection.autocommit:
            return "AUTOCOMMIT"
        return super().get_isolation_level(dbapi_connection)  # type: ignore[misc]


def _passing_through(base_processor: Any) -> Any:
    """sqlpool already returns DATETIME/DATE/TIME columns as Python
    objects: parse only what is still text."""
    if base_processor is None:
        return None

    def process(value: Any) -> Any:
        return base_processor(value) if isinstance(value, str) else value

    return process


class _DateTime(DATETIME):
    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return _passing_through(super().result_processor(dialect, coltype))


class _Date(DATE):
    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return _passing_through(super().result_processor(dialect, coltype))


class _Time(TIME):
    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return _passing_through(super().result_processor(dialect, coltype))  # type: ignore[no-untyped-call]


class SQLiteDialect_sqlpool(_AutocommitMixin, SQLiteDialect):  # noqa: N801 - SQLAlchemy's naming
    """``sqlite+sqlpool:///path``: SQLite through sqlpool."""

    colspecs = dict(SQLiteDialect.colspecs)
    colspecs.update({sqltypes.DateTime: _DateTime, sqltypes.Date: _Date, sqltypes.Time: _Time})
    driver = "sqlpool"
    supports_statement_cache = True
    default_paramstyle = "named"

    @classmethod
    def import_dbapi(cls) -> Any:
        return _dbapi_module(sqlite=True)

    def create_connect_args(self, url: Any) -> Tuple[List[Any], Dict[str, Any]]:
        path = url.database or ":memory:"
        return [f"sqlite:{path}"], dict(url.query)


class PGDialect_sqlpool(_AutocommitMixin, PGDialect):  # noqa: N801
    """``postgresql+sqlpool://user:password@host:port/db``: PostgreSQL through sqlpool."""

    driver = "sqlpool"
    supports_statement_cache = True
    default_paramstyle = "named"

    @classmethod
    def import_dbapi(cls) -> Any:
        return _dbapi_module(sqlite=False)

    def create_connect_args(self, url: Any) -> Tuple[List[Any], Dict[str, Any]]:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return [dsn], {}
