"""The asyncio API, on the library's completion queue."""

from __future__ import annotations

import asyncio
import gc
import random
import time

import pytest

import sqlpool
from sqlpool import _lib

pytestmark = pytest.mark.skipif(not _lib.HAS_ASYNC, reason="the library has no async API yet")


def run(coro):
    return asyncio.run(coro)


def test_basic_operations(uri, table, is_pg):
    async def main():
        pool = sqlpool.AsyncPool(uri, min_size=1, max_size=3)
        await pool.start()
        await pool.start()  # idempotent
        id_col = "id SERIAL PRIMARY KEY" if is_pg else "id INTEGER PRIMARY KEY"
        assert await pool.execute(f"CREATE TABLE {table} ({id_col}, x FLOAT, y FLOAT)") == 0
        async with pool.connection() as conn:
            n = await conn.execute(f"INSERT INTO {table} (x, y) VALUES (:x, :y)", {"x": 1.5, "y": 2.5})
            assert n == 1
            assert await conn.execute_many(
                f"INSERT INTO {table} (x, y) VALUES ($1, $2)", [(3.0, 4.0), (5.0, None)]) == 2
            rows = await conn.query(f"SELECT id, x, y FROM {table} ORDER BY id")
            assert [tuple(r) for r in rows] == [(1, 1.5, 2.5), (2, 3.0, 4.0), (3, 5.0, None)]
            assert (await conn.query_first(f"SELECT x FROM {table} WHERE id = $1", [2])).x == 3.0
            assert await conn.query_first(f"SELECT x FROM {table} WHERE id = $1", [9]) is None
            assert await conn.query_as_dict(f"SELECT id FROM {table} ORDER BY id LIMIT 1") == [{"id": 1}]
        assert len(await pool.query(f"SELECT * FROM {table}")) == 3
        assert (await pool.query_first(f"SELECT count(*) AS n FROM {table}")).n == 3
        assert await pool.query_as_dict(f"SELECT id FROM {table} WHERE id = :i", {"i": 3}) == [{"id": 3}]
        assert await pool.execute_many(f"INSERT INTO {table} (x) VALUES ($1)", [[7.0]]) == 1
        conn = await pool.connection()  # awaitable form
        assert (await conn.query_first("SELECT 1 AS a")).a == 1
        await conn.close()  # close is awaitable too
        assert pool.stats()["in_use"] == 0
        await pool.stop()
        await pool.stop()
        with pytest.raises(sqlpool.InterfaceError):
            await pool.query("SELECT 1")

    run(main())


def test_errors_and_use_after_close(uri, table):
    async def main():
        async with sqlpool.AsyncPool(uri, max_size=2) as pool:
            await pool.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
            await pool.execute(f"INSERT INTO {table} VALUES (1)")
            with pytest.raises(sqlpool.IntegrityError) as info:
                await pool.execute(f"INSERT INTO {table} VALUES (1)")
            assert info.value.sqlstate == "23505"
            with pytest.raises(sqlpool.ProgrammingError) as info:
                await pool.query("SELEC 1")
            assert info.value.sqlstate == "42601"
            with pytest.raises(sqlpool.ProgrammingError):
                await pool.query("SELECT :a AS v", {"b": 1})
            with pytest.raises(sqlpool.IntegrityError):
                await pool.execute_many(f"INSERT INTO {table} VALUES ($1)", [[2], [2]])
            async with pool.connection() as conn:
                pass
            with pytest.raises(sqlpool.InterfaceError):
                await conn.query("SELECT 1")
            assert pool.stats()["in_use"] == 0

    run(main())


def test_acquire_timeout(uri):
    async def main():
        async with sqlpool.AsyncPool(uri, min_size=1, max_size=1, conn_timeout=0.2) as pool:
            async with pool.connection():
                t0 = time.monotonic()
                with pytest.raises(sqlpool.PoolTimeout):
                    await pool.connection()
                assert 0.1 < time.monotonic() - t0 < 5
                with pytest.raises(sqlpool.PoolTimeout):
                    async with pool.connection(timeout=0):
                        pass
            assert pool.stats()["in_use"] == 0

    run(main())


