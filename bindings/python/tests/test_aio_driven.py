"""Statements driven by the event loop (``sqlpool_task``): cancelled
mid-statement, bounded by query_timeout against a server that stopped
answering, broken by a lost connection, on several connections at once,
and the same answers as through the completion queue."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

import sqlpool
from sqlpool import aio


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def driven():
    if not aio.loop_driven:
        pytest.skip("the native library has no sqlpool_task functions")


class FreezableProxy:
    """A TCP proxy in front of the server that can stop forwarding
    (``freeze``): to the client the server then stops answering, as a
    frozen server or a dead network path does."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self.closed.is_set():
                    time.sleep(0.01)  # swallowed: never forwarded
                if self.closed.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.closed.set()
        for s in [self.listener] + self.sockets:
            try:
                s.close()
            except OSError:
                pass


def proxied(uri: str, proxy: FreezableProxy) -> str:
    parts = urlsplit(uri)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def test_same_answers_with_and_without_the_loop_driving(uri, table, driven):
    async def main(loop_driven: bool):
        aio.loop_driven = loop_driven
        try:
            async with sqlpool.AsyncPool(uri, max_size=2) as pool:
                async with pool.connection() as conn:
                    assert (conn._driver is not None) == loop_driven
                    await conn.execute(f"CREATE TABLE {table} (id INTEGER, name TEXT)")
                    n = await conn.execute(f"INSERT INTO {table} VALUES (:a, :b)", {"a": 1, "b": "x"})
                    n += await conn.execute(f"INSERT INTO {table} VALUES ($1, $2)", (2, None))
                    n += await conn.execute_many(f"INSERT INTO {table} VALUES ($1, $2)", [(3, "z"), (4, "w")])
                    rows = await conn.query(f"SELECT id, name FROM {table} ORDER BY id")
                    first = await conn.query_first(f"SELECT id, name FROM {table} WHERE id = $1", (3,))
                    none = await conn.query_first(f"SELECT id FROM {table} WHERE id = $1", (99,))
                    dicts = await conn.query_as_dict(f"SELECT id FROM {table} ORDER BY id LIMIT 2")
                    with pytest.raises(sqlpool.ProgrammingError):
                        await conn.query("SELECT * FROM no_such_table_here")
                    await conn.execute(f"DROP TABLE {table}")
                    return n, [tuple(r) for r in rows], tuple(first), none, dicts
        finally:
            aio.loop_driven = True

    assert run(main(True)) == run(main(False))


def test_many_connections_at_once(uri, driven):
    async def main():
        async with sqlpool.AsyncPool(uri, min_size=4, max_size=4) as pool:
            async def worker(k: int) -> int:
                total = 0
                async with pool.connection() as conn:
                    for i in range(50):
                        row = await conn.query_first("SELECT CAST($1 AS INTEGER) + CAST($2 AS INTEGER) AS s", (k, i))
                        total += row.s
                return total

            totals = await asyncio.gather(*(worker(k) for k in range(8)))
            assert totals == [50 * k + sum(range(50)) for k in range(8)]
            assert pool.stats()["in_use"] == 0

    run(main())


def test_cancel_mid_statement_then_reuse_the_connection(pg_uri, driven):
    async def main():
        async with sqlpool.AsyncPool(pg_uri, min_size=1, max_size=1) as pool:
            async with pool.connection() as conn:
                task = asyncio.ensure_future(conn.query("SELECT pg_sleep(20)"))
                await asyncio.sleep(0.3)
                t0 = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # The loop goes on driving the cancel; the next statement
                # waits for it, then runs on the same connection.
                row = await conn.query_first("SELECT 41 + 1 AS a")
                assert row.a == 42
                assert time.monotonic() - t0 < 5
            await asyncio.sleep(0.05)
            s = pool.stats()
            assert s["in_use"] == 0 and s["total"] == 1

    run(main())


def test_query_timeout_against_a_server_that_stopped_answering(pg_uri, driven):
    parts = urlsplit(pg_uri)
    proxy = FreezableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        async def main():
            uri = proxied(pg_uri, proxy)
            async with sqlpool.AsyncPool(uri, min_size=1, max_size=1, query_timeout=0.3) as pool:
                async with pool.connection() as conn:
                    assert (await conn.query_first("SELECT 1 AS a")).a == 1
                    proxy.frozen.set()
                    ticks = 0

                    async def heartbeat():
                        nonlocal ticks
                        while True:
                            await asyncio.sleep(0.01)
                            ticks += 1

                    hb = asyncio.ensure_future(heartbeat())
                    t0 = time.monotonic()
                    with pytest.raises(sqlpool.QueryTimeout):
                        await conn.query_first("SELECT 1 AS a")
                    took = time.monotonic() - t0
                    hb.cancel()
                    # Bounded by query_timeout plus the cancel's grace, and
                    # the loop kept running meanwhile.
                    assert took < 3, took
                    assert ticks > 10 * took, (ticks, took)
                proxy.frozen.clear()
                # The connection was closed; the pool opens a new one.
                assert (await pool.query_first("SELECT 2 AS a")).a == 2

        run(main())
    finally:
        proxy.close()


def test_connection_lost_mid_statement(pg_uri, driven):
    async def main():
        async with sqlpool.AsyncPool(pg_uri, min_size=2, max_size=2) as pool:
            async with pool.connection() as conn, pool.connection() as other:
                pid = (await conn.query_first("SELECT pg_backend_pid() AS p")).p
                task = asyncio.ensure_future(conn.query("SELECT pg_sleep(20)"))
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                await other.execute("SELECT pg_terminate_backend($1)", (pid,))
                with pytest.raises(sqlpool.Error):
                    await task
                assert time.monotonic() - t0 < 5
            # Both back; the broken one is replaced.
            assert (await pool.query_first("SELECT 3 AS a")).a == 3
            assert pool.stats()["in_use"] == 0

    run(main())


def test_sqlite_cancel_mid_statement(sqlite_uri, driven):
    slow = ("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300000000) "
            "SELECT count(*) AS n FROM c")

    async def main():
        async with sqlpool.AsyncPool(sqlite_uri, min_size=1, max_size=1) as pool:
            async with pool.connection() as conn:
                task = asyncio.ensure_future(conn.query_first(slow))
                await asyncio.sleep(0.1)
                t0 = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert (await conn.query_first("SELECT 5 AS a")).a == 5
                assert time.monotonic() - t0 < 5

    run(main())


def test_loop_closed_with_a_statement_in_flight(pg_uri, driven):
    """A loop that ends while a statement runs: the connection is not
    reused (it may be mid-exchange) and nothing hangs."""
    pool = sqlpool.AsyncPool(pg_uri, min_size=1, max_size=1)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(pool.start())
        conn = loop.run_until_complete(pool.connection())
        fut = asyncio.ensure_future(conn.query("SELECT pg_sleep(20)"), loop=loop)
        loop.run_until_complete(asyncio.sleep(0.2))
        assert not fut.done()
        fut._log_destroy_pending = False  # left pending on purpose
    finally:
        loop.close()
    conn.close()  # its loop is gone: the task is abandoned, the connection closed
    loop = asyncio.new_event_loop()
    try:
        row = loop.run_until_complete(pool.query_first("SELECT 4 AS a"))
        assert row.a == 4
        assert pool.stats()["in_use"] == 0
        loop.run_until_complete(pool.stop())
    finally:
        loop.close()
