"""Shared fixtures: one SQLite database per test, and the PostgreSQL server
from ``SQLPOOL_TEST_PG_URL`` (PostgreSQL tests skip when it is empty or
unset, unless ``CI=true``, where they fail)."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

import sqlpool

PG_URL = os.environ.get("SQLPOOL_TEST_PG_URL", "").strip()
IN_CI = os.environ.get("CI", "").lower() == "true"


def pg_url_or_skip() -> str:
    if not PG_URL:
        if IN_CI:
            pytest.fail("SQLPOOL_TEST_PG_URL is not set (CI=true: PostgreSQL tests must run)")
        pytest.skip("SQLPOOL_TEST_PG_URL is not set")
    return PG_URL


@pytest.fixture
def sqlite_uri(tmp_path) -> str:
    return f"sqlite:{tmp_path / 'test.db'}"


@pytest.fixture
def pg_uri() -> str:
    return pg_url_or_skip()


@pytest.fixture(params=["sqlite", "postgres"])
def uri(request, tmp_path) -> str:
    """A database URI: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'test.db'}"
    return pg_url_or_skip()


@pytest.fixture
def is_pg(uri: str) -> bool:
    return not uri.startswith("sqlite:")


@pytest.fixture
def table(uri: str) -> Iterator[str]:
    """A unique table name, dropped after the test (PostgreSQL is shared)."""
    name = "t_" + uuid.uuid4().hex[:12]
    yield name
    try:
        with sqlpool.Pool(uri, min_size=1, max_size=1) as pool:
            pool.execute(f"DROP TABLE IF EXISTS {name}")
    except sqlpool.Error:
        pass


@pytest.fixture
def pool(uri: str) -> Iterator[sqlpool.Pool]:
    with sqlpool.Pool(uri, min_size=1, max_size=5, conn_timeout=10) as p:
        yield p


def id_column(is_pg: bool) -> str:
    return "id SERIAL PRIMARY KEY" if is_pg else "id INTEGER PRIMARY KEY"