def test_auto_start_and_several_loops(sqlite_uri):
    pool = sqlpool.AsyncPool(sqlite_uri, max_size=2)

    async def q():
        return (await pool.query_first("SELECT 7 AS a")).a

    assert run(q()) == 7  # first use starts it
    assert run(q()) == 7  # another event loop, same pool
    run(pool.stop())


def test_operations_on_one_connection_are_serialized(uri):
    async def main():
        async with sqlpool.AsyncPool(uri, max_size=1) as pool:
            async with pool.connection() as conn:
                results = await asyncio.gather(*(conn.query_first("SELECT $1 AS v", [str(i)]) for i in range(50)))
                assert [r.v for r in results] == [str(i) for i in range(50)]

    run(main())


def test_transactions(uri, table):
    async def main():
        async with sqlpool.AsyncPool(uri, max_size=2) as pool:
            await pool.execute(f"CREATE TABLE {table} (id INT)")
            async with pool.connection() as conn:
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} VALUES (1)")
                    async with conn.transaction():
                        await conn.execute(f"INSERT INTO {table} VALUES (2)")
                    with pytest.raises(KeyError):
                        async with conn.transaction():
                            await conn.execute(f"INSERT INTO {table} VALUES (3)")
                            raise KeyError
                with pytest.raises(ZeroDivisionError):
                    async with conn.transaction(isolation="serializable"):
                        await conn.execute(f"INSERT INTO {table} VALUES (4)")
                        1 / 0
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} VALUES (5)")
                    raise sqlpool.Rollback
                await conn.execute_script(f"INSERT INTO {table} VALUES (6); INSERT INTO {table} VALUES (7)")
            rows = await pool.query(f"SELECT id FROM {table} ORDER BY id")
            assert [r.id for r in rows] == [1, 2, 6, 7]

    run(main())


def test_cancel_500_waiting_tasks(uri):
    async def main():
        async with sqlpool.AsyncPool(uri, min_size=2, max_size=2, conn_timeout=60) as pool:
            held = [await pool.connection(), await pool.connection()]

            async def waiter():
                async with pool.connection() as conn:
                    await conn.query("SELECT 1")

            tasks = [asyncio.ensure_future(waiter()) for _ in range(500)]
            await asyncio.sleep(0.3)
            assert pool.stats()["waiting"] > 0
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            for c in held:
                c.close()
            await asyncio.sleep(0.2)  # late completions arrive and are handled
            s = pool.stats()
            assert s["in_use"] == 0 and s["waiting"] == 0 and s["idle"] == s["total"] == 2, s
            # The pool still works.
            assert (await pool.query_first("SELECT 1 AS a")).a == 1

    run(main())


def test_cancel_while_connections_are_handed_over(uri):
    # Release held connections and cancel waiters at the same moment: some
    # acquires complete OK for a task that was just cancelled.
    async def main():
        async with sqlpool.AsyncPool(uri, min_size=4, max_size=4, conn_timeout=60) as pool:
            for _ in range(20):
                held = [await pool.connection() for _ in range(4)]
                tasks = [asyncio.ensure_future(pool.query("SELECT 1")) for _ in range(40)]
                await asyncio.sleep(0.01)
                for c in held:
                    c.close()
                for t in random.sample(tasks, 30):
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.2)
            s = pool.stats()
            assert s["in_use"] == 0 and s["waiting"] == 0, s

    run(main())


def test_cancel_running_query(pg_uri):
    async def main():
        async with sqlpool.AsyncPool(pg_uri, min_size=1, max_size=1) as pool:
            async def slow():
                async with pool.connection() as conn:
                    await conn.query("SELECT pg_sleep(10)")

            task = asyncio.ensure_future(slow())
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The statement is cancelled on the server; the connection comes back.
            row = await pool.query_first("SELECT 1 AS a", None)
            assert row.a == 1 and time.monotonic() - t0 < 5
            await asyncio.sleep(0.1)
            assert pool.stats()["in_use"] == 0

    run(main())


