"""The blocking API on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

import sqlpool
from conftest import id_column


def make_table(pool: sqlpool.Pool, table: str, is_pg: bool) -> None:
    pool.execute(f"CREATE TABLE {table} ({id_column(is_pg)}, name TEXT, score FLOAT)")


def test_execute_query_named_and_positional(pool, table, is_pg):
    make_table(pool, table, is_pg)
    with pool.connection() as conn:
        assert conn.execute(f"INSERT INTO {table} (name, score) VALUES (:name, :score)",
                            {"name": "a", "score": 1.5}) == 1
        assert conn.execute(f"INSERT INTO {table} (name, score) VALUES ($1, $2)", ["b", 2.5]) == 1
        assert conn.execute(f"INSERT INTO {table} (name, score) VALUES ($1, $2)", ("c", None)) == 1
        rows = conn.query(f"SELECT id, name, score FROM {table} ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, "a", 1.5), (2, "b", 2.5), (3, "c", None)]
        assert conn.query_first(f"SELECT name FROM {table} WHERE id = :id", {"id": 2}).name == "b"
        assert conn.query_first(f"SELECT name FROM {table} WHERE id = :id", {"id": 99}) is None
        assert conn.query_as_dict(f"SELECT id, name FROM {table} ORDER BY id LIMIT 2") == [
            {"id": 1, "name": "a"},
            {"id": 2, "name": "b"},
        ]
        assert conn.execute(f"UPDATE {table} SET score = 0 WHERE id > $1", [1]) == 2
        assert conn.query(f"SELECT * FROM {table} WHERE id > $1", [100]) == []


def test_question_mark_placeholders_sqlite(sqlite_uri):
    with sqlpool.Pool(sqlite_uri) as pool:
        assert pool.query_first("SELECT ? + ? AS s", [1, 2]).s == 3


def test_row_api(pool):
    sql = ("SELECT 1 AS id, CAST(1.2 AS DOUBLE PRECISION) AS x_position, "
           "CAST(2.3 AS DOUBLE PRECISION) AS y_position, 'z' AS name")
    row = pool.query_first(sql)
    assert isinstance(row, sqlpool.Row) and isinstance(row, tuple)
    assert row.id == 1 and row["x_position"] == pytest.approx(1.2) and row[3] == "z"
    assert row[-1] == "z" and row[1:3] == (row.x_position, row.y_position)
    assert list(row) == [1, row.x_position, row.y_position, "z"]
    assert len(row) == 4
    assert row == (1, row[1], row[2], "z")
    assert row == pool.query_first(sql)
    assert dict(row) == row.to_dict() == {"id": 1, "x_position": row[1], "y_position": row[2], "name": "z"}
    assert row.keys() == ("id", "x_position", "y_position", "name")
    assert row.get("nope", 7) == 7
    with pytest.raises(AttributeError):
        row.nope
    with pytest.raises(KeyError):
        row["nope"]
    with pytest.raises(IndexError):
        row[9]
    r = pool.query_first("SELECT 1 AS id, CAST(1.5 AS DOUBLE PRECISION) AS x_position, "
                         "CAST(2.25 AS DOUBLE PRECISION) AS y_position")
    assert repr(r) == "BaseModel(id=1, x_position=1.5, y_position=2.25)"
    # rows of one result share their class (one column map)
    rows = pool.query("SELECT 1 AS a UNION ALL SELECT 2")
    assert type(rows[0]) is type(rows[1])
    # pickling
    import pickle

    assert pickle.loads(pickle.dumps(r)).to_dict() == r.to_dict()


def test_duplicate_column_names(pool):
    row = pool.query_first("SELECT 1 AS a, 2 AS a, 3 AS b")
    assert row.a == 1 and row["a"] == 1 and row[1] == 2
    assert row.to_dict() == {"a": 1, "b": 3}
    assert pool.query_as_dict("SELECT 1 AS a, 2 AS a") == [{"a": 1}]


def test_pool_level_operations(pool, table, is_pg):
    make_table(pool, table, is_pg)
    assert pool.execute(f"INSERT INTO {table} (name) VALUES (:n)", {"n": "x"}) == 1
    assert pool.execute_many(f"INSERT INTO {table} (name) VALUES (:n)", [{"n": "y"}, {"n": "z"}]) == 2
    assert [r.name for r in pool.query(f"SELECT name FROM {table} ORDER BY id")] == ["x", "y", "z"]
    assert pool.query_first(f"SELECT count(*) AS n FROM {table}").n == 3
    assert pool.query_as_dict(f"SELECT name FROM {table} WHERE name = $1", ["y"]) == [{"name": "y"}]


def test_execute_many_is_all_or_nothing(pool, table, is_pg):
    pool.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    with pytest.raises(sqlpool.IntegrityError):
        pool.execute_many(f"INSERT INTO {table} (id) VALUES ($1)", [[1], [2], [1]])
    assert pool.query_first(f"SELECT count(*) AS n FROM {table}").n == 0
    assert pool.execute_many(f"INSERT INTO {table} (id) VALUES ($1)", ([i] for i in range(100))) == 100
    assert pool.execute_many(f"INSERT INTO {table} (id) VALUES ($1)", []) == 0


def test_execute_script(pool, table):
    with pool.connection() as conn:
        conn.execute_script(
            f"CREATE TABLE {table} (id INT); INSERT INTO {table} VALUES (1); INSERT INTO {table} VALUES (2);"
        )
        assert conn.query_first(f"SELECT sum(id) AS s FROM {table}").s == 3


def test_transactions(pool, table):
    pool.execute(f"CREATE TABLE {table} (id INT)")
    with pool.connection() as conn:
        with conn.transaction():
            conn.execute(f"INSERT INTO {table} VALUES (1)")
            assert conn.in_transaction
        assert not conn.in_transaction
        with pytest.raises(ZeroDivisionError):
            with conn.transaction():
                conn.execute(f"INSERT INTO {table} VALUES (2)")
                1 / 0
        with conn.transaction():
            conn.execute(f"INSERT INTO {table} VALUES (3)")
            with conn.transaction() as inner:
                assert inner.savepoint_name
                conn.execute(f"INSERT INTO {table} VALUES (4)")
            with pytest.raises(KeyError):
                with conn.transaction():
                    conn.execute(f"INSERT INTO {table} VALUES (5)")
                    raise KeyError
            with conn.transaction():
                conn.execute(f"INSERT INTO {table} VALUES (6)")
                raise sqlpool.Rollback  # rolls back quietly
        ids = [r.id for r in conn.query(f"SELECT id FROM {table} ORDER BY id")]
        assert ids == [1, 3, 4]
        with conn.transaction(isolation="serializable", read_only=True):
            assert conn.query_first(f"SELECT count(*) AS n FROM {table}").n == 3
        with conn.transaction(isolation=sqlpool.IsolationLevel.READ_COMMITTED):
            pass
        with pytest.raises(sqlpool.ProgrammingError):
            conn.transaction(isolation="bogus")


def test_failed_statement_inside_transaction_recovers_by_savepoint(pool, table, is_pg):
    pool.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    with pool.connection() as conn:
        with conn.transaction():
            conn.execute(f"INSERT INTO {table} VALUES (1)")
            with pytest.raises(sqlpool.IntegrityError):
                with conn.transaction():
                    conn.execute(f"INSERT INTO {table} VALUES (1)")
            conn.execute(f"INSERT INTO {table} VALUES (2)")
        assert pool.query_first(f"SELECT count(*) AS n FROM {table}").n == 2


def test_release_rolls_back_open_transaction(pool, table):
    pool.execute(f"CREATE TABLE {table} (id INT)")
    conn = pool.connection()
    conn.begin()
    conn.execute(f"INSERT INTO {table} VALUES (1)")
    conn.close()
    assert pool.query_first(f"SELECT count(*) AS n FROM {table}").n == 0


def test_stats_resize_drain(uri):
    with sqlpool.Pool(uri, min_size=2, max_size=4) as pool:
        s = pool.stats()
        assert s["min_size"] == 2 and s["max_size"] == 4
        assert set(s) >= {"total", "idle", "in_use", "waiting", "created", "acquires", "connect_errors"}
        conns = [pool.connection() for _ in range(3)]
        assert pool.stats()["in_use"] == 3
        for c in conns:
            c.close()
        assert pool.stats()["in_use"] == 0
        pool.resize(1, 2)
        s = pool.stats()
        assert (s["min_size"], s["max_size"]) == (1, 2)
        with pytest.raises(sqlpool.ProgrammingError):
            pool.resize(3, 2)
        created = pool.stats()["created"]
        pool.drain()
        pool.query_first("SELECT 1 AS a")
        assert pool.stats()["created"] > created


def test_acquire_timeout_and_max_size(uri):
    with sqlpool.Pool(uri, min_size=1, max_size=1, conn_timeout=0.2) as pool:
        with pool.connection():
            t0 = time.monotonic()
            with pytest.raises(sqlpool.PoolTimeout) as info:
                pool.connection()
            assert 0.1 < time.monotonic() - t0 < 5
            assert isinstance(info.value, sqlpool.OperationalError)
            assert info.value.status_name == "SQLPOOL_POOL_TIMEOUT"
            with pytest.raises(sqlpool.PoolTimeout):
                pool.connection(timeout=0)
        with pool.connection(timeout=0):
            pass


def test_max_waiting(uri):
    with sqlpool.Pool(uri, min_size=1, max_size=1, max_waiting=1, conn_timeout=2) as pool:
        held = pool.connection()
        waiter = threading.Thread(target=lambda: pytest.raises(sqlpool.PoolTimeout, pool.connection, 0.5))
        waiter.start()
        time.sleep(0.2)
        with pytest.raises(sqlpool.TooManyRequests):
            pool.connection()
        waiter.join()
        held.close()


def test_waiters_wake_with_pool_closed(uri):
    pool = sqlpool.Pool(uri, min_size=1, max_size=1, conn_timeout=10)
    held = pool.connection()
    errors = []

    def wait():
        try:
            pool.connection()
        except sqlpool.Error as e:
            errors.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    pool.stop()
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], sqlpool.PoolClosed)
    held.close()


def test_threads_share_a_pool(uri, table, is_pg):
    with sqlpool.Pool(uri, min_size=2, max_size=8, conn_timeout=30) as pool:
        pool.execute(f"CREATE TABLE {table} (id INT, t TEXT)")
        errors = []

        def work(i):
            try:
                for j in range(20):
                    with pool.connection() as conn:
                        conn.execute(f"INSERT INTO {table} VALUES (:i, :t)", {"i": i * 100 + j, "t": str(j)})
                        assert conn.query_first("SELECT :a AS a", {"a": j}).a in (j, str(j))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert pool.query_first(f"SELECT count(*) AS n FROM {table}").n == 320
        s = pool.stats()
        assert s["in_use"] == 0 and s["total"] <= 8


def test_options(sqlite_uri):
    from datetime import timedelta

    with sqlpool.Pool(
        sqlite_uri,
        min_size=1,
        max_size=3,
        conn_timeout=timedelta(seconds=5),
        connect_timeout=2.5,
        idle_timeout=60,
        max_lifetime=600,
        check_interval=0.5,
        max_waiting=10,
        recycling="fast",
        lazy=True,
        leak_threshold=30,
        statement_cache_size=16,
        busy_timeout="5s",
        journal_mode="wal",
        **{"pragma.foreign_keys": "on"},
    ) as pool:
        assert pool.query_first("PRAGMA foreign_keys")[0] == 1
        assert pool.query_first("PRAGMA journal_mode")[0] == "wal"
        assert pool.stats()["max_size"] == 3
    for bad in ({"min_size": -1}, {"conn_timeout": "soon"}, {"recycling": "sometimes"},
                {"nonsense_option": 1}, {"max_size": 0}):
        with pytest.raises(sqlpool.ProgrammingError):
            sqlpool.Pool(sqlite_uri, **bad)


def test_pg_parts(pg_uri):
    from urllib.parse import urlparse

    u = urlparse(pg_uri)
    with sqlpool.Pool(None, username=u.username, password=u.password, host=u.hostname,
                      port=u.port, db_name=u.path.lstrip("/"), max_size=2) as pool:
        assert pool.query_first("SELECT current_user AS u").u == u.username
    with pytest.raises(sqlpool.OperationalError):
        sqlpool.Pool(None, username=u.username, password="wrong", host=u.hostname,
                     port=u.port, db_name=u.path.lstrip("/"))
    lazy = sqlpool.Pool("postgresql://nobody@127.0.0.1:1/x", lazy=True, conn_timeout=0.5,
                        connect_timeout=0.2)
    with pytest.raises(sqlpool.OperationalError):
        lazy.query("SELECT 1")
    lazy.stop()


def test_start_stop_idempotent(sqlite_uri):
    pool = sqlpool.Pool(sqlite_uri)
    pool.start()
    pool.start()
    assert pool.query_first("SELECT 1 AS a").a == 1
    pool.stop()
    pool.stop()
    assert pool.closed
    with pytest.raises(sqlpool.InterfaceError):
        pool.start()
    with pytest.raises(sqlpool.InterfaceError):
        pool.query("SELECT 1")
    with pytest.raises(sqlpool.InterfaceError):
        pool.stats()


def test_invalid_uri():
    with pytest.raises(sqlpool.ProgrammingError) as info:
        sqlpool.Pool("mysql://x")
    assert info.value.status_name == "SQLPOOL_INVALID_URI"


def test_connection_after_pool_stop_still_works(sqlite_uri):
    pool = sqlpool.Pool(sqlite_uri)
    conn = pool.connection()
    pool.stop()
    assert conn.query_first("SELECT 1 AS a").a == 1
    conn.close()


def test_psqlpy_and_pysqlx_aliases(sqlite_uri):
    with sqlpool.Pool(dsn=sqlite_uri, max_db_pool_size=3) as pool:
        assert pool.stats()["max_size"] == 3
    assert sqlpool.PoolSync is sqlpool.Pool
