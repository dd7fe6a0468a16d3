"""Issue 14 (9): ``configure`` runs on each new connection, ``reset`` on each
connection given back; a failure discards the connection (psycopg_pool's
names and meanings). On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

import pytest

import sqlpool
from sqlpool.aio import AsyncPool


def _setting(conn: sqlpool.Connection, is_pg: bool) -> str:
    sql = "SHOW application_name" if is_pg else "SELECT cache_size FROM pragma_cache_size"
    return str(conn.query_first(sql)[0])


def _configure_sql(is_pg: bool) -> str:
    return "SET application_name = 'configured'" if is_pg else "PRAGMA cache_size = -4321"


def _expected(is_pg: bool) -> str:
    return "configured" if is_pg else "-4321"


def test_configure_prepares_each_new_connection(uri: str, is_pg: bool) -> None:
    seen = []

    def configure(conn: sqlpool.Connection) -> None:
        seen.append(threading.current_thread().name)
        conn.execute(_configure_sql(is_pg))

    with sqlpool.Pool(uri, min_size=1, max_size=2, configure=configure) as pool:
        assert len(seen) == 1, "the eager first connection"
        with pool.connection() as a, pool.connection() as b:
            assert _setting(a, is_pg) == _expected(is_pg)
            assert _setting(b, is_pg) == _expected(is_pg)
        assert len(seen) == 2
        assert pool.stats()["created"] == 2


def test_reset_sees_the_borrower_and_false_discards(uri: str, is_pg: bool) -> None:
    calls = []
    keep = [True]

    def reset(conn: sqlpool.Connection) -> bool:
        calls.append(conn.query_first("SELECT 1")[0])
        return keep[0]

    with sqlpool.Pool(uri, min_size=1, max_size=1, reset=reset) as pool:
        with pool.connection():
            pass
        with pool.connection():
            pass
        assert calls == [1, 1]
        assert pool.stats()["created"] == 1
        keep[0] = False
        with pool.connection():
            pass
        keep[0] = True
        with pool.connection():
            pass
        assert pool.stats()["created"] == 2


def test_the_lent_connection_dies_with_the_callback(sqlite_uri: str) -> None:
    lent = []

    def configure(conn: sqlpool.Connection) -> None:
        lent.append(conn)
        conn.close()  # does nothing to the pool's connection

    with sqlpool.Pool(sqlite_uri, configure=configure) as pool:
        with pool.connection() as conn:
            assert conn.query_first("SELECT 1")[0] == 1
    with pytest.raises(sqlpool.InterfaceError, match="configure/reset"):
        lent[0].query_first("SELECT 1")


def test_a_failing_configure_is_the_open_error_with_its_cause(uri: str) -> None:
    class Refused(Exception):
        pass

    def configure(conn: sqlpool.Connection) -> None:
        raise Refused("not this one")

    with pytest.raises(sqlpool.OperationalError, match="connect callback") as info:
        sqlpool.Pool(uri, configure=configure)
    assert isinstance(info.value.__cause__, Refused)

    pool = sqlpool.Pool(uri, configure=configure, lazy=True)
    try:
        with pytest.raises(sqlpool.Error, match="connect callback") as info:
            pool.connection(timeout=0.3)
        assert isinstance(info.value.__cause__, Refused)
    finally:
        pool.close()


def test_a_failing_statement_in_configure_is_reported_as_itself(uri: str) -> None:
    def configure(conn: sqlpool.Connection) -> None:
        conn.execute("NOT SQL")

    with pytest.raises(sqlpool.ProgrammingError, match="connect callback"):
        sqlpool.Pool(uri, configure=configure)


def test_coroutine_callbacks_are_refused(sqlite_uri: str) -> None:
    async def configure(conn: sqlpool.Connection) -> None:
        pass

    with pytest.raises(sqlpool.ProgrammingError, match="plain function"):
        sqlpool.Pool(sqlite_uri, configure=configure)


def test_async_pool_runs_configure(uri: str, is_pg: bool) -> None:
    def configure(conn: sqlpool.Connection) -> None:
        conn.execute(_configure_sql(is_pg))

    async def main() -> str:
        async with AsyncPool(uri, configure=configure) as pool:
            async with pool.connection() as conn:
                sql = "SHOW application_name" if is_pg else "SELECT cache_size FROM pragma_cache_size"
                return str((await conn.query_first(sql))[0])

    assert asyncio.run(main()) == _expected(is_pg)
