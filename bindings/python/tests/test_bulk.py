"""Issue 13 from Python: conn.stream(), conn.copy(), conn.notifies() (sync
and asyncio), psycopg 3's shapes."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

import sqlpool
from sqlpool import bulk
from sqlpool.bulk import Notify


def _pool(uri: str) -> sqlpool.Pool:
    return sqlpool.Pool(uri, min_size=1, max_size=4, conn_timeout=10)


# -- streaming -----------------------------------------------------------------


def test_stream_yields_every_row_in_chunks(uri: str, is_pg: bool) -> None:
    with _pool(uri) as pool, pool.connection() as conn:
        if is_pg:
            sql = "SELECT g AS n, 'r' || g AS label FROM generate_series(1, 10000) g"
        else:
            sql = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 10000) "
                   "SELECT n, 'r' || n AS label FROM c")
        count = 0
        for row in conn.stream(sql, chunk_size=333):
            count += 1
            assert row.n == count and row["label"] == f"r{count}"
        assert count == 10000
        assert conn.query("SELECT 1 AS x")[0].x == 1


def test_a_stream_holds_the_connection_until_closed(uri: str) -> None:
    with _pool(uri) as pool, pool.connection() as conn:
        sql = "SELECT 1 AS a UNION ALL SELECT 2 UNION ALL SELECT 3"
        rows = conn.stream(sql, chunk_size=1)
        assert next(rows).a == 1
        with pytest.raises(sqlpool.Error):
            conn.execute("SELECT 1")
        rows.close()  # given up: the connection is free again
        assert conn.query("SELECT 5 AS x")[0].x == 5


def test_breaking_out_of_a_stream_leaves_a_clean_connection(pg_uri: str) -> None:
    with _pool(pg_uri) as pool, pool.connection() as conn:
        t = time.monotonic()
        for row in conn.stream("SELECT g FROM generate_series(1, 50000000) g", chunk_size=100):
            if row[0] == 150:
                break
        assert conn.query("SELECT 2 AS x")[0].x == 2
        assert time.monotonic() - t < 10
        with pytest.raises(sqlpool.DatabaseError) as e:
            for _ in conn.stream("SELECT 1 / (g - 3000) FROM generate_series(1, 5000) g", chunk_size=500):
                pass
        assert e.value.sqlstate == "22012"
        assert conn.query("SELECT 3 AS x")[0].x == 3


# -- COPY ------------------------------------------------------------------------


def test_copy_in_with_write_row_and_out(pg_uri: str) -> None:
    table = "t_" + uuid.uuid4().hex[:12]
    with _pool(pg_uri) as pool, pool.connection() as conn:
        conn.execute(f"CREATE TEMP TABLE {table} (id int, name text, data bytea, flag bool)")
        with conn.copy(f"COPY {table} (id, name, data, flag) FROM STDIN") as cp:
            for i in range(20000):
                cp.write_row((i, None if i % 7 == 0 else f"n\t{i}\\x", b"\x00\xff", i % 2 == 0))
        assert cp.rowcount == 20000
        row = conn.query(f"SELECT name, data, flag FROM {table} WHERE id = 1")[0]
        assert row.name == "n\t1\\x" and bytes(row.data) == b"\x00\xff" and row.flag is False
        assert conn.query(f"SELECT count(*) AS c FROM {table} WHERE name IS NULL")[0].c == 2858
        with conn.copy(f"COPY (SELECT id, name FROM {table} ORDER BY id LIMIT 8) TO STDOUT") as cp:
            rows = list(cp.rows())
        assert rows[0] == ("0", None) and rows[1] == ("1", "n\t1\\x")
        with conn.copy(f"COPY (SELECT id FROM {table} ORDER BY id) TO STDOUT (FORMAT csv)") as cp:
            data = b"".join(cp)
        assert data.count(b"\n") == 20000
        # write() takes raw data too.
        with conn.copy(f"COPY {table} (id, name) FROM STDIN (FORMAT csv)") as cp:
            cp.write("100001,a\n100002,")
            cp.write(b"b\n")
        assert cp.rowcount == 2


def test_write_and_write_row_keep_their_order(pg_uri: str) -> None:
    # write_row keeps rows as text until a flush; raw write() in between
    # must land after them, and a flush in the middle (64 KiB) changes nothing.
    t = f"copy_order_{uuid.uuid4().hex[:8]}"
    with _pool(pg_uri) as pool, pool.connection() as conn:
        conn.execute(f"CREATE TEMP TABLE {t} (seq int GENERATED ALWAYS AS IDENTITY, n int, s text)")
        with conn.copy(f"COPY {t} (n, s) FROM STDIN") as cp:
            n = 0
            for _ in range(3):
                for _ in range(5000):
                    cp.write_row((n, "tab\there"))
                    n += 1
                cp.write(f"{n}\traw\n")
                n += 1
        assert cp.rowcount == n
        # seq numbers the rows in the order the server received them.
        rows = conn.query(f"SELECT n, s FROM {t} ORDER BY seq")
        assert [r[0] for r in rows] == list(range(n))
        assert [r[1] for r in rows if r[1] == "raw"] == ["raw"] * 3
        assert rows[5000][1] == "raw" and rows[0][1] == "tab\there"


def test_write_row_formats_every_kind_of_chunk_as_one_value_at_a_time_would(pg_uri: str) -> None:
    # Chunks of plain columns take one %-format per row; any other chunk
    # (None, bool, text to escape, a subclass, rows of several lengths)
    # falls back per value. Both must give the same rows, and a value the
    # caller changes after write_row (a reused list, a bytearray) must
    # arrive as it was when written.
    t = f"copy_kinds_{uuid.uuid4().hex[:8]}"
    chunk = bulk._ROWS_PER_CHUNK

    class Name(str):
        pass

    written = []
    for i in range(chunk * 6):
        part = i // chunk
        if part == 0:
            row = (i, f"n{i}", i * 0.25)
        elif part == 1:
            row = (i, None if i % 3 == 0 else f"n{i}", float("inf") if i % 5 == 0 else -i / 3)
        elif part == 2:
            row = (i, f"a\\b\tc\r\n{i}", 1e300)
        elif part == 3:
            row = (i, Name(f"sub{i}"), True if i % 2 else 0.5)
        elif part == 4:
            row = (True, f"n{i}", 2.0) if i % 2 else (i, f"n{i}", 2.0)
        else:
            row = (i, f"n{i}", 3.5)
        written.append(row)
    with _pool(pg_uri) as pool, pool.connection() as conn:
        conn.execute(f"CREATE TEMP TABLE {t} (seq int GENERATED ALWAYS AS IDENTITY, n text, s text, x text, b bytea)")
        with conn.copy(f"COPY {t} (n, s, x) FROM STDIN") as cp:
            reused = [0, "", 0.0]
            for row in written:
                reused[:] = row
                cp.write_row(reused)
            # Rows of two lengths in one chunk: each row keeps its own.
            cp.write_row(("short", "row", None))
        assert cp.rowcount == len(written) + 1
        with conn.copy(f"COPY {t} (n, s, x, b) FROM STDIN") as cp:
            data = bytearray(b"before")
            cp.write_row(("m", "mutable", "x", data))
            data[:] = b"after!"
            cp.write_row(("m", "plain", "x", bytes(data)))
        rows = conn.query(f"SELECT n, s, x FROM {t} WHERE b IS NULL ORDER BY seq")
        expected = [tuple(bulk._escape(v) if v is not None else None for v in row) for row in written]
        assert [tuple(r) for r in rows[:-1]] == [
            tuple(None if v is None else bulk._unescape(v) for v in row) for row in expected
        ]
        assert tuple(rows[-1]) == ("short", "row", None)
        assert [bytes(r[0]) for r in conn.query(f"SELECT b FROM {t} WHERE b IS NOT NULL ORDER BY seq")] == [
            b"before",
            b"after!",
        ]


def test_a_bad_row_raises_the_servers_error_and_keeps_the_connection(pg_uri: str) -> None:
    with _pool(pg_uri) as pool, pool.connection() as conn:
        conn.execute("CREATE TEMP TABLE bad_rows (id int)")
        with pytest.raises(sqlpool.DatabaseError) as e:
            with conn.copy("COPY bad_rows FROM STDIN") as cp:
                cp.write_row((1,))
                cp.write_row(("x",))
        assert e.value.sqlstate == "22P02"
        # An exception inside the block gives the COPY up.
        with pytest.raises(KeyError):
            with conn.copy("COPY bad_rows FROM STDIN") as cp:
                cp.write_row((1,))
                raise KeyError("stop")
        assert conn.query("SELECT count(*) AS c FROM bad_rows")[0].c == 0


def test_copy_on_sqlite_is_not_supported(sqlite_uri: str) -> None:
    with _pool(sqlite_uri) as pool, pool.connection() as conn:
        with pytest.raises(sqlpool.NotSupportedError):
            conn.copy("COPY t FROM STDIN")
        with pytest.raises(sqlpool.NotSupportedError):
            list(conn.notifies(timeout=0))


# -- LISTEN/NOTIFY ---------------------------------------------------------------


def test_notifies_in_order_with_timeout(pg_uri: str) -> None:
    with _pool(pg_uri) as pool, pool.connection() as listener, pool.connection() as sender:
        listener.execute("LISTEN py_bulk")
        t = time.monotonic()
        assert list(listener.notifies(timeout=0.2)) == []
        assert time.monotonic() - t >= 0.15
        pid = sender.query("SELECT pg_backend_pid() AS p")[0].p
        sender.execute("SELECT pg_notify('py_bulk', g::text) FROM generate_series(1, 3000) g")
        got = list(listener.notifies(timeout=10, stop_after=3000))
        assert [n.payload for n in got] == [str(i) for i in range(1, 3001)]
        assert got[0] == Notify("py_bulk", "1", pid)


def test_notifies_from_another_thread_wake_the_listener(pg_uri: str) -> None:
    with _pool(pg_uri) as pool, pool.connection() as listener:
        listener.execute("LISTEN py_wake")

        def send() -> None:
            time.sleep(0.3)
            pool.execute("NOTIFY py_wake, 'hello'")

        threading.Thread(target=send).start()
        t = time.monotonic()
        got = next(iter(listener.notifies(timeout=10)))
        assert got.payload == "hello" and time.monotonic() - t < 5


# -- asyncio -----------------------------------------------------------------------


def test_async_stream_copy_and_notifies(pg_uri: str) -> None:
    async def main() -> None:
        async with sqlpool.AsyncPool(pg_uri, min_size=1, max_size=3) as pool:
            async with pool.connection() as conn:
                n = 0
                async for row in conn.stream("SELECT g FROM generate_series(1, 5000) g", chunk_size=700):
                    n += 1
                    assert row[0] == n
                assert n == 5000
                await conn.execute("CREATE TEMP TABLE ac (id int, name text)")
                async with conn.copy("COPY ac FROM STDIN") as cp:
                    for i in range(1000):
                        await cp.write_row((i, f"x{i}"))
                assert cp.rowcount == 1000
                async with conn.copy("COPY ac TO STDOUT") as cp:
                    data = b"".join([chunk async for chunk in cp])
                assert data.count(b"\n") == 1000
                await conn.execute("LISTEN py_async")

                async def send() -> None:
                    await asyncio.sleep(0.2)
                    await pool.execute("SELECT pg_notify('py_async', g::text) FROM generate_series(1, 50) g")

                task = asyncio.ensure_future(send())
                got = []
                async for note in conn.notifies(timeout=10, stop_after=50):
                    got.append(note.payload)
                await task
                assert got == [str(i) for i in range(1, 51)]

    asyncio.run(main())
