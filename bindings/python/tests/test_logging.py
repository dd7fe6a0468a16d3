"""Library logs reach Python logging; LOG_CONFIG; no deadlock under load."""

from __future__ import annotations

import logging

import pytest

import sqlpool
from test_safety import run_python


@pytest.fixture
def log_config():
    cfg = sqlpool.LOG_CONFIG
    saved = {k: getattr(cfg, k) for k in cfg._names}
    yield cfg
    for k, v in saved.items():
        setattr(cfg, k, v)


def test_log_config_attributes(log_config):
    for name in ("SQLPOOL_DEV_MODE", "SQLPOOL_SQL_LOG", "SQLPOOL_USE_COLOR", "SQLPOOL_ERROR_JSON_FMT"):
        assert getattr(log_config, name) is False
        setattr(log_config, name, True)
        assert getattr(log_config, name) is True
    assert "SQLPOOL_DEV_MODE=True" in repr(log_config)
    with pytest.raises(AttributeError):
        log_config.SQLPOOL_NO_SUCH_THING = True


def test_sql_log_goes_to_sqlpool_sql_logger(log_config, sqlite_uri, caplog):
    caplog.set_level(logging.DEBUG, logger="sqlpool")
    log_config.SQLPOOL_SQL_LOG = True
    with sqlpool.Pool(sqlite_uri) as pool:
        pool.query("SELECT 42 AS answer_marker")
    records = [r for r in caplog.records if r.name == "sqlpool.sql"]
    assert any("answer_marker" in r.getMessage() for r in records), [r.getMessage() for r in caplog.records]
    # The header says DEBUG; the library currently logs statements at INFO.
    assert all(r.levelno in (logging.DEBUG, logging.INFO) for r in records)
    caplog.clear()
    log_config.SQLPOOL_SQL_LOG = False
    with sqlpool.Pool(sqlite_uri) as pool:
        pool.query("SELECT 43 AS other_marker")
    assert not any("other_marker" in r.getMessage() for r in caplog.records)


def test_dev_mode_pool_logs_and_color(log_config, sqlite_uri, caplog):
    caplog.set_level(sqlpool.TRACE, logger="sqlpool")
    log_config.SQLPOOL_DEV_MODE = True
    log_config.SQLPOOL_USE_COLOR = True
    with sqlpool.Pool(sqlite_uri, min_size=2) as pool:
        pool.query("SELECT 1")
    names = {r.name for r in caplog.records}
    assert any(n.startswith("sqlpool.") for n in names), names
    assert all(r.getMessage().startswith("\x1b[") for r in caplog.records if r.name.startswith("sqlpool."))


def test_logging_from_many_threads_under_stress_does_not_deadlock(sqlite_uri):
    # In a subprocess with a timeout: a deadlock fails the test instead of hanging it.
    res = run_python(
        f"""
        import logging, threading, time, sys
        import sqlpool

        count = [0]

        class Slow(logging.Handler):
            def emit(self, record):
                count[0] += 1
                sum(range(200))  # hold the GIL a little while inside the callback

        root = logging.getLogger()
        root.addHandler(Slow())
        root.setLevel(sqlpool.TRACE)
        sqlpool.LOG_CONFIG.SQLPOOL_DEV_MODE = True
        sqlpool.LOG_CONFIG.SQLPOOL_SQL_LOG = True
        pool = sqlpool.Pool({sqlite_uri!r}, min_size=2, max_size=8, check_interval=0.01,
                            idle_timeout=0.05, conn_timeout=30)
        pool.execute("CREATE TABLE IF NOT EXISTS t (x INT)")
        stop = time.monotonic() + 4
        errors = []

        def worker(i):
            try:
                while time.monotonic() < stop:
                    with pool.connection() as c:
                        c.execute("INSERT INTO t VALUES (:x)", {{"x": i}})
                        c.query("SELECT count(*) FROM t")
                    logging.getLogger("app").info("python log line %d", i)
            except Exception as e:
                errors.append(e)

        def toggler():
            cfg = sqlpool.LOG_CONFIG
            while time.monotonic() < stop:
                cfg.SQLPOOL_DEV_MODE = not cfg.SQLPOOL_DEV_MODE
                cfg.SQLPOOL_SQL_LOG = not cfg.SQLPOOL_SQL_LOG
                pool.resize(1, 8)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        threads.append(threading.Thread(target=toggler))
        for t in threads: t.start()
        for t in threads: t.join()
        pool.stop()
        print("done", len(errors), count[0] > 100)
        """,
        timeout=90,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["done", "0", "True"], res.stdout + res.stderr[-3000:]


def test_exceptions_in_handlers_do_not_escape(log_config, sqlite_uri):
    class Broken(logging.Handler):
        def emit(self, record):
            raise RuntimeError("boom")

        def handleError(self, record):
            raise RuntimeError("boom again")

    h = Broken()
    logger = logging.getLogger("sqlpool")
    logger.addHandler(h)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        log_config.SQLPOOL_SQL_LOG = True
        with sqlpool.Pool(sqlite_uri) as pool:
            assert pool.query_first("SELECT 1 AS a").a == 1
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
