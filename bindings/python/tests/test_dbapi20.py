"""The DB-API 2.0 compliance suite (``dbapi20.py`` from PyPI
``dbapi-compliance``) against sqlpool, on SQLite and on PostgreSQL.

Every test of the suite runs. Two of them are placeholders that the suite
itself marks driver-specific (they only ``raise NotImplementedError('Drivers
need to override this test')``): ``test_nextset`` and ``test_setoutputsize``.
They are overridden here with what sqlpool does (one result set only;
``setoutputsize`` is accepted and ignored). The optional ``callproc`` test
runs (sqlpool has ``callproc``).
"""

from __future__ import annotations

import os
import tempfile

import dbapi20
import pytest

import sqlpool
from conftest import pg_url_or_skip


class _SqlpoolDriverTests(dbapi20.DatabaseAPI20Test):
    driver = sqlpool
    __test__ = False  # only the subclasses below run

    def tearDown(self) -> None:
        # The suite's own tearDown stops at the first missing table on
        # PostgreSQL (the failed DROP aborts its transaction): autocommit.
        con = self._connect()
        try:
            con.autocommit = True
            cur = con.cursor()
            for table in ("booze", "barflys"):
                cur.execute(f"DROP TABLE IF EXISTS {self.table_prefix}{table}")
        finally:
            con.close()

    def test_nextset(self) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL1(cur)
            for sql in self._populate():
                cur.execute(sql)
            cur.execute(f"select name from {self.table_prefix}booze")
            assert cur.nextset() is None  # one result set per statement
            assert len(cur.fetchall()) == len(self.samples)
        finally:
            con.close()

    def test_setoutputsize(self) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            cur.setoutputsize(10, 0)  # accepted, ignored: values are read whole
            self.executeDDL1(cur)
            cur.execute(f"{self.insert} into {self.table_prefix}booze values ('a much longer name')")
            cur.execute(f"select name from {self.table_prefix}booze")
            assert cur.fetchone() == ("a much longer name",)
        finally:
            con.close()


class TestDBAPI20SQLite(_SqlpoolDriverTests):
    __test__ = True

    def setUp(self) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.connect_args = (f"sqlite:{os.path.join(self._dir.name, 'dbapi20.db')}",)

    def tearDown(self) -> None:
        super().tearDown()
        self._dir.cleanup()


class TestDBAPI20PostgreSQL(_SqlpoolDriverTests):
    __test__ = True

    def setUp(self) -> None:
        self.connect_args = (pg_url_or_skip(),)


def test_suite_has_the_expected_tests() -> None:
    """Guards the list above: a new suite version with new tests shows here."""
    names = sorted(n for n in dir(dbapi20.DatabaseAPI20Test) if n.startswith("test_"))
    assert len(names) == 36, names
    assert "test_nextset" in names and "test_setoutputsize" in names
