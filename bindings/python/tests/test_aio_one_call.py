"""The asyncio fast paths that take one C call: an idle connection handed
over at once (never ahead of queued waiters), a query started and polled
in one call (its rows read at once, or the loop drives the rest), and the
same answers with the fast paths switched off."""

from __future__ import annotations

import asyncio

import pytest

import sqlpool
from sqlpool import aio


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def fast():
    if not (aio.acquire_in_one_call and aio.query_in_one_call):
        pytest.skip("the native library lacks the one-call functions")


def test_idle_connection_is_taken_at_once(uri, fast):
    async def main():
        async with sqlpool.AsyncPool(uri, min_size=1, max_size=1) as pool:
            got = pool._acquire_now(None)
            assert isinstance(got, aio.AsyncConnection), got
            assert pool.stats()["in_use"] == 1
            await got.close()
            assert pool.stats()["idle"] == 1

    run(main())


def test_waiters_keep_their_turn(uri, fast):
    """A connection released while tasks wait goes to the first of them;
    a caller arriving then queues behind them instead of taking it."""

    async def main():
        async with sqlpool.AsyncPool(uri, min_size=1, max_size=1) as pool:
            order = []
            held = await pool.connection()

            async def waiter(name):
                async with pool.connection() as conn:
                    order.append(name)
                    await asyncio.sleep(0.01)
                    assert (await conn.query_first("SELECT 1 AS a")).a == 1

            tasks = [asyncio.create_task(waiter(n)) for n in ("first", "second")]
            while pool.stats()["waiting"] < 2:
                await asyncio.sleep(0.001)
            held.close()
            # Released with two queued: the fast path must not take it.
            late = pool._acquire_now(None)
            assert type(late) is tuple, "a late caller jumped the queue"
            conn = await pool._acquire(None, late)
            order.append("late")
            conn.close()
            await asyncio.gather(*tasks)
            assert order == ["first", "second", "late"]
            assert pool.stats()["idle"] == 1

    run(main())


def test_cancelled_waiter_gives_the_connection_back(uri, fast):
    async def main():
        async with sqlpool.AsyncPool(uri, min_size=1, max_size=1) as pool:
            held = await pool.connection()
            waiting = asyncio.create_task(pool.connection().__aenter__())
            while pool.stats()["waiting"] < 1:
                await asyncio.sleep(0.001)
            # Released and cancelled in the same turn of the loop: the
            # connection handed to the waiter goes back to the pool.
            held.close()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            for _ in range(200):
                if pool.stats()["idle"] == 1:
                    break
                await asyncio.sleep(0.005)
            assert pool.stats()["idle"] == 1 and pool.stats()["in_use"] == 0
            async with pool.connection() as conn:
                assert (await conn.query_first("SELECT 2 AS a")).a == 2

    run(main())


def test_fast_and_general_paths_agree(uri, fast, monkeypatch):
    sqls = [
        ("SELECT 1 AS a, 'x' AS b", None),
        ("SELECT 1 AS a WHERE 1 = 0", None),
        ("SELECT 1 AS a UNION ALL SELECT 2", None),
        ("SELECT ? AS v" if "sqlite" in uri else "SELECT $1::bigint AS v", [7]),
    ]

    async def answers():
        got = []
        async with sqlpool.AsyncPool(uri, min_size=1, max_size=1) as pool:
            async with pool.connection() as conn:
                for sql, params in sqls:
                    got.append(await conn.query_first(sql, params))
                    got.append(await conn.query(sql, params))
        return got

    fast_answers = run(answers())
    monkeypatch.setattr(aio, "query_in_one_call", False)
    monkeypatch.setattr(aio, "acquire_in_one_call", False)
    assert run(answers()) == fast_answers
    assert fast_answers[0].a == 1 and fast_answers[2] is None and len(fast_answers[5]) == 2


def test_slow_query_is_driven_by_the_loop_and_cancellable(pg_uri, fast):
    """A query that does not complete in its first call is left to the
    loop; cancelling its caller cancels it, and the connection stays usable."""

    async def main():
        async with sqlpool.AsyncPool(pg_uri, min_size=1, max_size=1) as pool:
            async with pool.connection() as conn:
                row = await conn.query_first("SELECT 5 AS a FROM pg_sleep(0.05)")
                assert row.a == 5
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.query_first("SELECT pg_sleep(10)"), 0.1)
                assert (await conn.query_first("SELECT 3 AS a")).a == 3

    run(main())


def test_errors_are_raised_by_the_fast_path(uri, fast):
    async def main():
        async with sqlpool.AsyncPool(uri, min_size=1, max_size=1) as pool:
            async with pool.connection() as conn:
                with pytest.raises(sqlpool.Error, match="no_such_table"):
                    await conn.query_first("SELECT * FROM no_such_table")
                assert (await conn.query_first("SELECT 4 AS a")).a == 4
            conn_after = conn
        with pytest.raises(sqlpool.InterfaceError):
            await conn_after.query_first("SELECT 1")

    run(main())
