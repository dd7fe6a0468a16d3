"""SQLite TEXT that is not UTF-8: a clear DataError as str (as the stdlib
``sqlite3`` raises), its bytes unchanged with ``text_factory = bytes``."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

import sqlpool

BAD = "SELECT CAST(x'41ff42' AS TEXT) AS t"
# Many rows, so query_first reads one cell instead of whole columns.
BAD_MANY = "SELECT CAST(x'41ff42' AS TEXT) AS t FROM (SELECT 1 UNION ALL SELECT 2) a, " + ", ".join(
    f"(SELECT 1 UNION ALL SELECT 2) x{i}" for i in range(4)
)


def test_stdlib_sqlite3_agrees_that_this_is_an_error() -> None:
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(":memory:").execute(BAD).fetchall()


def test_text_not_utf8_raises_data_error(sqlite_uri: str) -> None:
    with sqlpool.Pool(sqlite_uri) as pool:
        for read in (pool.query, pool.query_first, pool.query_as_dict):
            with pytest.raises(sqlpool.DataError, match="not valid UTF-8"):
                read(BAD)
        with pytest.raises(sqlpool.DataError, match="not valid UTF-8"):
            pool.query_first(BAD_MANY)
        # A column of mixed kinds is read cell by cell: the same error.
        with pytest.raises(sqlpool.DataError, match=r"row 1 .*not valid UTF-8"):
            pool.query(f"SELECT 1 UNION ALL {BAD}")
        # Valid UTF-8 is still str, and the pool stays usable.
        assert pool.query_first("SELECT 'héllo'")[0] == "héllo"


def test_text_factory_bytes_returns_the_stored_bytes(sqlite_uri: str) -> None:
    with sqlpool.Pool(sqlite_uri) as pool:
        pool.text_factory = bytes
        assert pool.query(BAD)[0][0] == b"A\xffB"
        assert pool.query_first(BAD_MANY)[0] == b"A\xffB"
        assert pool.query(f"SELECT 1 UNION ALL {BAD}")[1][0] == b"A\xffB"
        assert pool.query_first("SELECT 'héllo'")[0] == "héllo".encode()
        with pool.connection() as conn:
            assert conn.query(BAD)[0].t == b"A\xffB"
        pool.text_factory = str
        assert pool.query_first("SELECT 'héllo'")[0] == "héllo"
        with pytest.raises(sqlpool.ProgrammingError):
            pool.text_factory = lambda b: b  # type: ignore[assignment]


def test_dbapi_text_factory(sqlite_uri: str) -> None:
    conn = sqlpool.connect(sqlite_uri)
    try:
        with pytest.raises(sqlpool.DataError):
            conn.execute(BAD).fetchall()
        conn.text_factory = bytes
        assert conn.execute(BAD).fetchall() == [(b"A\xffB",)]
    finally:
        conn.close()


def test_async_text_not_utf8(sqlite_uri: str) -> None:
    async def run() -> None:
        async with sqlpool.AsyncPool(sqlite_uri) as pool:
            async with pool.connection() as conn:
                with pytest.raises(sqlpool.DataError):
                    await conn.query(BAD)
                pool.text_factory = bytes
                assert (await conn.query(BAD))[0][0] == b"A\xffB"

    asyncio.run(run())
