"""Handle lifetime: use after close, garbage collection, fork, threads."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from ctypes import byref, sizeof

import pytest

import sqlpool
from sqlpool._lib import PoolStats, lib

PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(sqlpool.__file__)))


def run_python(code: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=PKG_DIR, **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=PKG_DIR,
    )


def test_connection_after_with_block(pool):
    with pool.connection() as conn:
        conn.query("SELECT 1")
    with pytest.raises(sqlpool.InterfaceError, match="given back"):
        conn.query("SELECT 1")
    with pytest.raises(sqlpool.InterfaceError):
        conn.execute("SELECT 1")
    with pytest.raises(sqlpool.InterfaceError):
        with conn.transaction():
            pass
    conn.close()  # idempotent
    assert conn.closed


def test_pool_after_stop(uri):
    pool = sqlpool.Pool(uri)
    pool.stop()
    for call in (lambda: pool.connection(), lambda: pool.query("SELECT 1"), pool.stats,
                 pool.drain, lambda: pool.execute("SELECT 1")):
        with pytest.raises(sqlpool.InterfaceError):
            call()


def test_pool_with_block(uri):
    with sqlpool.Pool(uri) as pool:
        assert not pool.closed
    assert pool.closed
    with pytest.raises(sqlpool.InterfaceError):
        pool.query("SELECT 1")


def test_garbage_collected_pool_is_closed(uri):
    pool = sqlpool.Pool(uri, min_size=2)
    ptr = pool._ptr
    s = PoolStats()
    assert lib.sqlpool_pool_stats(ptr, byref(s), sizeof(s)) == 0
    del pool
    gc.collect()
    assert lib.sqlpool_pool_stats(ptr, byref(s), sizeof(s)) == 5  # SQLPOOL_MISUSE: freed


def test_garbage_collected_connection_is_released(pool):
    conn = pool.connection()
    assert pool.stats()["in_use"] == 1
    del conn
    gc.collect()
    assert pool.stats()["in_use"] == 0


def test_connection_keeps_pool_alive(uri):
    conn = sqlpool.Pool(uri).connection()
    gc.collect()
    assert conn.query_first("SELECT 1 AS a").a == 1
    assert not conn.pool.closed
    conn.close()


def test_connection_used_by_two_threads_at_once(pg_uri):
    with sqlpool.Pool(pg_uri, max_size=1) as pool, pool.connection() as conn:
        t = threading.Thread(target=conn.query, args=("SELECT pg_sleep(0.5)",))
        t.start()
        time.sleep(0.15)
        with pytest.raises(sqlpool.InterfaceError) as info:
            conn.query("SELECT 1")
        assert info.value.status_name == "SQLPOOL_BUSY"
        t.join()
        assert conn.query_first("SELECT 1 AS a").a == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_cannot_use_parent_pool(uri):
    pool = sqlpool.Pool(uri, min_size=1, max_size=1)
    conn = pool.connection()
    conn.query("SELECT 1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never touch the parent's handles
        code = 1
        try:
            try:
                pool.query("SELECT 1")
            except sqlpool.InterfaceError as e:
                if "fork" in str(e):
                    code = 0
            try:
                conn.query("SELECT 1")
                code = 2
            except sqlpool.InterfaceError:
                pass
            conn.close()  # no-op in the child
            pool.stop()
            del conn, pool
            gc.collect()
        finally:
            os.write(w, bytes([code]))
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"\x00"
    os.close(r)
    assert os.WEXITSTATUS(status) == 0
    # The parent's connection (and socket) still works.
    assert conn.query_first("SELECT 2 AS a").a == 2
    conn.close()
    assert pool.stats()["broken"] == 0
    pool.stop()


def test_interpreter_exit_with_open_handles(sqlite_uri):
    res = run_python(
        f"""
        import sqlpool
        sqlpool.LOG_CONFIG.SQLPOOL_DEV_MODE = True
        pool = sqlpool.Pool({sqlite_uri!r}, min_size=2)
        conn = pool.connection()
        conn.query("SELECT 1")
        other = pool.connection()
        cycle = [pool, conn]
        cycle.append(cycle)
        print("ok")
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr
