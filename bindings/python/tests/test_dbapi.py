"""The DB-API driver beyond the compliance suite: transactions, types,
description, the asyncio flavour, pandas and SQLAlchemy, on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import warnings

import pytest

import sqlpool
from sqlpool import dbapi


def test_autocommit_off_by_default_and_commit_rollback(uri, table):
    with sqlpool.connect(uri) as setup:
        setup.execute(f"CREATE TABLE {table} (id INTEGER, name TEXT)")
    conn = sqlpool.connect(uri)
    assert conn.autocommit is False
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (:id, :name)", {"id": 1, "name": "a"})
    assert conn.in_transaction
    conn.rollback()
    assert not conn.in_transaction
    assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    conn.commit()  # a read-only transaction; nothing to keep
    cur.execute(f"INSERT INTO {table} VALUES ($1, $2)", [2, "b"])
    conn.commit()
    conn.commit()  # no transaction open: nothing happens (PEP 249)
    conn.rollback()
    with sqlpool.connect(uri, autocommit=True) as other:
        assert other.execute(f"SELECT id, name FROM {table}").fetchall() == [(2, "b")]
    conn.close()
    with pytest.raises(sqlpool.InterfaceError):
        conn.close()


def test_with_block_commits_or_rolls_back(uri, table):
    with sqlpool.connect(uri, autocommit=True) as c:
        c.execute(f"CREATE TABLE {table} (x INTEGER)")
    with sqlpool.connect(uri) as c:
        c.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(ZeroDivisionError):
        with sqlpool.connect(uri) as c:
            c.execute(f"INSERT INTO {table} VALUES (2)")
            1 / 0
    with sqlpool.connect(uri) as c:
        assert c.execute(f"SELECT x FROM {table}").fetchall() == [(1,)]
        assert c.closed is False
    assert c.closed


def test_autocommit_cannot_change_inside_a_transaction(uri):
    with sqlpool.connect(uri) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(sqlpool.ProgrammingError):
            conn.autocommit = True
        conn.rollback()
        conn.autocommit = True
        conn.execute("SELECT 1")
        assert not conn.in_transaction


def test_description_rowcount_lastrowid_and_types(uri, table, is_pg):
    idcol = "id SERIAL PRIMARY KEY" if is_pg else "id INTEGER PRIMARY KEY"
    with sqlpool.connect(uri) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE {table} ({idcol}, name VARCHAR(20), score FLOAT, data BYTEA, at TIMESTAMP)"
                    if is_pg else
                    f"CREATE TABLE {table} ({idcol}, name VARCHAR(20), score FLOAT, data BLOB, at TIMESTAMP)")
        assert cur.description is None and cur.rowcount == -1
        at = dt.datetime(2024, 5, 6, 7, 8, 9)
        cur.execute(f"INSERT INTO {table} (name, score, data, at) VALUES (:n, :s, :d, :t)",
                    {"n": "a", "s": 1.5, "d": sqlpool.Binary(b"\x00\x01"), "t": at})
        assert cur.rowcount == 1
        assert cur.lastrowid == (None if is_pg else 1)
        cur.executemany(f"INSERT INTO {table} (name) VALUES (:n)", [{"n": "b"}, {"n": "c"}])
        assert cur.rowcount == 2
        cur.execute(f"UPDATE {table} SET score = 2 WHERE name <> 'a'")
        assert cur.rowcount == 2
        cur.execute(f"SELECT id, name, score, data, at FROM {table} ORDER BY id")
        assert cur.rowcount == 3
        codes = [d.type_code for d in cur.description]
        assert [d[0] for d in cur.description] == ["id", "name", "score", "data", "at"]
        assert codes[0] == sqlpool.NUMBER and codes[0] != sqlpool.STRING
        assert codes[1] == sqlpool.STRING
        assert codes[2] == sqlpool.NUMBER
        assert codes[3] == sqlpool.BINARY
        assert codes[4] == sqlpool.DATETIME
        first = cur.fetchone()
        assert first == (1, "a", 1.5, b"\x00\x01", at)
        assert cur.fetchmany(5) == [(2, "b", 2.0, None, None), (3, "c", 2.0, None, None)]
        assert cur.fetchall() == []
        cur.execute(f"DELETE FROM {table} WHERE id > 1 RETURNING id" if is_pg
                    else f"DELETE FROM {table} WHERE id > 1 RETURNING id")
        assert sorted(cur.fetchall()) == [(2,), (3,)]
        assert cur.rowcount == 2
        with pytest.raises(sqlpool.ProgrammingError):
            cur.execute(f"DELETE FROM {table}")
            cur.fetchone()
        assert list(conn.execute(f"SELECT id FROM {table}")) == []


def test_type_objects_and_constructors():
    assert sqlpool.STRING == "varchar(20)" and sqlpool.STRING == "text"
    assert sqlpool.NUMBER == "int8" and sqlpool.NUMBER == "INTEGER" and sqlpool.NUMBER == "numeric"
    assert sqlpool.DATETIME == "timestamptz" and sqlpool.BINARY == "bytea" and sqlpool.ROWID == "oid"
    assert sqlpool.STRING != "int4"
    assert sqlpool.Date(2020, 1, 2) == dt.date(2020, 1, 2)
    assert sqlpool.Timestamp(2020, 1, 2, 3, 4, 5) == dt.datetime(2020, 1, 2, 3, 4, 5)
    assert isinstance(sqlpool.TimestampFromTicks(0), dt.datetime)
    assert sqlpool.Binary(b"x") == b"x"
    assert sqlpool.paramstyle == "named"


def test_exceptions_are_connection_attributes(uri):
    with sqlpool.connect(uri) as conn:
        assert conn.IntegrityError is sqlpool.IntegrityError
        with pytest.raises(conn.ProgrammingError):
            conn.execute("SELEC 1")
        conn.rollback()  # PostgreSQL: the failed statement aborted the transaction


def test_commit_after_a_failed_statement_says_so_on_postgres(pg_uri):
    conn = sqlpool.connect(pg_uri)
    with pytest.raises(sqlpool.ProgrammingError):
        conn.execute("SELEC 1")
    with pytest.raises(sqlpool.Error) as info:
        conn.commit()  # the server turned COMMIT into ROLLBACK: not a success
    assert info.value.sqlstate == "25P02"
    assert conn.execute("SELECT 1").fetchone() == (1,)
    conn.close()


def test_pool_dbapi_connection_returns_to_its_pool(uri, table):
    with sqlpool.Pool(uri, min_size=1, max_size=1) as pool:
        conn = pool.dbapi_connection()
        conn.execute(f"CREATE TABLE {table} (x INTEGER)")
        conn.commit()
        conn.execute(f"INSERT INTO {table} VALUES (1)")
        conn.close()  # not committed: rolled back, connection back in the pool
        assert pool.stats()["in_use"] == 0
        assert pool.query(f"SELECT x FROM {table}") == []


def test_threads_share_a_connection(uri):
    import threading

    conn = sqlpool.connect(uri, autocommit=True)
    errors = []

    def work() -> None:
        try:
            for _ in range(50):
                assert conn.execute("SELECT 1").fetchone() == (1,)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn.close()
    assert errors == []


def test_async_connection_and_cursor(uri, table):
    async def main() -> None:
        conn = await dbapi.AsyncConnection.connect(uri)
        async with conn:
            cur = conn.cursor()
            await cur.execute(f"CREATE TABLE {table} (id INTEGER, name TEXT)")
            await cur.executemany(f"INSERT INTO {table} VALUES (:id, :name)",
                                  [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
            assert cur.rowcount == 2
            await cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
            assert cur.description[1].name == "name"
            assert await cur.fetchone() == (1, "a")
            assert [row async for row in cur] == [(2, "b")]
        assert conn.closed
        conn2 = await sqlpool.connect_async(uri)
        async with conn2.cursor() as cur2:
            await cur2.execute(f"SELECT count(*) FROM {table}")
            assert await cur2.fetchall() == [(2,)]
            await cur2.execute(f"INSERT INTO {table} VALUES (3, 'c')")
        await conn2.rollback()
        assert (await (await conn2.execute(f"SELECT count(*) FROM {table}")).fetchone()) == (2,)
        await conn2.close()

    asyncio.run(main())


def test_pandas_read_sql_query(uri, table):
    pd = pytest.importorskip("pandas")
    with sqlpool.connect(uri) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER, name TEXT, score FLOAT)")
        conn.cursor().executemany(f"INSERT INTO {table} VALUES (:id, :name, :score)",
                                  [{"id": i, "name": f"n{i}", "score": i / 2} for i in range(5)])
        conn.commit()
        with warnings.catch_warnings():
            # pandas warns that it only tests SQLAlchemy and sqlite3 connections.
            warnings.simplefilter("ignore", UserWarning)
            df = pd.read_sql_query(f"SELECT id, name, score FROM {table} WHERE id >= :lo ORDER BY id",
                                   conn, params={"lo": 2})
    assert list(df.columns) == ["id", "name", "score"]
    assert df["id"].tolist() == [2, 3, 4]
    assert df["name"].tolist() == ["n2", "n3", "n4"]
    assert df["score"].tolist() == [1.0, 1.5, 2.0]


def _register_dialects(sa) -> None:
    """The installed package registers them as entry points; a test run
    from the source tree (no entry points) registers them here."""
    from sqlalchemy.dialects import registry

    try:
        registry.load("sqlite.sqlpool")
    except sa.exc.NoSuchModuleError:
        registry.register("sqlite.sqlpool", "sqlpool.sqlalchemy", "SQLiteDialect_sqlpool")
        registry.register("postgresql.sqlpool", "sqlpool.sqlalchemy", "PGDialect_sqlpool")


def _sqlalchemy_url(uri: str) -> str:
    if uri.startswith("sqlite:"):
        return "sqlite+sqlpool:///" + uri[len("sqlite:"):]
    return "postgresql+sqlpool://" + uri.split("://", 1)[1]


@pytest.mark.parametrize("how", ["url", "creator"])
def test_sqlalchemy_core_select(uri, table, how):
    sa = pytest.importorskip("sqlalchemy")
    _register_dialects(sa)
    if how == "url":
        engine = sa.create_engine(_sqlalchemy_url(uri))
    else:
        kind = "sqlite+sqlpool://" if uri.startswith("sqlite:") else "postgresql+sqlpool://"
        engine = sa.create_engine(kind, creator=lambda: sqlpool.connect(uri))
    meta = sa.MetaData()
    t = sa.Table(table, meta, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(20)), sa.Column("at", sa.DateTime))
    try:
        meta.create_all(engine)
        when = dt.datetime(2024, 1, 2, 3, 4, 5)
        with engine.begin() as c:
            c.execute(t.insert(), [{"name": "ada", "at": when}, {"name": "bob", "at": when}])
        with engine.connect() as c:
            rows = c.execute(sa.select(t.c.id, t.c.name, t.c.at).where(t.c.name == "bob")).all()
            assert [tuple(r) for r in rows] == [(2, "bob", when)]
            n = c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            assert n == 2
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            assert c.execute(sa.text("SELECT 1")).scalar() == 1
        assert sa.inspect(engine).has_table(table)
    finally:
        meta.drop_all(engine)
        engine.dispose()
