"""Sync pool stress test on SQLite (PySQLXEngine's pool example, Sync tab).

    python examples/stress_sync.py [--requests 1000] [--min-hold 0.1] [--max-hold 0.5] [--uri sqlite:./dev.db]

Runs ``--requests`` jobs on 50 threads against a pool of 5..30
connections; each job queries and then holds its connection for a while.
"""

import argparse
import concurrent.futures
import logging
import random
import threading
import time

from sqlpool import LOG_CONFIG, Pool

LOG_CONFIG.SQLPOOL_DEV_MODE = True
LOG_CONFIG.SQLPOOL_SQL_LOG = True
LOG_CONFIG.SQLPOOL_USE_COLOR = True
LOG_CONFIG.SQLPOOL_ERROR_JSON_FMT = True

logging.basicConfig(level=logging.DEBUG)

MAX_CONCURRENT_WORKERS = 50
lock = threading.Lock()
errors = 0
max_in_use = 0


def simulate_work(pool: Pool, hold: tuple) -> None:
    global errors, max_in_use
    try:
        with pool.connection() as conn:
            # Simulate some work with the connection
            resp = conn.query_first("SELECT 1 as a")
            assert resp.a == 1
            in_use = pool.stats()["in_use"]
            with lock:
                max_in_use = max(max_in_use, in_use)
            time.sleep(random.uniform(*hold))
    except Exception as e:
        with lock:
            errors += 1
        logging.error(f"Error occurred: {e}")


def stress_test_sync_pool(pool: Pool, num_requests: int, hold: tuple) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=MAX_CONCURRENT_WORKERS) as executor:
        # Submit multiple tasks to simulate concurrent connections
        futures = [executor.submit(simulate_work, pool, hold) for _ in range(num_requests)]
        concurrent.futures.wait(futures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--min-hold", type=float, default=0.1)
    parser.add_argument("--max-hold", type=float, default=0.5)
    parser.add_argument("--uri", default="sqlite:./dev.db")
    args = parser.parse_args()

    start = time.monotonic()
    pool = Pool(uri=args.uri, min_size=5, max_size=30, conn_timeout=60, check_interval=0.5)
    pool.start()
    stress_test_sync_pool(pool, args.requests, (args.min_hold, args.max_hold))
    pool.stop()
    end = time.monotonic()
    logging.info(f"Time taken: {end - start:.2f} seconds")
    print(f"requests: {args.requests}, errors: {errors}, most connections in use: {max_in_use}")


if __name__ == "__main__":
    main()
