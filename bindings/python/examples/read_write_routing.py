"""Read/write routing over a primary and its streaming standbys.

Two pools on the same host list: writes go to whichever server accepts
them (``target_session_attrs=read-write``: after a failover, the promoted
standby), reads prefer a standby (``prefer-standby``), spread at random
over the standbys (``load_balance_hosts=random``) and fall back to the
primary when no standby answers.

    python examples/read_write_routing.py 'postgresql://app:secret@db1:5432,db2:5432,db3:5432/app'

(The URI may also come from SQLPOOL_EXAMPLE_PG_URL or SQLPOOL_TEST_PG_URL.)
"""

import os
import sys

import sqlpool

uri = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get("SQLPOOL_EXAMPLE_PG_URL") \
    or os.environ.get("SQLPOOL_TEST_PG_URL") or "postgresql://app:secret@db1,db2,db3/app"


def with_params(uri: str, params: str) -> str:
    return uri + ("&" if "?" in uri else "?") + params


TABLE = "sqlpool_example_routing"

writer = sqlpool.Pool(with_params(uri, "target_session_attrs=read-write"), max_size=10)
reader = sqlpool.Pool(
    with_params(uri, "target_session_attrs=prefer-standby&load_balance_hosts=random"),
    max_size=20,
)
with writer, reader:
    writer.execute(f"DROP TABLE IF EXISTS {TABLE}")
    writer.execute(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, note text)")
    writer.execute(f"INSERT INTO {TABLE} (note) VALUES (:note)", {"note": "hello"})
    # (A standby replays the insert a moment later: read your own writes
    # from the writer pool.)
    row = reader.query("SELECT pg_is_in_recovery() AS standby, inet_server_port() AS port")[0]
    print(f"reads from: {'a standby' if row['standby'] else 'the primary'} (port {row['port']})")
    count = writer.query(f"SELECT count(*) AS n FROM {TABLE}")[0]["n"]
    print(f"rows written: {count}")
    print(f"writer connections per host: {writer.host_stats()}")
    print(f"reader connections per host: {reader.host_stats()}")
    writer.execute(f"DROP TABLE {TABLE}")
