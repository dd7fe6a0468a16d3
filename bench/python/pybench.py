"""The Python scenarios of `make bench`, one measurement per process.

bench/run.py starts this once per measurement, so each library is imported
alone and the peak RSS (VmHWM) belongs to one library. It prints one
JSON object on stdout.

    pybench.py stress  --lib L --mode sync|async --uri U [--jobs 1000]
                       [--concurrency 50] [--min-size 5] [--max-size 30]
                       [--hold] [--hold-scale 1.0]
    pybench.py select1 --lib L --uri U --iters N        SELECT 1 on one held connection
    pybench.py point   --lib L --uri U --iters N --rows R   SQLite point query by key
    pybench.py fetch   --lib L --uri U                  every row of bench_fetch, every cell
    pybench.py insert  --lib L --uri U --rows N --how loop|many|copy
                                                       N inserts in one transaction (copy:
                                                       COPY FROM STDIN with write_row)
    pybench.py stream  --lib L --uri U --rows N         N generated rows streamed (peak RSS)
    pybench.py versions                                 installed versions of every library

Libraries (--lib): sqlpool, psycopg (psycopg 3 + psycopg_pool), asyncpg,
psqlpy, pysqlx (pysqlx-engine), sqlite3 (the standard library module, point
queries only). --mode / a "-async" suffix picks the asyncio API.

The stress scenario is the seed scenario (docs/benchmarks.md: 1,000 jobs, 50 at a
time, pool 5..30, each `SELECT 1 as a` checked, then an optional hold of
0.1-0.5 s). The holds are drawn up front with random.seed(0), so every
library sleeps exactly the same; errors are counted, never raised.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List

SELECT1 = "SELECT 1 AS a"
FETCH_SQL = "SELECT id, name, value, ts, data FROM bench_fetch"


def peak_rss_kb() -> int:
    """This process's peak RSS: VmHWM, which exec resets (ru_maxrss keeps the
    parent's peak from before the exec: run.py's own memory would count)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def out(obj: Dict[str, Any]) -> None:
    obj["maxrss_kb"] = peak_rss_kb()
    print(json.dumps(obj), flush=True)


