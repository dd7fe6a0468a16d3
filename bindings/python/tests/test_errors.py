"""PEP 249 exceptions, mapped by status and SQLSTATE."""

from __future__ import annotations

import json
import pickle

import pytest

import sqlpool
from sqlpool.errors import class_for


def test_hierarchy():
    assert issubclass(sqlpool.InterfaceError, sqlpool.Error)
    assert issubclass(sqlpool.DatabaseError, sqlpool.Error)
    for cls in (sqlpool.DataError, sqlpool.OperationalError, sqlpool.IntegrityError,
                sqlpool.InternalError, sqlpool.ProgrammingError, sqlpool.NotSupportedError):
        assert issubclass(cls, sqlpool.DatabaseError)
    for cls in (sqlpool.PoolTimeout, sqlpool.PoolClosed, sqlpool.TooManyRequests):
        assert issubclass(cls, sqlpool.OperationalError)
    assert sqlpool.apilevel == "2.0" and sqlpool.paramstyle == "named"


def test_unique_violation_is_integrity_error(pool, table):
    pool.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    pool.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(sqlpool.IntegrityError) as info:
        pool.execute(f"INSERT INTO {table} VALUES (1)")
    e = info.value
    assert e.status == 15 and e.status_name == "SQLPOOL_CONSTRAINT_VIOLATION"
    assert e.sqlstate == "23505"
    assert e.message and str(e).startswith(e.message)
    if e.details.get("detail"):
        assert "\nDETAIL: " in str(e)
    assert json.loads(e.json)["sqlstate"] == "23505"


def test_not_null_violation(pool, table):
    pool.execute(f"CREATE TABLE {table} (id INT NOT NULL)")
    with pytest.raises(sqlpool.IntegrityError) as info:
        pool.execute(f"INSERT INTO {table} VALUES (NULL)")
    assert info.value.sqlstate == "23502"


def test_syntax_error_is_programming_error(pool):
    with pytest.raises(sqlpool.ProgrammingError) as info:
        pool.query("SELEC 1")
    assert info.value.sqlstate == "42601"


def test_missing_table(pool):
    with pytest.raises(sqlpool.ProgrammingError) as info:
        pool.query("SELECT * FROM no_such_table_here")
    assert info.value.sqlstate == "42P01"


def test_pg_data_error_and_details(pg_uri):
    with sqlpool.Pool(pg_uri, max_size=1) as pool:
        with pytest.raises(sqlpool.DataError) as info:
            pool.query("SELECT 1/0")
        assert info.value.sqlstate == "22012"
        with pytest.raises(sqlpool.ProgrammingError) as info:
            pool.query("SELECT nope FROM (SELECT 1 AS x) s")
        assert info.value.details.get("position")
        # The server's own statement_timeout (a session setting, so on one
        # connection: the pool resets changed sessions at release).
        with pool.connection() as conn, pytest.raises(sqlpool.OperationalError) as info:
            conn.execute("SET statement_timeout = 50")
            conn.query("SELECT pg_sleep(1)")
        assert info.value.sqlstate == "57014"
        # The client-side bound.
        with pytest.raises(sqlpool.QueryTimeout) as qt:
            with pool.connection() as conn:
                conn.set_query_timeout(0.05)
                conn.query("SELECT pg_sleep(2)")
        assert qt.value.sqlstate == "57014"
        assert pool.query("SELECT 1 AS one")[0].one == 1


def test_sqlite_busy_is_operational(sqlite_uri):
    with sqlpool.Pool(sqlite_uri, max_size=2, busy_timeout="0") as pool:
        pool.execute("CREATE TABLE b (x INT)")
        with pool.connection() as a, pool.connection() as b:
            a.begin()
            a.execute("INSERT INTO b VALUES (1)")
            with pytest.raises(sqlpool.OperationalError) as info:
                b.begin()
            assert info.value.sqlstate == "55P03"
            a.rollback()


