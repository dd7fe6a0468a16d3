"""The one-call query path (``sqlpool_conn_query_into``): packed
parameters in, a one-row result in the thread's buffer (a larger one as a
result handle). Every answer must equal the parameter-list path's (the
pool-level calls still take it)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

import sqlpool
from sqlpool import _convert


def both(pool: sqlpool.Pool, sql: str, params: Any = None) -> Any:
    """(connection answer, pool answer) for query and query_first."""
    with pool.connection() as conn:
        fast = (conn.query(sql, params), conn.query_first(sql, params))
    slow = (pool.query(sql, params), pool.query_first(sql, params))
    return fast, slow


def test_plain_parameters_are_packed() -> None:
    assert _convert.pack_params(None) == b""
    assert _convert.pack_params([]) == b""
    assert _convert.pack_params([1, "é", 0.5, None, True, b"\x00"]) is not None
    # Named, unusual types, huge ints and bad text take the parameter-list path.
    for params in ({"a": 1}, [Decimal(1)], [2**70], ["\udc80"], [bytearray(b"x")], "ab"):
        assert _convert.pack_params(params) is None, params


@pytest.mark.parametrize(
    "params",
    [
        [7, "héllo", 2.5, None, True, b"\x00\xff"],
        (-(2**63), "", -0.0, None, False, b""),
        [2**63 - 1, "x" * 10_000, float("inf"), None, True, b"b" * 3],
    ],
)
def test_values_round_trip_as_on_the_slow_path(pool: sqlpool.Pool, is_pg: bool, params: Any) -> None:
    casts = ["::int8", "::text", "::float8", "::text", "::bool", "::bytea"] if is_pg else [""] * 6
    mark = "$" if is_pg else "?"
    sql = "SELECT " + ", ".join(f"{mark}{i + 1}{c} AS c{i}" for i, c in enumerate(casts))
    fast, slow = both(pool, sql, params)
    assert fast == slow
    rows, first = fast
    assert len(rows) == 1 and rows[0] == first
    got = tuple(first)
    want = tuple(params)
    if not is_pg:
        want = want[:4] + (int(want[4]),) + want[5:]  # SQLite: no bool type for expressions
    assert got == want
    assert first.c1 == params[1]


def test_shapes_nulls_and_many_rows(pool: sqlpool.Pool, is_pg: bool) -> None:
    series = (
        "SELECT g AS n, CASE WHEN g % 2 = 0 THEN NULL ELSE 'v' || g END AS t FROM generate_series(1, 5) g"
        if is_pg
        else "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 5) "
        "SELECT g AS n, CASE WHEN g % 2 = 0 THEN NULL ELSE 'v' || g END AS t FROM s"
    )
    fast, slow = both(pool, series)
    assert fast == slow
    assert [tuple(r) for r in fast[0]] == [(1, "v1"), (2, None), (3, "v3"), (4, None), (5, "v5")]
    assert fast[1].t == "v1"
    # No rows; leading NULLs; more columns than the packed row holds.
    assert both(pool, series + " LIMIT 0") == (([], None), ([], None))
    assert both(pool, "SELECT NULL AS a, 1 AS b, NULL AS c")[0][1] == (None, 1, None)
    wide = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(70))
    fast, slow = both(pool, wide)
    assert fast == slow and fast[1].c69 == 69


def test_converters_apply_by_declared_type(pg_uri: str) -> None:
    with sqlpool.Pool(pg_uri, min_size=1, max_size=1) as pool:
        sql = "SELECT $1::numeric AS n, $2::timestamptz AS ts, $3::int AS i"
        fast, slow = both(pool, sql, ["1.50", "2024-01-02 03:04:05+00", 3])
        assert fast == slow
        assert fast[1] == (Decimal("1.50"), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), 3)


def test_errors_are_the_same(pool: sqlpool.Pool, is_pg: bool) -> None:
    with pool.connection() as conn:
        with pytest.raises(sqlpool.ProgrammingError):
            conn.query_first("SELECT * FROM no_such_table_here", [1])
        mark = "$1" if is_pg else "?1"
        with pytest.raises(sqlpool.Error):
            conn.query_first(f"SELECT {mark} AS a", [1, 2])  # one parameter too many
        assert conn.query_first(f"SELECT {mark} AS a", [5]).a == 5


def test_execute_many_packed_and_fallback(pool: sqlpool.Pool, table: str, is_pg: bool) -> None:
    mark = "$" if is_pg else "?"
    pool.execute(f"CREATE TABLE {table} (i int8, t text, f float8, b bytea)" if is_pg
                 else f"CREATE TABLE {table} (i INTEGER, t TEXT, f REAL, b BLOB)")
    ins = f"INSERT INTO {table} VALUES ({mark}1, {mark}2, {mark}3, {mark}4)"
    with pool.connection() as conn:
        # Packed: plain types, a generator, an empty set list.
        assert conn.execute_many(ins, ((i, f"n{i}", i / 2, bytes([i])) for i in range(5))) == 5
        assert conn.execute_many(ins, []) == 0
        # One set needs the parameter-list path (Decimal): all sets take it.
        assert conn.execute_many(ins, [(10, "x", 1.0, None), (11, "y", Decimal("2.5"), None)]) == 2
        rows = conn.query(f"SELECT i, t, f, b FROM {table} ORDER BY i")
    assert [tuple(r) for r in rows[:2]] == [(0, "n0", 0.0, b"\x00"), (1, "n1", 0.5, b"\x01")]
    assert [r.i for r in rows] == [0, 1, 2, 3, 4, 10, 11]
    # All or nothing: a bad set inserts none.
    with pool.connection() as conn:
        with pytest.raises(sqlpool.Error):
            conn.execute_many(f"INSERT INTO {table} (i) VALUES ({mark}1)", [(20,), ("not a number",)] if is_pg
                              else [(20,), (1, 2)])
        assert conn.query_first(f"SELECT count(*) AS n FROM {table} WHERE i = 20").n == 0


def test_whole_column_conversion_falls_back_per_value(pg_uri: str) -> None:
    with sqlpool.Pool(pg_uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
        rows = conn.query(
            "SELECT x FROM (VALUES ('2024-01-02 03:04:05+00'::timestamptz), ('infinity'), ('-infinity')) v(x)"
        )
    utc = dt.timezone.utc
    assert [r.x for r in rows] == [
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc),
        dt.datetime.max.replace(tzinfo=utc),
        dt.datetime.min.replace(tzinfo=utc),
    ]


def test_results_beyond_the_buffer_take_the_handle(pool: sqlpool.Pool) -> None:
    big = "x" * 20_000  # more than the thread's buffer
    long_name = "n" * 9_000  # names alone beyond the buffer
    for sql, params in (
        ("SELECT ?1 AS a, 2 AS b", [big]),
        (f"SELECT 1 AS {long_name}, ?1 AS b", ["v"]),
    ):
        if pool.is_postgres:
            sql = sql.replace("?1", "$1::text")
            if long_name in sql:
                continue  # PostgreSQL truncates identifiers to 63 bytes
        fast, slow = both(pool, sql, params)
        assert fast == slow
        assert fast[0][0] == fast[1]
    assert both(pool, "SELECT ?1 AS a, 2 AS b".replace("?1", "$1::text" if pool.is_postgres else "?1"),
                [big])[0][1].a == big


def test_null_and_text_cells_land_in_place(pool: sqlpool.Pool, table: str) -> None:
    sql = "SELECT NULL AS a, 'é' AS b, NULL AS c, 'x' AS d, 3 AS e, NULL AS f"
    with pool.connection() as conn:
        for _ in range(2):  # the second time through the cached plan
            row = conn.query_first(sql)
            assert tuple(row) == (None, "é", None, "x", 3, None)
            assert (row.b, row.d, row.e) == ("é", "x", 3)
        # The same statement text on a changed table: the new shape wins.
        conn.execute(f"CREATE TABLE {table} (a INTEGER)")
        conn.execute(f"INSERT INTO {table} VALUES (1)")
        assert conn.query_first(f"SELECT * FROM {table}").keys() == ("a",)
        conn.execute(f"ALTER TABLE {table} ADD COLUMN b TEXT")
        assert conn.query_first(f"SELECT * FROM {table}").keys() == ("a", "b")


def test_text_that_is_not_utf8(sqlite_uri: str) -> None:
    with sqlpool.Pool(sqlite_uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
        sql = "SELECT 1 AS a, CAST(x'ff00' AS TEXT) AS t"
        with pytest.raises(sqlpool.DataError, match="column 1, row 0 holds TEXT that is not valid UTF-8"):
            conn.query_first(sql)
        pool.text_factory = bytes
        assert tuple(conn.query_first(sql)) == (1, b"\xff\x00")
        assert conn.query_first("SELECT 'é' AS t").t == "é".encode()


def test_queries_from_many_threads(sqlite_uri: str) -> None:
    import threading

    with sqlpool.Pool(sqlite_uri, min_size=4, max_size=4) as pool:
        errors = []

        def work(k: int) -> None:
            try:
                with pool.connection() as conn:
                    for i in range(300):
                        row = conn.query_first("SELECT ?1 AS i, ?2 AS s", [i, f"t{k}-{i}"])
                        assert (row.i, row.s) == (i, f"t{k}-{i}")
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_row_attributes_for_every_plain_column_name() -> None:
    from sqlpool.row import make_row

    row = make_row((1, 2, 3, 4, 5, 6), ("a", "a", "count", "keys", "_p", "not ok"))
    assert row.a == 1  # duplicates: the leftmost
    assert row.count(1) == 1 and row["count"] == 3  # tuple's method stays
    assert row.keys() == ("a", "a", "count", "keys", "_p", "not ok") and row["keys"] == 4
    assert row["_p"] == 5 and row["not ok"] == 6
    assert row._p == 5  # through Row.__getattr__, as before
    with pytest.raises(AttributeError, match="row has no column 'zz'"):
        row.zz
    with pytest.raises(AttributeError):
        row.a = 9
    assert row[1] == 2 and row[-1] == 6 and row[1:3] == (2, 3)


def test_sets_pack_by_column_as_by_set() -> None:
    sets = [(1, "é", 0.5, None, True, b"x"), (2**63 - 1, "", -1.0, None, False, b"")]
    by_set = _convert._END_SET.join([_convert.pack_params(p) for p in sets] + [b""])
    assert _convert._pack_columns(sets) == by_set
    assert _convert.pack_param_sets(iter(sets))[0] == by_set
    assert _convert._pack_columns([(), ()]) == _convert._END_SET * 2
    # Columns of mixed types, big ints, bad text, other types: set by set.
    for sets in ([(1,), (None,)], [(2**63,), (1,)], [("\udc80",), ("a",)], [(1,), (2, 3)],
                 [(Decimal(1),), (Decimal(2),)], [(1, True), (2, 1)]):
        assert _convert._pack_columns(sets) is None, sets
    assert _convert.pack_param_sets([(1,), (None,)])[0] == _convert._END_SET.join(
        [_convert.pack_params((1,)), _convert.pack_params((None,)), b""])


def test_whole_columns_read_as_value_by_value(pool: sqlpool.Pool, is_pg: bool) -> None:
    import gc

    n = 300  # above the whole-column and GC-pause thresholds
    if is_pg:
        sql = ("SELECT g AS i, CASE WHEN g % 7 = 0 THEN NULL ELSE 'é' || g END AS t, "
               "decode(lpad(to_hex(g), 8, '0'), 'hex') AS b, "
               "CASE WHEN g % 5 = 0 THEN NULL ELSE convert_to('v' || g, 'UTF8') END AS vb "
               f"FROM generate_series(1, {n}) g")
    else:
        sql = ("WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300) "
               "SELECT g AS i, CASE WHEN g % 7 = 0 THEN NULL ELSE 'é' || g END AS t, "
               "CAST(printf('%08x', g) AS BLOB) AS b, "
               "CASE WHEN g % 5 = 0 THEN NULL ELSE CAST('v' || g AS BLOB) END AS vb FROM s")
    with pool.connection() as conn:
        rows = conn.query(sql)
        dicts = conn.query_as_dict(sql)
    assert gc.isenabled()
    assert len(rows) == n
    for g, row in enumerate(rows, start=1):
        assert row.i == g
        assert row.t == (None if g % 7 == 0 else f"é{g}")
        assert row.b == (g.to_bytes(4, "big") if is_pg else f"{g:08x}".encode())
        assert row.vb == (None if g % 5 == 0 else f"v{g}".encode())
    assert [tuple(d.values()) for d in dicts] == [tuple(r) for r in rows]


def test_text_holding_nul_falls_back(sqlite_uri: str) -> None:
    with sqlpool.Pool(sqlite_uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
        sql = ("WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 100) "
               "SELECT CASE WHEN g = 50 THEN 'a' || char(0) || 'b' ELSE 'v' || g END AS t FROM s")
        rows = conn.query(sql)
    assert rows[49].t == "a\0b" and rows[0].t == "v1" and rows[99].t == "v100"


def test_gc_stays_disabled_when_it_was(sqlite_uri: str) -> None:
    import gc

    with sqlpool.Pool(sqlite_uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
        sql = "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 500) SELECT g FROM s"
        gc.disable()
        try:
            assert len(conn.query(sql)) == 500
            assert not gc.isenabled()
        finally:
            gc.enable()
        with pytest.raises(sqlpool.Error):
            conn.query("SELECT * FROM no_such_table_x")
        assert len(conn.query(sql)) == 500 and gc.isenabled()