def bench_key(i: int, rows: int) -> int:
    """Keys visited in the same order as bench/c/bench_common.h."""
    x = ((i + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    return x % rows + 1


def sqlite_path(uri: str) -> str:
    for prefix in ("sqlite://", "sqlite:"):
        if uri.startswith(prefix):
            return uri[len(prefix):]
    return uri


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def holds_for(jobs: int, scale: float) -> List[float]:
    rnd = random.Random(0)
    return [rnd.uniform(0.1, 0.5) * scale for _ in range(jobs)]


def schedule_bound(holds: List[float], servers: int) -> float:
    """Makespan of the holds taken in order by `servers` connections, each
    job on the first free one (what a FIFO pool achieves at best)."""
    free = [0.0] * servers
    for h in holds:
        heapq.heappush(free, heapq.heappop(free) + h)
    return max(free)


# ---------------------------------------------------------------------------
# Pools, per library: (open, connection-context, select-one-check, close)

def sync_pool(lib: str, uri: str, min_size: int, max_size: int):
    """Returns (pool, borrow(pool) -> context manager, check(conn) -> bool, close(pool))."""
    if lib == "sqlpool":
        import sqlpool

        pool = sqlpool.Pool(uri, min_size=min_size, max_size=max_size, conn_timeout=60, check_interval=0.5)
        return pool, lambda p: p.connection(), lambda c: c.query_first(SELECT1).a == 1, lambda p: p.stop()
    if lib == "psycopg":
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(uri, min_size=min_size, max_size=max_size, timeout=60, open=True)
        return (pool, lambda p: p.connection(), lambda c: c.execute(SELECT1).fetchone()[0] == 1,
                lambda p: p.close())
    if lib == "pysqlx":
        from pysqlx_engine import PySQLXEnginePoolSync

        pool = PySQLXEnginePoolSync(uri=uri, min_size=min_size, max_size=max_size, conn_timeout=60,
                                    check_interval=0.5)
        pool.start()
        return pool, lambda p: p.connection(), lambda c: c.query_first(SELECT1).a == 1, lambda p: p.stop()
    raise SystemExit(f"no sync pool for {lib}")


async def async_pool(lib: str, uri: str, min_size: int, max_size: int):
    """Returns (pool, borrow(pool) -> async context manager, async check(conn), async close(pool))."""
    if lib == "sqlpool":
        import sqlpool

        pool = sqlpool.AsyncPool(uri, min_size=min_size, max_size=max_size, conn_timeout=60, check_interval=0.5)
        await pool.start()

        async def check(c):
            return (await c.query_first(SELECT1)).a == 1

        async def close(p):
            await p.stop()

        return pool, lambda p: p.connection(), check, close
    if lib == "psycopg":
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(uri, min_size=min_size, max_size=max_size, timeout=60, open=False)
        await pool.open()

        async def check(c):
            cur = await c.execute(SELECT1)
            return (await cur.fetchone())[0] == 1

        async def close(p):
            await p.close()

        return pool, lambda p: p.connection(), check, close
    if lib == "asyncpg":
        import asyncpg

        pool = await asyncpg.create_pool(uri, min_size=min_size, max_size=max_size, timeout=60)

        async def check(c):
            return (await c.fetchrow(SELECT1))["a"] == 1

        async def close(p):
            await p.close()

        return pool, lambda p: p.acquire(), check, close
    if lib == "psqlpy":
        import psqlpy

        pool = psqlpy.ConnectionPool(dsn=uri, max_db_pool_size=max_size)

        async def check(c):
            return (await c.fetch_row(SELECT1)).result()["a"] == 1

        async def close(p):
            p.close()

        return pool, lambda p: p.acquire(), check, close
    if lib == "pysqlx":
        from pysqlx_engine import PySQLXEnginePool

        pool = PySQLXEnginePool(uri=uri, min_size=min_size, max_size=max_size, conn_timeout=60, check_interval=0.5)
        await pool.start()

        async def check(c):
            return (await c.query_first(SELECT1)).a == 1

        async def close(p):
            await p.stop()

        return pool, lambda p: p.connection(), check, close
    raise SystemExit(f"no async pool for {lib}")


# ---------------------------------------------------------------------------
# 5, 8. The seed stress scenario

def cmd_stress(a: argparse.Namespace) -> None:
    holds = holds_for(a.jobs, a.hold_scale) if a.hold else [0.0] * a.jobs
    errors: List[str] = []
    if a.mode == "sync":
        start = time.perf_counter()
        pool, borrow, check, close = sync_pool(a.lib, a.uri, a.min_size, a.max_size)

        def work(i: int) -> None:
            try:
                with borrow(pool) as conn:
                    if not check(conn):
                        errors.append("wrong value")
                    if holds[i]:
                        time.sleep(holds[i])
            except Exception as e:  # counted, as the seed logs and goes on
                errors.append(f"{type(e).__name__}: {e}")

        with ThreadPoolExecutor(max_workers=a.concurrency) as ex:
            for f in [ex.submit(work, i) for i in range(a.jobs)]:
                f.result()
        close(pool)
        seconds = time.perf_counter() - start
    else:
        async def main() -> float:
            start = time.perf_counter()
            pool, borrow, check, close = await async_pool(a.lib, a.uri, a.min_size, a.max_size)
            sem = asyncio.Semaphore(a.concurrency)

            async def work(i: int) -> None:
                async with sem:
                    try:
                        async with borrow(pool) as conn:
                            if not await check(conn):
                                errors.append("wrong value")
                            if holds[i]:
                                await asyncio.sleep(holds[i])
                    except Exception as e:
                        errors.append(f"{type(e).__name__}: {e}")

            await asyncio.gather(*(work(i) for i in range(a.jobs)))
            await close(pool)
            return time.perf_counter() - start

        seconds = asyncio.run(main())
    result: Dict[str, Any] = {"seconds": seconds, "errors": len(errors), "jobs": a.jobs}
    if errors:
        result["first_error"] = errors[0][:300]
    if a.hold:
        result["ideal"] = sum(holds) / a.max_size
        result["schedule_bound"] = schedule_bound(holds, a.max_size)
    out(result)


# ---------------------------------------------------------------------------
# 6, 7. Micro-benchmarks on one held connection

def timed_loop(fn: Callable[[int], Any], iters: int) -> float:
    for i in range(max(iters // 10, 50)):
        fn(i)
    start = time.perf_counter_ns()
    for i in range(iters):
        fn(i)
    return (time.perf_counter_ns() - start) / iters


async def atimed_loop(fn: Callable[[int], Any], iters: int) -> float:
    for i in range(max(iters // 10, 50)):
        await fn(i)
    start = time.perf_counter_ns()
    for i in range(iters):
        await fn(i)
    return (time.perf_counter_ns() - start) / iters


def touch_rows(rows: Any, as_dicts: bool = False) -> int:
    """Reads every cell; returns the cell count."""
    n = 0
    if as_dicts:
        for row in rows:
            for _ in row.values():
                n += 1
    else:
        for row in rows:
            for _ in row:
                n += 1
    return n


def cmd_acquire(a: argparse.Namespace) -> None:
    """Acquire + release with each library's default settings (sizes
    aside): `workers` threads (sync) or tasks (async), each `iters` times;
    time per operation over all workers, as the C program reports."""
    lib, uri, workers, iters = a.lib, a.uri, a.workers, a.iters

    def run_threads(acquire_release: Callable[[], Any]) -> float:
        for _ in range(max(iters // 10, 50)):
            acquire_release()
        barrier = threading.Barrier(workers + 1)

        def work() -> None:
            barrier.wait()
            for _ in range(iters):
                acquire_release()

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter_ns()
        for t in threads:
            t.join()
        return (time.perf_counter_ns() - start) / (workers * iters)

    async def run_tasks(acquire_release: Callable[[], Any]) -> float:
        for _ in range(max(iters // 10, 50)):
            await acquire_release()

        async def work() -> None:
            for _ in range(iters):
                await acquire_release()

        start = time.perf_counter_ns()
        await asyncio.gather(*(work() for _ in range(workers)))
        return (time.perf_counter_ns() - start) / (workers * iters)

    if lib == "sqlpool":
        import sqlpool

        with sqlpool.Pool(uri, min_size=workers, max_size=workers) as pool:
            def once() -> None:
                with pool.connection():
                    pass
            ns = run_threads(once)
    elif lib == "sqlpool-async":
        import sqlpool

        async def main() -> float:
            async with sqlpool.AsyncPool(uri, min_size=workers, max_size=workers) as pool:
                async def once() -> None:
                    async with pool.connection():
                        pass
                return await run_tasks(once)

        ns = asyncio.run(main())
    elif lib == "psycopg":
        from psycopg_pool import ConnectionPool

        with ConnectionPool(uri, min_size=workers, max_size=workers, open=True) as pool:
            pool.wait()

            def once() -> None:
                with pool.connection():
                    pass
            ns = run_threads(once)
    elif lib == "psycopg-async":
        from psycopg_pool import AsyncConnectionPool

        async def main() -> float:
            pool = AsyncConnectionPool(uri, min_size=workers, max_size=workers, open=False)
            await pool.open()
            await pool.wait()

            async def once() -> None:
                async with pool.connection():
                    pass
            try:
                return await run_tasks(once)
            finally:
                await pool.close()

        ns = asyncio.run(main())
    else:
        raise SystemExit(f"acquire: unknown library {lib}")
    out({"ns_per_op": ns})


def cmd_select1(a: argparse.Namespace) -> None:
    lib, iters, uri = a.lib, a.iters, a.uri
    if lib == "sqlpool":
        import sqlpool

        with sqlpool.Pool(uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
            ns = timed_loop(lambda i: conn.query_first(SELECT1).a, iters)
    elif lib == "sqlpool-async":
        import sqlpool

        async def main() -> float:
            pool = sqlpool.AsyncPool(uri, min_size=1, max_size=1)
            await pool.start()
            async with pool.connection() as conn:
                async def q(i):
                    return (await conn.query_first(SELECT1)).a
                ns = await atimed_loop(q, iters)
            await pool.stop()
            return ns

        ns = asyncio.run(main())
    elif lib == "psycopg":
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            ns = timed_loop(lambda i: conn.execute(SELECT1).fetchone()[0], iters)
    elif lib == "psycopg-async":
        import psycopg

        async def main() -> float:
            conn = await psycopg.AsyncConnection.connect(uri, autocommit=True)

            async def q(i):
                cur = await conn.execute(SELECT1)
                return (await cur.fetchone())[0]

            ns = await atimed_loop(q, iters)
            await conn.close()
            return ns

        ns = asyncio.run(main())
    elif lib == "asyncpg":
        import asyncpg

        async def main() -> float:
            conn = await asyncpg.connect(uri)

            async def q(i):
                return (await conn.fetchrow(SELECT1))["a"]

            ns = await atimed_loop(q, iters)
            await conn.close()
            return ns

        ns = asyncio.run(main())
    elif lib == "psqlpy":
        import psqlpy

        async def main() -> float:
            pool = psqlpy.ConnectionPool(dsn=uri, max_db_pool_size=2)
            async with pool.acquire() as conn:
                async def q(i):
                    return (await conn.fetch_row(SELECT1)).result()["a"]
                ns = await atimed_loop(q, iters)
            pool.close()
            return ns

        ns = asyncio.run(main())
    elif lib == "pysqlx":
        from pysqlx_engine import PySQLXEngineSync

        conn = PySQLXEngineSync(uri=uri)
        conn.connect()
        ns = timed_loop(lambda i: conn.query_first(SELECT1).a, iters)
        conn.close()
    elif lib == "sqlite3":
        import sqlite3

        lite = sqlite3.connect(sqlite_path(uri), isolation_level=None)
        ns = timed_loop(lambda i: lite.execute(SELECT1).fetchone()[0], iters)
        lite.close()
    else:
        raise SystemExit(f"select1: unknown library {lib}")
    out({"ns_per_op": ns})


POINT_SQL = {
    "sqlpool": "SELECT id, name, value FROM bench_point WHERE id = ?1",
    "sqlite3": "SELECT id, name, value FROM bench_point WHERE id = ?",
    "pysqlx": "SELECT id, name, value FROM bench_point WHERE id = :id",
}


def cmd_point(a: argparse.Namespace) -> None:
    lib, iters, uri, rows = a.lib, a.iters, a.uri, a.rows
    keys = [bench_key(i, rows) for i in range(iters + max(iters // 10, 50))]
    if lib == "sqlpool":
        import sqlpool

        sql = POINT_SQL["sqlpool"]
        with sqlpool.Pool(uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
            ns = timed_loop(lambda i: conn.query_first(sql, [keys[i]])[2], iters)
    elif lib == "sqlpool-async":
        import sqlpool

        sql = POINT_SQL["sqlpool"]

        async def main() -> float:
            pool = sqlpool.AsyncPool(uri, min_size=1, max_size=1)
            await pool.start()
            async with pool.connection() as conn:
                async def q(i):
                    return (await conn.query_first(sql, [keys[i]]))[2]
                ns = await atimed_loop(q, iters)
            await pool.stop()
            return ns

        ns = asyncio.run(main())
    elif lib == "sqlite3":
        import sqlite3

        conn = sqlite3.connect(sqlite_path(uri), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        sql = POINT_SQL["sqlite3"]
        ns = timed_loop(lambda i: conn.execute(sql, (keys[i],)).fetchone()[2], iters)
        conn.close()
    elif lib == "pysqlx":
        from pysqlx_engine import PySQLXEngineSync

        conn = PySQLXEngineSync(uri=uri)
        conn.connect()
        sql = POINT_SQL["pysqlx"]
        ns = timed_loop(lambda i: conn.query_first(sql, {"id": keys[i]}).value, iters)
        conn.close()
    else:
        raise SystemExit(f"point: unknown library {lib}")
    out({"ns_per_op": ns})


def cmd_fetch(a: argparse.Namespace) -> None:
    lib, uri = a.lib, a.uri
    if lib == "sqlpool":
        import sqlpool

        with sqlpool.Pool(uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
            conn.query(FETCH_SQL + " LIMIT 10")
            start = time.perf_counter_ns()
            rows = conn.query(FETCH_SQL)
            cells = touch_rows(rows)
            ns = time.perf_counter_ns() - start
    elif lib == "sqlpool-async":
        import sqlpool

        async def main():
            pool = sqlpool.AsyncPool(uri, min_size=1, max_size=1)
            await pool.start()
            async with pool.connection() as conn:
                await conn.query(FETCH_SQL + " LIMIT 10")
                start = time.perf_counter_ns()
                rows = await conn.query(FETCH_SQL)
                cells = touch_rows(rows)
                ns = time.perf_counter_ns() - start
            await pool.stop()
            return ns, cells

        ns, cells = asyncio.run(main())
    elif lib == "psycopg":
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            cur = conn.cursor(binary=True)
            cur.execute(FETCH_SQL + " LIMIT 10").fetchall()
            start = time.perf_counter_ns()
            rows = cur.execute(FETCH_SQL).fetchall()
            cells = touch_rows(rows)
            ns = time.perf_counter_ns() - start
    elif lib == "asyncpg":
        import asyncpg

        async def main():
            conn = await asyncpg.connect(uri)
            await conn.fetch(FETCH_SQL + " LIMIT 10")
            start = time.perf_counter_ns()
            rows = await conn.fetch(FETCH_SQL)
            cells = touch_rows(rows)
            ns = time.perf_counter_ns() - start
            await conn.close()
            return ns, cells

        ns, cells = asyncio.run(main())
    elif lib == "psqlpy":
        import psqlpy

        async def main():
            pool = psqlpy.ConnectionPool(dsn=uri, max_db_pool_size=2)
            async with pool.acquire() as conn:
                (await conn.fetch(FETCH_SQL + " LIMIT 10")).result()
                start = time.perf_counter_ns()
                rows = (await conn.fetch(FETCH_SQL)).result()
                cells = touch_rows(rows, as_dicts=True)
                ns = time.perf_counter_ns() - start
            pool.close()
            return ns, cells

        ns, cells = asyncio.run(main())
    elif lib == "pysqlx":
        from pysqlx_engine import PySQLXEngineSync

        conn = PySQLXEngineSync(uri=uri)
        conn.connect()
        conn.query(FETCH_SQL + " LIMIT 10")
        start = time.perf_counter_ns()
        rows = conn.query(FETCH_SQL)
        cells = touch_rows(rows)
        ns = time.perf_counter_ns() - start
        conn.close()
    elif lib == "sqlite3":
        import sqlite3

        lite = sqlite3.connect(sqlite_path(uri), isolation_level=None)
        lite.execute(FETCH_SQL + " LIMIT 10").fetchall()
        start = time.perf_counter_ns()
        rows = lite.execute(FETCH_SQL).fetchall()
        cells = touch_rows(rows)
        ns = time.perf_counter_ns() - start
        lite.close()
    else:
        raise SystemExit(f"fetch: unknown library {lib}")
    out({"ms": ns / 1e6, "cells": cells})


COPY_SQL = "COPY bench_insert (id, name, value) FROM STDIN"
INSERT_SQL = {
    "sqlpool": "INSERT INTO bench_insert (id, name, value) VALUES ($1, $2, $3)",
    "psycopg": "INSERT INTO bench_insert (id, name, value) VALUES (%s, %s, %s)",
    "sqlite3": "INSERT INTO bench_insert (id, name, value) VALUES (?, ?, ?)",
}


def cmd_insert(a: argparse.Namespace) -> None:
    lib, uri, n, how = a.lib, a.uri, a.rows, a.how
    data = [(i, f"name-{i}", i * 0.5) for i in range(n)]
    if lib == "sqlpool":
        import sqlpool

        sql = INSERT_SQL["sqlpool"]
        with sqlpool.Pool(uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
            conn.execute("DELETE FROM bench_insert" if is_sqlite(uri) else "TRUNCATE bench_insert")
            start = time.perf_counter_ns()
            if how == "many":
                conn.execute_many(sql, data)
            elif how == "copy":
                with conn.copy(COPY_SQL) as cp:
                    for row in data:
                        cp.write_row(row)
            else:
                with conn.transaction():
                    for row in data:
                        conn.execute(sql, row)
            ns = time.perf_counter_ns() - start
            count = conn.query_first("SELECT count(*) AS n FROM bench_insert").n
    elif lib == "psycopg":
        import psycopg

        sql = INSERT_SQL["psycopg"]
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("TRUNCATE bench_insert")
            start = time.perf_counter_ns()
            with conn.transaction():
                cur = conn.cursor()
                if how == "many":
                    cur.executemany(sql, data)
                elif how == "copy":
                    with cur.copy(COPY_SQL) as cp:
                        for row in data:
                            cp.write_row(row)
                else:
                    for row in data:
                        cur.execute(sql, row)
            ns = time.perf_counter_ns() - start
            count = conn.execute("SELECT count(*) FROM bench_insert").fetchone()[0]
    elif lib == "sqlite3":
        import sqlite3

        sql = INSERT_SQL["sqlite3"]
        lite = sqlite3.connect(sqlite_path(uri), isolation_level=None)
        lite.execute("DELETE FROM bench_insert")
        start = time.perf_counter_ns()
        lite.execute("BEGIN")
        if how == "many":
            lite.executemany(sql, data)
        else:
            for row in data:
                lite.execute(sql, row)
        lite.execute("COMMIT")
        ns = time.perf_counter_ns() - start
        count = lite.execute("SELECT count(*) FROM bench_insert").fetchone()[0]
        lite.close()
    else:
        raise SystemExit(f"insert: unknown library {lib}")
    if count != n:
        raise SystemExit(f"insert: {count} rows, expected {n}")
    out({"ms": ns / 1e6, "rows": count})


def stream_sql(uri: str, rows: int) -> str:
    if is_sqlite(uri):
        return (f"WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < {rows}) "
                "SELECT g AS id, 'name-' || g AS name FROM c")
    return f"SELECT g AS id, 'name-' || g AS name FROM generate_series(1, {rows}) g"


def cmd_stream(a: argparse.Namespace) -> None:
    """Every row of a large result read one by one without holding it whole:
    sqlpool's conn.stream(), psycopg's server-side (named) cursor."""
    lib, uri, n = a.lib, a.uri, a.rows
    sql = stream_sql(uri, n)
    count = check = 0
    start = time.perf_counter_ns()
    if lib == "sqlpool":
        import sqlpool

        with sqlpool.Pool(uri, min_size=1, max_size=1) as pool, pool.connection() as conn:
            for row in conn.stream(sql, chunk_size=5000):
                count += 1
                check += row[0] + len(row[1])
    elif lib == "psycopg":
        import psycopg

        with psycopg.connect(uri) as conn, conn.cursor(name="bench_stream") as cur:
            cur.itersize = 5000
            cur.execute(sql)
            for row in cur:
                count += 1
                check += row[0] + len(row[1])
    else:
        raise SystemExit(f"stream: unknown library {lib}")
    ns = time.perf_counter_ns() - start
    if count != n:
        raise SystemExit(f"stream: {count} rows, expected {n}")
    out({"ms": ns / 1e6, "rows": count, "check": check})


def cmd_versions(a: argparse.Namespace) -> None:
    from importlib import metadata
    import sqlite3

    versions: Dict[str, Any] = {"python": sys.version.split()[0], "sqlite3": sqlite3.sqlite_version}
    for lib, dist in [("psycopg", "psycopg"), ("psycopg_pool", "psycopg-pool"), ("psycopg_binary", "psycopg-binary"),
                      ("asyncpg", "asyncpg"), ("psqlpy", "psqlpy"), ("pysqlx", "pysqlx-engine"),
                      ("matplotlib", "matplotlib")]:
        try:
            versions[lib] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    try:
        import sqlpool

        versions["sqlpool"] = sqlpool.__version__
    except Exception as e:  # reported, the caller decides
        versions["sqlpool"] = None
        versions["sqlpool_error"] = str(e)
    print(json.dumps(versions))


def main(argv: List[str]) -> None:
    p = argparse.ArgumentParser(prog="pybench.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stress")
    s.add_argument("--lib", required=True)
    s.add_argument("--mode", choices=["sync", "async"], required=True)
    s.add_argument("--uri", required=True)
    s.add_argument("--jobs", type=int, default=1000)
    s.add_argument("--concurrency", type=int, default=50)
    s.add_argument("--min-size", type=int, default=5)
    s.add_argument("--max-size", type=int, default=30)
    s.add_argument("--hold", action="store_true")
    s.add_argument("--hold-scale", type=float, default=1.0)
    for name in ("select1", "point", "fetch"):
        q = sub.add_parser(name)
        q.add_argument("--lib", required=True)
        q.add_argument("--uri", required=True)
        if name != "fetch":
            q.add_argument("--iters", type=int, default=10000)
        if name == "point":
            q.add_argument("--rows", type=int, required=True)
    i = sub.add_parser("insert")
    i.add_argument("--lib", required=True)
    i.add_argument("--uri", required=True)
    i.add_argument("--rows", type=int, default=10000)
    i.add_argument("--how", choices=["loop", "many", "copy"], required=True)
    st = sub.add_parser("stream")
    st.add_argument("--lib", required=True)
    st.add_argument("--uri", required=True)
    st.add_argument("--rows", type=int, required=True)
    ac = sub.add_parser("acquire")
    ac.add_argument("--lib", required=True)
    ac.add_argument("--uri", required=True)
    ac.add_argument("--workers", type=int, default=1)
    ac.add_argument("--iters", type=int, default=10000)
    sub.add_parser("versions")
    a = p.parse_args(argv)
    {"stress": cmd_stress, "acquire": cmd_acquire, "select1": cmd_select1, "point": cmd_point, "fetch": cmd_fetch,
     "insert": cmd_insert, "stream": cmd_stream, "versions": cmd_versions}[a.cmd](a)


if __name__ == "__main__":
    main(sys.argv[1:])
