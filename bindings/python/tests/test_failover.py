"""Multi-host pools from Python: host lists, target_session_attrs routing,
per-host statistics, and the read/write routing example. (Failover itself
is tested on real replication in tests/pg_failover.rs; here there is one
server, so a dead host stands in for the lost one.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import pg_url_or_skip
import sqlpool

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PKG_DIR = str(Path(sqlpool.__file__).resolve().parent.parent)


def dead_port() -> int:
    """A loopback port nothing listens on (bound a moment ago, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parts(url: str):
    u = urlsplit(url)
    userinfo, _, hostport = u.netloc.rpartition("@")
    if u.hostname is None or u.port is None:
        pytest.skip("SQLPOOL_TEST_PG_URL does not name a TCP host and port")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return u.scheme, userinfo, host, u.port, u.path, u.query


def multi_host(url: str, params: str) -> tuple[str, str]:
    """(URL listing a dead host first, then the test server; its label)."""
    scheme, userinfo, host, port, path, query = parts(url)
    at = f"{userinfo}@" if userinfo else ""
    query = "&".join(q for q in (query, params) if q)
    return f"{scheme}://{at}127.0.0.1:{dead_port()},{host}:{port}{path}?{query}", f"{host}:{port}"


def test_a_dead_first_host_is_skipped_and_counted_nowhere():
    url, label = multi_host(pg_url_or_skip(), "target_session_attrs=read-write&connect_timeout=2")
    with sqlpool.Pool(url, min_size=2, max_size=2) as pool:
        assert pool.query("SELECT 1 AS one")[0]["one"] == 1
        deadline = time.monotonic() + 10
        while pool.stats()["total"] < 2 or pool.stats()["pending"] > 0:
            assert time.monotonic() < deadline, pool.stats()
            time.sleep(0.01)
        stats = pool.host_stats()
        assert [h["host"] for h in stats] == [label]
        assert stats[0]["open"] == 2 and stats[0]["opened"] >= 2


def test_host_and_port_lists_in_the_query():
    scheme, userinfo, host, port, path, query = parts(pg_url_or_skip())
    at = f"{userinfo}@" if userinfo else ""
    extra = f"host=127.0.0.1,{host.strip('[]')}&port={dead_port()},{port}&target_session_attrs=primary"
    url = f"{scheme}://{at}{path}?" + "&".join(q for q in (query, extra) if q)
    with sqlpool.Pool(url, max_size=1) as pool:
        assert pool.query("SELECT pg_is_in_recovery() AS r")[0]["r"] is False


def test_a_reader_pool_without_standbys_reads_from_the_primary():
    url, _ = multi_host(
        pg_url_or_skip(), "target_session_attrs=prefer-standby&load_balance_hosts=random"
    )
    with sqlpool.Pool(url, max_size=2) as pool:
        assert pool.query("SELECT pg_is_in_recovery() AS r")[0]["r"] is False


def test_a_standby_only_pool_says_why_it_cannot_connect():
    url, _ = multi_host(pg_url_or_skip(), "target_session_attrs=standby&connect_timeout=2")
    with pytest.raises(sqlpool.Error) as info:
        sqlpool.Pool(url, max_size=1)
    assert "not a standby" in str(info.value)


def test_sqlite_has_no_hosts(tmp_path):
    with sqlpool.Pool(f"sqlite:{tmp_path / 'x.db'}") as pool:
        assert pool.host_stats() == []


def test_the_routing_example(tmp_path):
    url, label = multi_host(pg_url_or_skip(), "connect_timeout=2")
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / "read_write_routing.py"), url],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=PKG_DIR),
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    # The test server is a primary with no standby: reads fall back to it.
    assert lines[0].startswith("reads from: the primary"), res.stdout
    assert lines[1] == "rows written: 1", res.stdout
    assert label in lines[2] and label in lines[3], res.stdout
