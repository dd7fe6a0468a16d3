"""Issue 13: ``conn.stream()`` on SQLite steps its statement chunk by chunk —
2,000,000 rows with a peak RSS under 64 MiB (measured in a child process,
so this process's own history does not count), and a generator closed
half-way leaves the connection clean (no read transaction pins the WAL)."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlpool

ROWS = 2_000_000

# VmHWM, not ru_maxrss: exec resets the first, while ru_maxrss keeps the
# parent's peak from before the exec (pytest's memory would count).
CHILD = r"""
import sys
import sqlpool
rows = int(sys.argv[1])
sql = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) "
       "SELECT x, 'name-' || x AS name FROM c" % rows)
with sqlpool.Pool(sys.argv[2], max_size=1) as pool, pool.connection() as conn:
    n = total = 0
    for row in conn.stream(sql, chunk_size=5000):
        n += 1
        total += row[0]
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print("STREAMED", n, total, hwm)
"""


def test_two_million_sqlite_rows_stream_under_64_mib(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROWS), "sqlite::memory:"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith("STREAMED "))
    _, n, total, maxrss_kb = line.split()
    assert int(n) == ROWS and int(total) == ROWS * (ROWS + 1) // 2
    print(f"2,000,000 SQLite rows streamed from Python: peak RSS {int(maxrss_kb) / 1024:.1f} MiB")
    assert int(maxrss_kb) < 64 * 1024, f"peak RSS {maxrss_kb} KiB is not under 64 MiB"


def test_a_closed_generator_leaves_no_reader_on_the_wal(tmp_path) -> None:
    uri = f"sqlite:{tmp_path / 'wal.db'}?busy_timeout=200"
    with sqlpool.Pool(uri, min_size=2, max_size=2) as pool:
        with pool.connection() as conn, pool.connection() as other:
            conn.execute_script(
                "CREATE TABLE t (n INTEGER);"
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) "
                "INSERT INTO t SELECT x FROM c")
            rows = conn.stream("SELECT n FROM t", chunk_size=100)
            assert next(rows)[0] == 1
            other.execute("INSERT INTO t VALUES (0)")
            rows.close()  # given up half-way
            # busy = 0: no reader holds an old snapshot of the WAL.
            assert tuple(other.query("PRAGMA wal_checkpoint(TRUNCATE)")[0])[0] == 0
            conn.execute_script("BEGIN IMMEDIATE; INSERT INTO t VALUES (-1); COMMIT")
            assert conn.query("SELECT count(*) AS c FROM t")[0].c == 5002
