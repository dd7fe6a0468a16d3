"""The example programs of the seed documents (PySQLXEngine's and psqlpy's
docs, in ``seeds/``) run on ``sqlpool.compat`` with only their import line
changed, on SQLite and on PostgreSQL, and print what the documents show.

Besides the import line, each run points the program at the test database
(the documents' addresses are placeholders: ``localhost:5432``,
``sqlite:./dev.db``). One more change, on SQLite only: the PostgreSQL
example's ``id SERIAL PRIMARY KEY`` becomes ``id INTEGER PRIMARY KEY``
(SQLite has no SERIAL type). Every replacement must match exactly once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Dict, List, Tuple
from urllib.parse import urlsplit, urlunsplit

import pytest

import sqlpool
from conftest import pg_url_or_skip

SEEDS = Path(__file__).resolve().parent / "seeds"
_FENCE = re.compile(r"^(\s*)```\s*(py|python)\s*$")


def code_blocks(name: str) -> List[str]:
    """The Python code blocks of a seed document, dedented."""
    lines = (SEEDS / name).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, body, i = m.group(1), [], i + 1
        while not re.match(r"^" + re.escape(indent) + r"```\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append(textwrap.dedent("\n".join(body)) + "\n")
        i += 1
    return blocks


def replace_once(code: str, old: str, new: str) -> str:
    assert code.count(old) == 1, f"expected exactly one {old!r} in the seed program"
    return code.replace(old, new)


@pytest.fixture(scope="module")
def pg_db() -> str:
    """A fresh database on the test server (the seeds use a table named ``users``)."""
    url = pg_url_or_skip()
    name = "seeds_" + uuid.uuid4().hex[:10]
    with sqlpool.Pool(url, min_size=1, max_size=1) as pool:
        pool.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(url)
    yield urlunsplit(parts._replace(path="/" + name))
    with sqlpool.Pool(url, min_size=1, max_size=1) as pool:
        pool.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _env() -> Dict[str, str]:
    """The children import the same sqlpool as this test (installed or not)."""
    env = dict(os.environ)
    package_parent = str(Path(sqlpool.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH", "")]))
    return env


def run(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    path = cwd / "main.py"
    path.write_text(code)
    return subprocess.run([sys.executable, str(path)], cwd=str(cwd), capture_output=True,
                          text=True, timeout=timeout, env=_env())


def start(code: str, cwd: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    path = cwd / "main.py"
    path.write_text(code)
    return subprocess.Popen([sys.executable, str(path)], cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# -- PySQLXEngine: "Simple pool with concurrent connections" (PostgreSQL) -----

SEED_POOL = "pysqlx_engine_pool_concurrent_postgresql.md"


def _expected_output(name: str) -> str:
    text = (SEEDS / name).read_text()
    console = text.split("```console", 1)[1].split("```", 1)[0]
    return console.split("$ python3 main.py", 1)[1].strip()


def _rows(squashed: str) -> List[Tuple[str, str]]:
    return re.findall(r"BaseModel\(id=(\d+),(x_position=[^,]+,y_position=[^)]+)\)", squashed)


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_pysqlx_engine_concurrent_pool_example(db, tmp_path, request):
    (code,) = code_blocks(SEED_POOL)
    code = replace_once(code, "from pysqlx_engine import", "from sqlpool.compat.pysqlx_engine import")
    if db == "sqlite":
        uri = f"sqlite:{tmp_path / 'seed.db'}"
        code = replace_once(code, "id SERIAL PRIMARY KEY", "id INTEGER PRIMARY KEY")
    else:
        uri = request.getfixturevalue("pg_db")
    code = replace_once(code, 'uri = "postgresql://user:password@localhost:5432/db"', f"uri = {uri!r}")
    p = run(code, tmp_path)
    assert p.returncode == 0, p.stderr
    got, want = _squash(p.stdout), _squash(_expected_output(SEED_POOL))
    assert got.startswith("inserts:[1,1,1]affectsrows"), p.stdout
    # The three inserts run at once on three connections: which one the
    # database runs first (gets id 1) may differ from the document's run.
    got_rows, want_rows = _rows(got), _rows(want)
    assert sorted(i for i, _ in got_rows) == ["1", "2", "3"], p.stdout
    assert sorted(v for _, v in got_rows) == sorted(v for _, v in want_rows), p.stdout
    # Apart from that, the output is the document's (whitespace aside).
    row_re = r"BaseModel\(id=\d+,x_position=[^,]+,y_position=[^)]+\)"
    shape = r"inserts:\[1,1,1\]affectsrows" + r"rows:\[" + ",".join([row_re] * 3) + r"\]"
    assert re.fullmatch(shape, want)
    assert re.fullmatch(shape, got), p.stdout


# -- PySQLXEngine: stress examples (async and sync pools, SQLite in the seed) --

SEED_STRESS = "pysqlx_engine_pool_stress_sqlite.md"


def test_pysqlx_engine_stress_examples(tmp_path, request):
    """Both programs (asyncio and threads: 1000 checkouts each, 50 at a
    time), on SQLite and PostgreSQL, run side by side."""
    blocks = code_blocks(SEED_STRESS)
    assert len(blocks) == 2
    uris: Dict[str, str] = {"sqlite": "sqlite:./dev.db"}
    if os.environ.get("SQLPOOL_TEST_PG_URL", "").strip() or os.environ.get("CI", "") == "true":
        uris["postgres"] = request.getfixturevalue("pg_db")
    procs = {}
    for kind, code in zip(("async", "sync"), blocks):
        code = replace_once(code, "from pysqlx_engine import", "from sqlpool.compat.pysqlx_engine import")
        for db, uri in uris.items():
            c = replace_once(code, 'uri="sqlite:./dev.db"', f"uri={uri!r}")
            procs[(kind, db)] = start(c, tmp_path / f"{kind}-{db}")
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, (key, err[-3000:])
        assert "Error occurred" not in err, (key, err[-3000:])
        assert re.search(r"INFO:root:Time taken: \d+\.\d\d seconds", err), (key, err[-3000:])
        assert ":sqlpool.sql:" in err, key  # LOG_CONFIG.PYSQLX_SQL_LOG took effect
    if "postgres" not in uris:
        pg_url_or_skip()


# -- psqlpy: "Connection Pool" ---------------------------------------------------

SEED_PSQLPY = "psqlpy_connection_pool.md"

_HARNESS = '''

# --- added by the test: a table for the example queries, then run ---
import sqlpool as _sp
_TEST_URI = {uri!r}
with _sp.Pool(_TEST_URI, min_size=1, max_size=1) as _p:
    _p.execute_script("DROP TABLE IF EXISTS users; CREATE TABLE users (id INTEGER, username TEXT);"
                      "INSERT INTO users VALUES (100, 'Alex'), (101, 'Bob')")
'''


def _psqlpy_programs(uri: str, postgres: bool) -> List[Tuple[str, str]]:
    params_block, dsn_block, execute_block, connection_block = code_blocks(SEED_PSQLPY)
    fix = lambda code: replace_once(code, "from psqlpy import", "from sqlpool.compat.psqlpy import")  # noqa: E731
    programs = []
    if postgres:
        u = urlsplit(uri)
        code = fix(params_block)
        for old, new in (('username="postgres"', f"username={u.username!r}"),
                         ('password="postgres"', f"password={u.password!r}"),
                         ('host="localhost"', f"host={u.hostname!r}"),
                         ("port=5432", f"port={u.port}"),
                         ('db_name="postgres"', f"db_name={u.path.lstrip('/')!r}")):
            code = replace_once(code, old, new)
        programs.append(("separate parameters", code))
    code = replace_once(fix(dsn_block), '"postgres://postgres:postgres@localhost:5432/postgres"', repr(uri))
    programs.append(("dsn", code))
    out = []
    for what, code in programs:
        prog = code + _HARNESS.format(uri=uri) + textwrap.dedent('''
            asyncio.run(main())
            print("started:", db_pool.native.stats()["total"] >= 1)
        ''')
        # The execute and connection examples: their `...` is the pool
        # start-up above (an AsyncPool also starts on first use).
        prog += "from typing import Any\nfrom sqlpool.compat.psqlpy import QueryResult\n"
        prog += execute_block.replace("    dict_results: list[dict[str, Any]] = results.result()",
                                      "    dict_results: list[dict[str, Any]] = results.result()\n"
                                      "    print(\"dict_results:\", dict_results)")
        prog += "\nasyncio.run(main())\n"
        prog += connection_block.replace("    connection = await db_pool.connection()",
                                         "    connection = await db_pool.connection()\n"
                                         "    print(\"fetch_val:\", await connection.fetch_val("
                                         "\"SELECT username FROM users WHERE id = $1\", [101]))\n"
                                         "    connection.back_to_pool()")
        prog += "\nasyncio.run(main())\ndb_pool.close()\n"
        out.append((what, prog))
    return out


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_psqlpy_connection_pool_examples(db, tmp_path, request):
    if db == "sqlite":
        uri, postgres = f"sqlite:{tmp_path / 'seed.db'}", False
    else:
        uri, postgres = request.getfixturevalue("pg_db"), True
    for what, prog in _psqlpy_programs(uri, postgres):
        p = run(prog, tmp_path)
        assert p.returncode == 0, (what, p.stderr)
        assert p.stdout.splitlines() == [
            "started: True",
            "dict_results: [{'id': 100, 'username': 'Alex'}]",
            "fetch_val: Bob",
        ], (what, p.stdout)