def test_concurrent_inserts_seed_000(uri, table, is_pg):
    async def main():
        async with sqlpool.AsyncPool(uri, max_size=3) as pool:
            id_col = "id SERIAL PRIMARY KEY" if is_pg else "id INTEGER PRIMARY KEY"
            await pool.execute(f"CREATE TABLE {table} ({id_col}, x_position FLOAT, y_position FLOAT)")
            db1, db2, db3 = [await pool.connection() for _ in range(3)]
            sql = f"INSERT INTO {table} (x_position, y_position) VALUES (:x, :y)"
            inserts = await asyncio.gather(
                db1.execute(sql, {"x": 1.2, "y": 2.3}),
                db2.execute(sql, {"x": 4.3, "y": 5.6}),
                db3.execute(sql, {"x": 6.5, "y": 1.8}),
            )
            assert inserts == [1, 1, 1]
            rows = await db1.query(f"SELECT * FROM {table} ORDER BY id")
            assert len(rows) == 3 and {r.x_position for r in rows} == {1.2, 4.3, 6.5}
            for db in (db1, db2, db3):
                await db.close()

    run(main())


def _runqueue_wait() -> float:
    """Seconds this thread has spent runnable but not running (Linux
    schedstat), to tell CPU starvation by other processes (a loaded CI
    machine) from the event loop being blocked by us."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def test_stress_heartbeat_never_late(uri):
    """Seed 001's async stress: 1,000 tasks, 50 at a time, pool 5..30,
    each holding its connection a while (shorter holds to keep it quick).
    A heartbeat task ticking every 10 ms is never more than 50 ms late."""

    async def main():
        pool = sqlpool.AsyncPool(uri, min_size=5, max_size=30, conn_timeout=60, check_interval=0.5)
        await pool.start()
        semaphore = asyncio.Semaphore(50)
        errors = []
        max_in_use = 0
        worst_late = 0.0  # wall clock
        worst_blocked = 0.0  # minus the time the OS kept the loop thread waiting for a CPU
        done = asyncio.Event()
        started = 0

        async def heartbeat():
            nonlocal worst_late, worst_blocked, max_in_use
            interval = 0.01
            while not done.is_set():
                # Ticks that began before every task had taken its first
                # step measure the test's own burst (asyncio starting 1,000
                # coroutines at once), not the library: skip them.
                counted = started == 1000
                t0, w0 = time.monotonic(), _runqueue_wait()
                await asyncio.sleep(interval)
                late = time.monotonic() - t0 - interval
                if counted:
                    worst_late = max(worst_late, late)
                    worst_blocked = max(worst_blocked, late - (_runqueue_wait() - w0))
                max_in_use = max(max_in_use, pool.stats()["in_use"])

        async def work():
            nonlocal started
            started += 1
            async with semaphore:
                try:
                    async with pool.connection() as conn:
                        resp = await conn.query_first("SELECT 1 as a")
                        assert resp.a == 1
                        await asyncio.sleep(random.uniform(0.02, 0.1))
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

        hb = asyncio.ensure_future(heartbeat())
        t0 = time.monotonic()
        await asyncio.gather(*(work() for _ in range(1000)))
        elapsed = time.monotonic() - t0
        done.set()
        await hb
        s = pool.stats()
        await pool.stop()
        assert errors == []
        assert worst_blocked < 0.05, (
            f"event loop blocked for {worst_blocked * 1000:.1f} ms "
            f"(heartbeat late by {worst_late * 1000:.1f} ms in wall-clock time)"
        )
        assert 20 <= max_in_use <= 30, max_in_use
        assert s["in_use"] == 0 and s["total"] <= 30
        assert elapsed < 20

    # Move what already exists out of the collector's way: a full collection
    # of the test process's objects is itself a 20-50 ms pause.
    gc.collect()
    gc.freeze()
    try:
        run(main())
    finally:
        gc.unfreeze()
