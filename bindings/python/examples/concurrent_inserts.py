"""Simple pool with concurrent connections (PostgreSQL).

PySQLXEngine's "pool with concurrent connections" example, written for
sqlpool: three connections insert concurrently, then one selects.

    python examples/concurrent_inserts.py postgresql://user:password@localhost:5432/db

(The URI may also come from SQLPOOL_EXAMPLE_PG_URL or SQLPOOL_TEST_PG_URL.)
"""

import asyncio
import os
import sys

from sqlpool import AsyncPool

uri = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get("SQLPOOL_EXAMPLE_PG_URL") \
    or os.environ.get("SQLPOOL_TEST_PG_URL") or "postgresql://user:password@localhost:5432/db"

TABLE = "sqlpool_example_users"


async def create_table(pool: AsyncPool) -> None:
    await pool.execute(f"DROP TABLE IF EXISTS {TABLE}")
    sql = f"CREATE TABLE {TABLE} (id SERIAL PRIMARY KEY, x_position FLOAT, y_position FLOAT)"
    await pool.execute(sql)


async def main() -> None:
    # a pool of at most 3 connections
    pool = AsyncPool(uri, max_size=3)
    await pool.start()

    # create users table
    await create_table(pool)

    # borrow three connections
    db1 = await pool.connection()
    db2 = await pool.connection()
    db3 = await pool.connection()

    sql = f"INSERT INTO {TABLE} (x_position, y_position) VALUES (:x, :y)"
    # these calls are lazy, not blocking.
    calls = [
        db1.execute(sql, parameters={"x": 1.2, "y": 2.3}),
        db2.execute(sql, parameters={"x": 4.3, "y": 5.6}),
        db3.execute(sql, parameters={"x": 6.5, "y": 1.8}),
    ]

    # run the calls concurrently
    inserts = await asyncio.gather(*calls)
    print("inserts:", inserts, "affects rows")

    # query all users
    resp = await db1.query(f"SELECT * FROM {TABLE} ORDER BY id")
    print("rows: [")
    for row in resp:
        print(f"    {row!r},")
    print("]")

    # give the connections back, drop the table, close the pool
    for db in (db1, db2, db3):
        await db.close()
    await pool.execute(f"DROP TABLE {TABLE}")
    await pool.stop()


if __name__ == "__main__":
    asyncio.run(main())
