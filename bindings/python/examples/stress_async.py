"""Async pool stress test on SQLite (PySQLXEngine's pool example, Async tab).

    python examples/stress_async.py [--requests 1000] [--min-hold 0.1] [--max-hold 0.5] [--uri sqlite:./dev.db]

Runs ``--requests`` tasks, at most 50 at a time, on a pool of 5..30
connections; each task queries and then holds its connection for a while.
"""

import argparse
import asyncio
import logging
import random
import time

from sqlpool import LOG_CONFIG, AsyncPool

LOG_CONFIG.SQLPOOL_DEV_MODE = True
LOG_CONFIG.SQLPOOL_SQL_LOG = True
LOG_CONFIG.SQLPOOL_USE_COLOR = True
LOG_CONFIG.SQLPOOL_ERROR_JSON_FMT = True

logging.basicConfig(level=logging.DEBUG)

MAX_CONCURRENT_WORKERS = 50
errors = 0
max_in_use = 0


async def simulate_work_async(pool: AsyncPool, semaphore: asyncio.Semaphore, hold: tuple) -> None:
    global errors, max_in_use
    async with semaphore:  # Limit the number of simultaneous workers
        try:
            async with pool.connection() as conn:
                # Simulate some async work
                resp = await conn.query_first("SELECT 1 as a")
                assert resp.a == 1
                max_in_use = max(max_in_use, pool.stats()["in_use"])
                await asyncio.sleep(random.uniform(*hold))
        except Exception as e:
            errors += 1
            logging.error(f"Error occurred: {e}")


async def stress_test_async_pool(pool: AsyncPool, num_requests: int, hold: tuple) -> None:
    semaphore = asyncio.Semaphore(MAX_CONCURRENT_WORKERS)
    tasks = [simulate_work_async(pool, semaphore, hold) for _ in range(num_requests)]
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--min-hold", type=float, default=0.1)
    parser.add_argument("--max-hold", type=float, default=0.5)
    parser.add_argument("--uri", default="sqlite:./dev.db")
    args = parser.parse_args()
    start = time.monotonic()

    async def run() -> None:
        pool = AsyncPool(uri=args.uri, min_size=5, max_size=30, conn_timeout=60, check_interval=0.5)
        await pool.start()
        await stress_test_async_pool(pool, args.requests, (args.min_hold, args.max_hold))
        await pool.stop()  # Properly close the pool after testing

    asyncio.run(run())
    end = time.monotonic()
    logging.info(f"Time taken: {end - start:.2f} seconds")
    print(f"requests: {args.requests}, errors: {errors}, most connections in use: {max_in_use}")


if __name__ == "__main__":
    main()