def test_error_json_format(pool):
    sqlpool.LOG_CONFIG.SQLPOOL_ERROR_JSON_FMT = True
    try:
        with pytest.raises(sqlpool.ProgrammingError) as info:
            pool.query("SELEC 1")
        doc = json.loads(str(info.value))
        assert doc["status"] == "SQLPOOL_DATABASE_ERROR" and doc["sqlstate"] == "42601"
    finally:
        sqlpool.LOG_CONFIG.SQLPOOL_ERROR_JSON_FMT = False
    with pytest.raises(sqlpool.ProgrammingError) as info:
        pool.query("SELEC 1")
    assert not str(info.value).startswith("{")


def test_pickle_keeps_fields(pool):
    with pytest.raises(sqlpool.ProgrammingError) as info:
        pool.query("SELEC 1")
    e = pickle.loads(pickle.dumps(info.value))
    assert type(e) is type(info.value) and e.sqlstate == "42601" and e.status == info.value.status


def test_class_for():
    assert class_for(14, "23505") is sqlpool.IntegrityError
    assert class_for(14, "22003") is sqlpool.DataError
    assert class_for(14, "42P01") is sqlpool.ProgrammingError
    assert class_for(14, "08006") is sqlpool.OperationalError
    assert class_for(14, "57014") is sqlpool.OperationalError
    assert class_for(14, "0A000") is sqlpool.NotSupportedError
    assert class_for(14, "XX000") is sqlpool.InternalError
    assert class_for(14, "") is sqlpool.DatabaseError
    assert class_for(5, "") is sqlpool.InterfaceError  # MISUSE
    assert class_for(1, "") is sqlpool.InterfaceError  # INVALID_ARGUMENT
    assert class_for(1, "42601") is sqlpool.ProgrammingError  # e.g. two statements in one
    assert class_for(16, "") is sqlpool.ProgrammingError  # PARAMETER_ERROR
    assert class_for(9, "") is sqlpool.PoolTimeout
    assert class_for(10, "") is sqlpool.PoolClosed
    assert class_for(11, "") is sqlpool.TooManyRequests
    assert class_for(12, "") is sqlpool.OperationalError
    assert class_for(13, "28P01") is sqlpool.OperationalError
    assert class_for(17, "") is sqlpool.NotSupportedError
    assert class_for(99, "") is sqlpool.InternalError


def test_two_statements_in_execute(pool):
    with pytest.raises(sqlpool.ProgrammingError):
        pool.execute("SELECT 1; SELECT 2")


def test_hint_is_not_repeated_in_the_message(uri):
    with sqlpool.Pool(uri, min_size=1, max_size=1) as pool:
        with pytest.raises(sqlpool.ProgrammingError) as info:
            pool.execute("SELECT %s", [1])
    text = str(info.value)
    assert text.count("placeholders here are") == 1, text
    assert info.value.details.get("hint")  # still available, structured


def test_detail_and_hint_lines_when_not_in_the_message():
    e = sqlpool.DatabaseError("duplicate key", json='{"message": "duplicate key", "detail": "Key (id)=(1) exists.", "hint": "use another id"}')
    assert str(e) == "duplicate key\nDETAIL: Key (id)=(1) exists.\nHINT: use another id"


def test_commit_and_rollback_outside_a_transaction_match_the_c_api(uri):
    """Whatever sqlpool_conn_commit/rollback return with no transaction open
    (SQLite: SQLPOOL_TRANSACTION_STATE; PostgreSQL: what the C side says),
    Connection.commit()/rollback() report the same status."""
    from ctypes import byref, c_void_p

    from sqlpool._lib import lib

    with sqlpool.Pool(uri, min_size=1, max_size=1) as pool:
        for name in ("commit", "rollback"):
            out = c_void_p()
            assert lib.sqlpool_pool_acquire(pool._handle(), -1, byref(out)) == 0
            c_status = getattr(lib, f"sqlpool_conn_{name}")(out.value)
            assert lib.sqlpool_conn_release(out.value) == 0
            with pool.connection() as conn:
                if c_status == 0:
                    getattr(conn, name)()
                else:
                    with pytest.raises(sqlpool.Error) as info:
                        getattr(conn, name)()
                    assert info.value.status == c_status
            if uri.startswith("sqlite:"):
                assert c_status == 20  # SQLPOOL_TRANSACTION_STATE
