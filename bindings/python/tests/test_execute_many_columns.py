"""``execute_many`` on SQLite hands plain sets over column by column
(``sqlpool_conn_execute_many_columns``); every other shape takes the packed
path. Both must store the same values and types and raise the same errors,
on SQLite and on PostgreSQL (which always packs)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, List, Sequence

import pytest

import sqlpool
from sqlpool import _convert


def _no_columns(sets: Sequence[Any]) -> None:
    return None


def stored(pool: sqlpool.Pool, table: str, is_pg: bool, sets: List[Any], fast: bool) -> List[Any]:
    """The rows (and SQLite's storage types) ``sets`` become, through the
    column path when ``fast``, through the packed path otherwise."""
    mark = "$" if is_pg else "?"
    pool.execute(f"DROP TABLE IF EXISTS {table}")
    pool.execute(f"CREATE TABLE {table} (k int8, i int8, b boolean, f float8, t text, x bytea, n int8)"
                 if is_pg else f"CREATE TABLE {table} (k, i, b BOOLEAN, f, t, x, n)")
    ins = f"INSERT INTO {table} VALUES ({', '.join(f'{mark}{i}' for i in range(1, 8))})"
    saved = _convert.pack_param_columns
    if not fast:
        _convert.pack_param_columns = _no_columns  # type: ignore[assignment]
    try:
        with pool.connection() as conn:
            assert conn.execute_many(ins, sets) == len(sets)
    finally:
        _convert.pack_param_columns = saved  # type: ignore[assignment]
    types = "" if is_pg else ", typeof(i), typeof(b), typeof(f), typeof(t), typeof(x), typeof(n)"
    return [tuple(r) for r in pool.query(f"SELECT *{types} FROM {table} ORDER BY k")]


PLAIN = [
    (0, -(2**63), True, 0.5, "héllo", b"\x00\xff", None),
    (1, 2**63 - 1, False, -0.0, "", b"", None),
    (2, 7, True, float("inf"), "\U0001f600 x", b"z", None),
]


def test_plain_sets_take_the_column_path() -> None:
    assert _convert.pack_param_columns(PLAIN) is not None
    assert _convert.pack_param_columns([list(s) for s in PLAIN]) is not None
    # None among values of one type: NULL flags.
    nullable = [(None, 1.5, None, None), (1, None, "a", None), (True, 2.5, None, b"x")]
    assert _convert.pack_param_columns(nullable) is not None
    # Shapes the column path leaves to the packed one.
    odd = [
        [(1,)],  # one set
        [(1, 2), (3,)],  # lengths differ
        [(1,), (None,), (1.5,)],  # None among mixed types
        [(1,), (2**63,)],  # beyond int64
        [(1.5,), (2,)],  # an int among floats
        [("a",), ("b\0",)],  # a NUL in text
        [("a",), ("\udc80",)],  # not Unicode
        [(Decimal(1),), (Decimal(2),)],
        [{"a": 1}, {"a": 2}],  # named
        [(b"a",), (bytearray(b"b"),)],
        [(), ()],  # no parameters
    ]
    for sets in odd:
        assert _convert.pack_param_columns(sets) is None, sets


def test_column_path_stores_what_the_packed_path_stores(pool: sqlpool.Pool, table: str, is_pg: bool) -> None:
    fast = stored(pool, table, is_pg, PLAIN, fast=True)
    assert fast == stored(pool, table, is_pg, PLAIN, fast=False)
    assert [r[:7] for r in fast] == [
        (0, -(2**63), True, 0.5, "héllo", b"\x00\xff", None),
        (1, 2**63 - 1, False, -0.0, "", b"", None),
        (2, 7, True, float("inf"), "\U0001f600 x", b"z", None),
    ]
    if not is_pg:
        assert fast[0][7:] == ("integer", "integer", "real", "text", "blob", "null")


def test_odd_shapes_store_as_before(pool: sqlpool.Pool, table: str, is_pg: bool) -> None:
    # An int among floats stays an int (SQLite), None anywhere stays NULL.
    sets = [(0, 1, None, 1.5, "a", None, 5), (1, None, True, 2, "b", b"x", None)]
    assert stored(pool, table, is_pg, sets, fast=True) == stored(pool, table, is_pg, sets, fast=False)
    nullable = [
        (0, None, True, None, "a", None, None),
        (1, 5, None, 0.5, None, b"", None),
        (2, -1, False, 1.5, "", b"y", None),
    ]
    assert _convert.pack_param_columns(nullable) is not None
    fast = stored(pool, table, is_pg, nullable, fast=True)
    assert fast == stored(pool, table, is_pg, nullable, fast=False)
    assert [r[:7] for r in fast] == nullable


def test_errors_are_the_packed_paths(pool: sqlpool.Pool, table: str, is_pg: bool) -> None:
    mark = "$" if is_pg else "?"
    pool.execute(f"CREATE TABLE {table} (id int8 PRIMARY KEY, s text)")
    ins = f"INSERT INTO {table} VALUES ({mark}1, {mark}2)"

    def error(sets: List[Any], fast: bool) -> str:
        saved = _convert.pack_param_columns
        if not fast:
            _convert.pack_param_columns = _no_columns  # type: ignore[assignment]
        try:
            with pool.connection() as conn, pytest.raises(sqlpool.Error) as e:
                conn.execute_many(ins, sets)
        finally:
            _convert.pack_param_columns = saved  # type: ignore[assignment]
        return f"{type(e.value).__name__}: {e.value}"

    for sets in ([(1,), (2,)], [(1, "a", 3), (2, "b", 4)], [(1, "a"), (2, "b"), (1, "c")]):
        fast = error(sets, fast=True)
        assert fast == error(sets, fast=False)
        assert "parameter set #" in fast, fast
    assert "parameter set #3" in error([(1, "a"), (2, "b"), (1, "c")], fast=True)
    # All or nothing, inside the caller's transaction too.
    with pool.connection() as conn:
        with conn.transaction():
            conn.execute(f"INSERT INTO {table} VALUES (10, 'kept')")
            with pytest.raises(sqlpool.IntegrityError):
                conn.execute_many(ins, [(11, "a"), (10, "b")])
            assert conn.execute_many(ins, [(11, "a"), (12, "b")]) == 2
        assert [r.id for r in conn.query(f"SELECT id FROM {table} ORDER BY id")] == [10, 11, 12]


def test_a_generator_is_read_once(pool: sqlpool.Pool, table: str, is_pg: bool) -> None:
    mark = "$" if is_pg else "?"
    pool.execute(f"CREATE TABLE {table} (i int8, s text)")
    with pool.connection() as conn:
        n = conn.execute_many(f"INSERT INTO {table} VALUES ({mark}1, {mark}2)",
                              ((i, str(i)) for i in range(100)))
        assert n == 100
        assert conn.query_first(f"SELECT sum(i) AS s FROM {table}").s == 4950


def test_async_batches_go_column_by_column_and_store_the_same(
        uri: str, table: str, is_pg: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from sqlpool import aio

    assert aio.loop_driven, "the library has the loop-driven task functions"
    started = []
    real = aio.lib.sqlpool_conn_execute_many_columns_start

    def counting(*args: Any) -> int:
        started.append(args[3])  # the column count
        return real(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(aio.lib, "sqlpool_conn_execute_many_columns_start", counting)
    mark = "$" if is_pg else "?"

    async def main() -> List[Any]:
        pool = sqlpool.AsyncPool(uri, min_size=1, max_size=2)
        await pool.start()
        try:
            await pool.execute(f"CREATE TABLE {table} (k int8, i int8, b boolean, f float8, t text, x bytea, n int8)"
                               if is_pg else f"CREATE TABLE {table} (k, i, b BOOLEAN, f, t, x, n)")
            ins = f"INSERT INTO {table} VALUES ({', '.join(f'{mark}{i}' for i in range(1, 8))})"
            async with pool.connection() as conn:
                # A generator is read once.
                assert await conn.execute_many(ins, (s for s in PLAIN)) == 3
                # Set #2 repeats k = 1 under a unique index: named, and none
                # of the batch stays.
                await conn.execute(f"CREATE UNIQUE INDEX {table}_k ON {table} (k)")
                with pytest.raises(sqlpool.IntegrityError) as e:
                    await conn.execute_many(ins, [(5, 1, True, 1.0, "a", b"", None), PLAIN[1]])
                assert "parameter set #2" in str(e.value)
                # A shape the columns cannot take goes the general way.
                assert await conn.execute_many(ins, [(7, None, None, 1.5, "b", None, 1),
                                                     (8, 2, None, 2, None, b"y", None)]) == 2
            types = "" if is_pg else ", typeof(i), typeof(b), typeof(f), typeof(t), typeof(x), typeof(n)"
            return [tuple(r) for r in await pool.query(f"SELECT *{types} FROM {table} ORDER BY k")]
        finally:
            pool.close()

    rows = asyncio.run(main())
    assert started == [7, 7], "the first two batches went column by column, the odd one did not"
    assert [r[:7] for r in rows] == PLAIN + [(7, None, None, 1.5, "b", None, 1), (8, 2, None, 2.0, None, b"y", None)]
    if not is_pg:
        assert rows[0][7:] == ("integer", "integer", "real", "text", "blob", "null")
