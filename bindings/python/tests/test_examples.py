"""Runs each example (with reduced sizes) and checks what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import pg_url_or_skip
import sqlpool
from sqlpool import _lib

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PKG_DIR = str(Path(sqlpool.__file__).resolve().parent.parent)  # the sqlpool under test


def run_example(name, *args, cwd, **env):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=120, cwd=str(cwd),
        env=dict(os.environ, PYTHONPATH=PKG_DIR, **env),
    )


@pytest.mark.skipif(not _lib.HAS_ASYNC, reason="the library has no async API yet")
def test_concurrent_inserts_on_postgres(tmp_path):
    url = pg_url_or_skip()
    res = run_example("concurrent_inserts.py", url, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "inserts: [1, 1, 1] affects rows"
    rows = re.findall(r"BaseModel\(id=(\d), x_position=([\d.]+), y_position=([\d.]+)\)", res.stdout)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    # the three inserts ran concurrently, so which got id 1 may vary
    assert sorted((x, y) for _, x, y in rows) == [("1.2", "2.3"), ("4.3", "5.6"), ("6.5", "1.8")]
    assert "BaseModel(id=1, x_position=" in res.stdout


@pytest.mark.skipif(not _lib.HAS_ASYNC, reason="the library has no async API yet")
def test_async_stress_on_sqlite(tmp_path):
    res = run_example("stress_async.py", "--requests", "300", "--min-hold", "0.01", "--max-hold", "0.05",
                      cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    m = re.search(r"requests: 300, errors: 0, most connections in use: (\d+)", res.stdout)
    assert m, res.stdout
    assert 1 <= int(m.group(1)) <= 30
    assert "Time taken" in res.stderr and "Error occurred" not in res.stderr
    assert "sqlpool.sql" in res.stderr and "SELECT 1 as a" in res.stderr  # LOG_CONFIG.SQLPOOL_SQL_LOG
    assert (tmp_path / "dev.db").exists()


def test_sync_stress_on_sqlite(tmp_path):
    res = run_example("stress_sync.py", "--requests", "300", "--min-hold", "0.01", "--max-hold", "0.05",
                      cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    m = re.search(r"requests: 300, errors: 0, most connections in use: (\d+)", res.stdout)
    assert m, res.stdout
    assert 1 <= int(m.group(1)) <= 30
    assert "Time taken" in res.stderr and "Error occurred" not in res.stderr
    assert "sqlpool.pool" in res.stderr  # LOG_CONFIG.SQLPOOL_DEV_MODE
