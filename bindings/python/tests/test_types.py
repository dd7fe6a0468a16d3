"""Python <-> database value conversions."""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import uuid
from decimal import Decimal

import pytest

import sqlpool
from sqlpool._convert import format_timedelta, parse_interval

UTC = dt.timezone.utc


# -- PostgreSQL: every type of the table, both directions ---------------------

PG_ROUND_TRIPS = [
    ("bool", True, True),
    ("int2", 7, 7),
    ("int4", -(2**31), -(2**31)),
    ("int8", 2**63 - 1, 2**63 - 1),
    ("float4", 1.5, 1.5),
    ("float8", 0.1, 0.1),  # 64-bit: no float32 narrowing
    ("float8", 1e300, 1e300),
    ("numeric", Decimal("12345.678901234567890123"), Decimal("12345.678901234567890123")),
    ("numeric", Decimal("1.5E+5"), Decimal("150000")),
    ("numeric", Decimal("-0.000001"), Decimal("-0.000001")),
    ("numeric", Decimal("NaN"), None),  # NaN != NaN: checked below
    ("numeric", 2**70, Decimal(2**70)),  # beyond int64: sent as text
    ("numeric", 2.5, Decimal("2.5")),
    ("text", "héllo 🎉", "héllo 🎉"),
    ("varchar", "", ""),
    ("bytea", b"\x00\x01\xff", b"\x00\x01\xff"),
    ("bytea", bytearray(b"ab"), b"ab"),
    ("bytea", memoryview(b"mv"), b"mv"),
    ("date", dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
    ("time", dt.time(12, 34, 56, 789), dt.time(12, 34, 56, 789)),
    ("timestamp", dt.datetime(2024, 1, 2, 3, 4, 5, 600000), dt.datetime(2024, 1, 2, 3, 4, 5, 600000)),
    ("timestamptz", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)),
    ("interval", dt.timedelta(days=1, hours=2, seconds=3.5), dt.timedelta(days=1, hours=2, seconds=3.5)),
    ("interval", -dt.timedelta(seconds=1.5), -dt.timedelta(seconds=1.5)),
    ("interval", dt.timedelta(0), dt.timedelta(0)),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("json", {"a": [1, 2.5, None, "x"]}, {"a": [1, 2.5, None, "x"]}),
    ("jsonb", [1, {"b": True}], [1, {"b": True}]),
    ("inet", ipaddress.ip_address("192.168.0.1"), ipaddress.ip_address("192.168.0.1")),
    ("inet", ipaddress.ip_interface("10.1.2.3/16"), ipaddress.ip_interface("10.1.2.3/16")),
    ("inet", "::1", ipaddress.ip_address("::1")),
    ("cidr", ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8")),
    ("int4[]", [1, None, 3], [1, None, 3]),
    ("int8[]", (1, 2), [1, 2]),
    ("text[]", ["a", "b,c", '"q"'], ["a", "b,c", '"q"']),
    ("float8[]", [1.5, float("inf")], [1.5, float("inf")]),
    ("numeric[]", [Decimal("1.10"), None], [Decimal("1.10"), None]),
    ("bool[]", [True, False], [True, False]),
    ("date[]", [dt.date(2020, 1, 1)], [dt.date(2020, 1, 1)]),
    ("timestamptz[]", [dt.datetime(2020, 1, 1, tzinfo=UTC)], [dt.datetime(2020, 1, 1, tzinfo=UTC)]),
    ("uuid[]", [uuid.UUID(int=1)], [uuid.UUID(int=1)]),
    ("jsonb[]", [{"a": 1}], [{"a": 1}]),
    ("int4[]", [], []),
    ("timetz", dt.time(12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     dt.time(12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
]


@pytest.mark.parametrize("pgtype,value,expected", PG_ROUND_TRIPS, ids=lambda v: str(v)[:30])
def test_pg_round_trip(pg_uri, pgtype, value, expected):
    with sqlpool.Pool(pg_uri, max_size=1) as pool:
        row = pool.query_first(f"SELECT $1::{pgtype} AS v", [value])
        got = row.v
        if expected is None:
            assert isinstance(got, Decimal) and got.is_nan()
            return
        assert got == expected, (pgtype, value, got)
        assert type(got) is type(expected)
        # and back again: what came out binds to the same value
        same = pool.query_first(f"SELECT $1::{pgtype}::text = $2::{pgtype}::text AS same", [value, got])
        assert same.same is True


def test_pg_special_values(pg_uri):
    with sqlpool.Pool(pg_uri, max_size=1) as pool:
        r = pool.query_first(
            "SELECT 'infinity'::timestamp a, '-infinity'::timestamp b, 'infinity'::date c, "
            "'infinity'::timestamptz d, 'NaN'::float8 e, '-Infinity'::float8 f, NULL::int4 g, "
            "'1 year 2 months 3 days 04:05:06.5'::interval h, '-1 day -02:00:00'::interval i, "
            "ARRAY['NaN'::float8] j, ARRAY['\\x0102'::bytea] k, 'abc'::name l, 'x'::char m"
        )
        assert r.a == dt.datetime.max and r.b == dt.datetime.min and r.c == dt.date.max
        assert r.d == dt.datetime.max.replace(tzinfo=UTC)
        assert math.isnan(r.e) and r.f == float("-inf") and r.g is None
        assert r.h == dt.timedelta(days=360 + 60 + 3, hours=4, minutes=5, seconds=6.5)
        assert r.i == -dt.timedelta(days=1, hours=2)
        assert math.isnan(r.j[0]) and r.k == [b"\x01\x02"]
        assert r.l == "abc" and r.m == "x"
        r = pool.query_first("SELECT '{{1.5,2},{3,NULL}}'::numeric[] AS a, '{{1,2},{3,4}}'::int4[] AS b")
        assert r.a == [[Decimal("1.5"), Decimal(2)], [Decimal(3), None]]
        assert r.b == [[1, 2], [3, 4]]


def test_pg_int_binds_to_int8_and_limit(pg_uri):
    # psqlpy sends ints as int4, so LIMIT $1 fails there; here it must not.
    with sqlpool.Pool(pg_uri, max_size=1) as pool:
        assert len(pool.query("SELECT generate_series(1, 10) AS n LIMIT $1", [3])) == 3
        with pytest.raises(sqlpool.ProgrammingError):
            pool.query_first("SELECT $1::int4 AS v", [2**40])  # out of range for int4


def test_pg_float_is_64_bit(pg_uri):
    with sqlpool.Pool(pg_uri, max_size=1) as pool:
        assert pool.query_first("SELECT $1::float8 AS v", [0.1]).v == 0.1
        assert pool.query_first("SELECT $1::float8 = 0.1::float8 AS same", [0.1]).same is True


def test_pg_many_rows_with_nulls(pg_uri):
    with sqlpool.Pool(pg_uri, max_size=1) as pool:
        rows = pool.query(
            "SELECT n, CASE WHEN n % 3 = 0 THEN NULL ELSE n::text END AS t, "
            "CASE WHEN n % 2 = 0 THEN NULL ELSE n * 0.5::float8 END AS f, "
            "CASE WHEN n % 5 = 0 THEN NULL ELSE (n % 2 = 0) END AS b, "
            "CASE WHEN n % 7 = 0 THEN NULL ELSE n::numeric / 4 END AS d "
            "FROM generate_series(1, 5000) AS n ORDER BY n"
        )
        assert len(rows) == 5000
        for r in rows:
            n = r.n
            assert r.t == (None if n % 3 == 0 else str(n))
            assert r.f == (None if n % 2 == 0 else n * 0.5)
            assert r.b == (None if n % 5 == 0 else n % 2 == 0)
            assert r.d == (None if n % 7 == 0 else Decimal(n) / 4)
        first = pool.query_first("SELECT n, n::text AS t FROM generate_series(1, 100) n ORDER BY n")
        assert first == (1, "1") and first.t == "1"


# -- SQLite --------------------------------------------------------------------


def test_sqlite_types(sqlite_uri):
    with sqlpool.Pool(sqlite_uri, max_size=1) as pool:
        pool.execute(
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, f BOOLEAN, d DATETIME, dd DATE, "
            "ts TIMESTAMP, j JSON, n NUMERIC, u TEXT, td TEXT)"
        )
        values = {
            "i": 2**63 - 1, "r": 0.1, "s": "héllo", "b": b"\x00\xff", "f": True,
            "d": dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "dd": dt.date(2024, 5, 6),
            "ts": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "j": {"k": [1, "v"]},
            "n": Decimal("1.25"), "u": uuid.UUID(int=5), "td": dt.timedelta(hours=1),
        }
        pool.execute(
            "INSERT INTO t VALUES (:i, :r, :s, :b, :f, :d, :dd, :ts, :j, :n, :u, :td)", values
        )
        pool.execute("INSERT INTO t (i, f, d, j) VALUES (NULL, 0, 'not a date', 'not json')")
        r1, r2 = pool.query("SELECT * FROM t ORDER BY rowid")
        assert r1.i == 2**63 - 1 and r1.r == 0.1 and r1.s == "héllo" and r1.b == b"\x00\xff"
        assert r1.f is True and r1.d == values["d"] and r1.dd == values["dd"] and r1.ts == values["ts"]
        assert r1.j == {"k": [1, "v"]} and r1.n == 1.25
        assert r1.u == str(uuid.UUID(int=5)) and r1.td == "PT1H"
        assert r2.i is None and r2.f is False and r2.d == "not a date" and r2.j == "not json"
        # expressions have no declared type: native kinds
        e = pool.query_first("SELECT 1 AS a, 1.5 AS b, 'x' AS c, x'00' AS d, NULL AS e")
        assert e == (1, 1.5, "x", b"\x00", None)


def test_sqlite_mixed_column(sqlite_uri):
    with sqlpool.Pool(sqlite_uri, max_size=1) as pool:
        pool.execute("CREATE TABLE m (v)")
        pool.execute_many("INSERT INTO m VALUES ($1)", [[1], [2.5], ["x"], [b"y"], [None], [True]])
        assert [r.v for r in pool.query("SELECT v FROM m ORDER BY rowid")] == [1, 2.5, "x", b"y", None, 1]
        pool.execute("CREATE TABLE md (d DATETIME)")
        pool.execute_many("INSERT INTO md VALUES ($1)", [["2024-01-01 00:00:00"], [1700000000]])
        assert [r.d for r in pool.query("SELECT d FROM md ORDER BY rowid")] == [
            dt.datetime(2024, 1, 1), 1700000000]


def test_sqlite_big_int_is_text(sqlite_uri):
    with sqlpool.Pool(sqlite_uri, max_size=1) as pool:
        assert pool.query_first("SELECT CAST($1 AS TEXT) AS v", [2**64]).v == str(2**64)


# -- both ---------------------------------------------------------------------


def test_unsupported_parameter_type(pool):
    with pytest.raises(sqlpool.ProgrammingError, match="cannot bind"):
        pool.query("SELECT $1 AS v", [object()])
    with pytest.raises(sqlpool.ProgrammingError):
        pool.query("SELECT $1 AS v", "abc")
    with pytest.raises(sqlpool.ProgrammingError):
        pool.query("SELECT $1 AS v", [{1, 2}.__iter__()])


def test_parameter_errors(pool):
    with pytest.raises(sqlpool.ProgrammingError) as info:
        pool.query("SELECT :a AS v", {"b": 1})
    assert info.value.status_name == "SQLPOOL_PARAMETER_ERROR"
    with pytest.raises(sqlpool.ProgrammingError):
        pool.query("SELECT $1 AS v, $2 AS w", [1])
    with pytest.raises(sqlpool.DataError):
        pool.query("SELECT $1 AS v", ["\ud800"])  # lone surrogate: not UTF-8
    with pytest.raises(sqlpool.ProgrammingError):
        pool.query("SELECT 1\0")


def test_large_result_and_non_ascii(pool):
    rows = pool.query("SELECT $1 AS a, $2 AS b", ["ünïcödé", "ascii"])
    assert rows[0] == ("ünïcödé", "ascii")


def test_numpy_like_scalars(pool):
    class Idx:
        def __index__(self):
            return 42

    class Flt:
        def __float__(self):
            return 2.5

    row = pool.query_first("SELECT $1 AS a, $2 AS b", [Idx(), Flt()])
    assert row.a in (42, "42") and float(row.b) == 2.5


# -- helpers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "td,text",
    [
        (dt.timedelta(0), "PT0S"),
        (dt.timedelta(days=1, hours=2, seconds=3.5), "P1DT2H3.5S"),
        (dt.timedelta(minutes=1, microseconds=1), "PT1M0.000001S"),
        (-dt.timedelta(seconds=1), "-PT1S"),
        (dt.timedelta(days=-1, hours=1), "-PT23H"),
    ],
)
def test_format_timedelta(td, text):
    assert format_timedelta(td) == text
    assert parse_interval(text) == td


def test_parse_interval_months():
    assert parse_interval("P1Y2M3DT4H5M6.5S") == dt.timedelta(days=423, hours=4, minutes=5, seconds=6.5)
    assert parse_interval("P-1M") == dt.timedelta(days=-30)
    assert parse_interval("PT-1H-2M-3.25S") == -dt.timedelta(hours=1, minutes=2, seconds=3.25)
    assert parse_interval("P2W") == dt.timedelta(days=14)
    with pytest.raises(ValueError):
        parse_interval("nonsense")
