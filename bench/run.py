#!/usr/bin/env python3
"""`make bench` / `make bench-smoke`: sqlpool against the libraries a user
would pick instead, side by side in one run, reported as ratios.

    bench/.venv/bin/python bench/run.py [--smoke] [--out DIR] [--only NAME,...]
                                        [--reps N]

Runs every measurement of a scenario in turn, repetition after repetition
(the order rotating), so sqlpool and its peers see the same machine at the
same time; reports the median and min-max of each, and the ratio of the
medians (sqlpool / peer: lower is better). Writes DIR/benchmarks.md,
DIR/benchmarks.png and DIR/results.json (default DIR: docs/ for the full
run, with its results.json in target/bench/; target/bench/smoke/ for
--smoke). --replot RESULTS_JSON --out DIR redraws a report without measuring.

Databases: a throwaway PostgreSQL cluster (scripts/pg-cluster) unless
SQLPOOL_BENCH_PG_URL names a server (its database gets tables bench_fetch,
bench_insert), and an SQLite file in a temporary directory.

Programs (built by mk/bench.mk): target/bench/bench_sqlpool,
target/bench/bench_floor, target/bench-floor/release/r2d2_floor,
bench/python/pybench.py (under this interpreter, the bench venv).

Exit status: 1 when one of sqlpool's own measurements failed or a sqlpool
stress run reported errors; a peer that is missing or fails is noted in the
report and skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
BENCH_BIN = Path(os.environ.get("SQLPOOL_BENCH_BIN") or TARGET / "bench")
BENCH_SQLPOOL = BENCH_BIN / "bench_sqlpool"
BENCH_FLOOR = BENCH_BIN / "bench_floor"
R2D2_FLOOR = Path(os.environ.get("SQLPOOL_BENCH_R2D2") or TARGET / "bench-floor" / "release" / "r2d2_floor")
PYBENCH = ROOT / "bench" / "python" / "pybench.py"
LIBRARY = BENCH_BIN / "lib" / "libsqlpool.so"  # mk/bench.mk's copy of target/release/libsqlpool.so

PY_PEERS = ["psycopg", "asyncpg", "psqlpy", "pysqlx"]

SIZES = {
    "full": dict(
        reps=7, reps_hold=3,
        acquire_fast=200_000, acquire_verified=20_000, py_acquire=20_000,
        select1=20_000, py_select1=10_000,
        point_rows=10_000, point_iters=200_000, py_point=50_000, py_point_async=20_000,
        fetch_rows=100_000, insert_rows=10_000,
        stream_rows=2_000_000, copy_rows=1_000_000,
        stress_jobs=1000, stress_conc=50, hold_scale=1.0,
    ),
    "smoke": dict(
        reps=1, reps_hold=1,
        acquire_fast=2_000, acquire_verified=200, py_acquire=200,
        select1=200, py_select1=200,
        point_rows=1_000, point_iters=2_000, py_point=1_000, py_point_async=500,
        fetch_rows=2_000, insert_rows=200,
        stream_rows=20_000, copy_rows=2_000,
        stress_jobs=100, stress_conc=20, hold_scale=0.02,
    ),
}


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# Measurements


@dataclass
class Measure:
    key: str
    cmd: List[str]
    field: str  # JSON field holding the value (ns_per_op, ms, seconds)
    owner: str  # "sqlpool" or the peer's name
    timeout: float = 300.0
    values: List[float] = field(default_factory=list)
    raw: List[Dict[str, Any]] = field(default_factory=list)
    error: Optional[str] = None

    def run(self, env: Dict[str, str]) -> None:
        if self.error:
            return
        try:
            p = subprocess.run(self.cmd, capture_output=True, text=True, timeout=self.timeout, env=env)
        except subprocess.TimeoutExpired:
            self.error = f"timed out after {self.timeout:.0f} s"
            return
        line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if p.returncode != 0 or not line.startswith("{"):
            tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            self.error = f"exit {p.returncode}: {tail[:300]}"
            return
        obj = json.loads(line)
        self.raw.append(obj)
        self.values.append(float(obj[self.field]))

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.values) if self.values and not self.error else None


class Bench:
    def __init__(self, sizes: Dict[str, Any], pg_url: Optional[str], sqlite_path: str, reps: Optional[int]):
        self.s = sizes
        self.pg = pg_url
        self.sqlite_path = sqlite_path
        self.sqlite = f"sqlite:{sqlite_path}"
        self.reps_override = reps
        self.m: Dict[str, Measure] = {}
        self.env = dict(os.environ)
        self.env["SQLPOOL_LIBRARY"] = str(LIBRARY)
        snap = BENCH_BIN / "python"
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(snap)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
        for k in ("SQLPOOL_LOG", "SQLPOOL_SQL_LOG"):
            self.env.pop(k, None)
        self.py_peers: List[str] = []
        self.notes: List[str] = []
        self.versions: Dict[str, Any] = {}

    # -- helpers --------------------------------------------------------

    def py(self, *args: Any) -> List[str]:
        return [sys.executable, str(PYBENCH)] + [str(a) for a in args]

    def add(self, key: str, cmd: List[str], fld: str, owner: str, timeout: float = 300.0) -> Measure:
        m = Measure(key, [str(c) for c in cmd], fld, owner, timeout)
        self.m[key] = m
        return m

    def group(self, name: str, measures: List[Measure], reps: int) -> None:
        reps = self.reps_override or reps
        measures = [m for m in measures if m.owner == "sqlpool" or m.owner in self.available_owners()]
        if not measures:
            return
        log(f"\n== {name}: {len(measures)} measurements x {reps} repetitions")
        t0 = time.monotonic()
        for r in range(reps):
            k = r % len(measures) if measures else 0
            for m in measures[k:] + measures[:k]:
                m.run(self.env)
        for m in measures:
            if m.error:
                log(f"  {m.key:<44} FAILED: {m.error}")
            else:
                log(f"  {m.key:<44} median {m.median:14,.3f} {m.field}   "
                    f"[{min(m.values):,.3f} .. {max(m.values):,.3f}]")
        log(f"   ({time.monotonic() - t0:.0f} s)")

    def available_owners(self) -> List[str]:
        return ["sqlpool", "libpq", "sqlite3-c", "r2d2", "sqlite3"] + self.py_peers

    def capture(self, cmd: List[str]) -> Dict[str, Any]:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=self.env, timeout=300)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, cmd[:2]))} failed: {p.stderr.strip()[-500:]}")
        lines = p.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else {}

    # -- set-up ---------------------------------------------------------

    def setup(self) -> None:
        s = self.s
        for path in (BENCH_SQLPOOL, BENCH_FLOOR, R2D2_FLOOR, LIBRARY):
            if not path.exists():
                raise SystemExit(f"{path} is missing: run `make bench` (or `make bench-build`)")
        # A snapshot of the Python binding, like the library's: edits during a
        # run do not mix versions.
        snap = BENCH_BIN / "python"
        shutil.rmtree(snap, ignore_errors=True)
        shutil.copytree(ROOT / "bindings" / "python" / "sqlpool", snap / "sqlpool",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.dylib"))
        self.versions = self.capture(self.py("versions"))
        if not self.versions.get("sqlpool"):
            raise SystemExit(f"the sqlpool Python binding does not import: {self.versions.get('sqlpool_error')}")
        for lib in PY_PEERS:
            if self.versions.get(lib):
                self.py_peers.append(lib)
            else:
                note = f"Python peer {lib} is not installed (pip failed?): its measurements are skipped."
                log("NOTE: " + note)
                self.notes.append(note)
        log("setting up bench tables")
        if self.pg:
            self.capture([BENCH_SQLPOOL, "setup-pg", self.pg, s["fetch_rows"]])
        self.capture([BENCH_SQLPOOL, "setup-sqlite", self.sqlite, s["point_rows"], s["fetch_rows"]])
        pg_info = self.capture([BENCH_SQLPOOL, "info", self.pg or self.sqlite])
        if not self.pg:
            pg_info["server"] = None
        floor_info = self.capture([BENCH_FLOOR, "info", self.pg or "-", self.sqlite_path])
        sq_info = self.capture([BENCH_SQLPOOL, "info", self.sqlite])
        self.versions.update({
            "postgresql_server": pg_info["server"], "sqlpool_native": pg_info["sqlpool"],
            "sqlpool_sqlite": sq_info["server"], "libpq": floor_info["libpq"],
            "sqlite_c": floor_info["sqlite"], "r2d2": r2d2_versions(),
        })

    # -- scenarios ------------------------------------------------------

    def run_all(self, only: Optional[List[str]]) -> None:
        s = self.s
        want = lambda name: not only or name in only  # noqa: E731
        dbs = ([("pg", self.pg)] if self.pg else []) + [("sqlite", self.sqlite)]

        if want("acquire"):
            ms = []
            for db, uri in dbs:
                r2_target = self.sqlite_path if db == "sqlite" else uri
                for threads in (1, 2):
                    for rec, test in (("fast", 0), ("verified", 1)):
                        iters = s["acquire_fast"] if (rec == "fast" or db == "sqlite") else s["acquire_verified"]
                        ms.append(self.add(f"acquire/{db}/{threads}/sqlpool-{rec}",
                                           [BENCH_SQLPOOL, "acquire", uri, threads, iters, rec],
                                           "ns_per_op", "sqlpool"))
                        ms.append(self.add(f"acquire/{db}/{threads}/r2d2-test{test}",
                                           [R2D2_FLOOR, "acquire", db, r2_target, threads, iters, test],
                                           "ns_per_op", "r2d2"))
            if self.pg:
                # An unchanged session costs nothing at release: the default
                # session_reset=auto against no reset at all.
                off = self.pg + ("&" if "?" in self.pg else "?") + "session_reset=off"
                ms.append(self.add("acquire/pg/1/sqlpool-verified-reset-off",
                                   [BENCH_SQLPOOL, "acquire", off, 1, s["acquire_verified"], "verified"],
                                   "ns_per_op", "sqlpool"))
                for workers in (1, 4):
                    for lib in ("sqlpool", "sqlpool-async", "psycopg", "psycopg-async"):
                        ms.append(self.add(f"acquire/py/{workers}/{lib}",
                                           self.py("acquire", "--lib", lib, "--uri", self.pg,
                                                   "--workers", workers, "--iters", s["py_acquire"]),
                                           "ns_per_op", lib.split("-")[0]))
            self.group("1. acquire + release", ms, s["reps"])

        if want("select1") and self.pg:
            ms = [
                self.add("select1/c/sqlpool", [BENCH_SQLPOOL, "select1", self.pg, s["select1"]], "ns_per_op", "sqlpool"),
                self.add("select1/c/libpq", [BENCH_FLOOR, "select1", self.pg, s["select1"]], "ns_per_op", "libpq"),
                self.add("select1/c/libpq-prepared", [BENCH_FLOOR, "select1-prepared", self.pg, s["select1"]],
                         "ns_per_op", "libpq"),
            ]
            for lib in ["sqlpool", "sqlpool-async", "psycopg", "psycopg-async", "asyncpg", "psqlpy", "pysqlx"]:
                owner = lib.split("-")[0]
                ms.append(self.add(f"select1/py/{lib}", self.py("select1", "--lib", lib, "--uri", self.pg,
                                                                "--iters", s["py_select1"]), "ns_per_op", owner))
            self.group("2, 6, 7. SELECT 1 (PostgreSQL)", ms, s["reps"])

        if want("point"):
            rows = s["point_rows"]
            ms = [
                self.add("point/c/sqlpool", [BENCH_SQLPOOL, "point", self.sqlite, s["point_iters"], rows],
                         "ns_per_op", "sqlpool"),
                self.add("point/c/sqlite3", [BENCH_FLOOR, "point", self.sqlite_path, s["point_iters"], rows],
                         "ns_per_op", "sqlite3-c"),
            ]
            for lib, iters in (("sqlpool", s["py_point"]), ("sqlpool-async", s["py_point_async"]),
                               ("sqlite3", s["py_point"]), ("pysqlx", s["py_point_async"])):
                owner = lib.split("-")[0]
                ms.append(self.add(f"point/py/{lib}", self.py("point", "--lib", lib, "--uri", self.sqlite,
                                                              "--iters", iters, "--rows", rows), "ns_per_op", owner))
            # SQLite from Python against the standard library: SELECT 1,
            # 100,000 rows into Python rows, and execute_many.
            for lib in ("sqlpool", "sqlite3"):
                ms.append(self.add(f"select1/sqlite-py/{lib}",
                                   self.py("select1", "--lib", lib, "--uri", self.sqlite, "--iters", s["py_point"]),
                                   "ns_per_op", lib))
                ms.append(self.add(f"fetch/sqlite-py/{lib}", self.py("fetch", "--lib", lib, "--uri", self.sqlite),
                                   "ms", lib))
                ms.append(self.add(f"insert/sqlite-py/{lib}-many",
                                   self.py("insert", "--lib", lib, "--uri", self.sqlite,
                                           "--rows", s["insert_rows"], "--how", "many"), "ms", lib))
            self.group("2, 6, 7. SQLite point query", ms, s["reps"])

        if want("fetch") and self.pg:
            ms = [
                self.add("fetch/c/sqlpool", [BENCH_SQLPOOL, "fetch", self.pg], "ms", "sqlpool"),
                self.add("fetch/c/sqlpool-columns", [BENCH_SQLPOOL, "fetch-columns", self.pg], "ms", "sqlpool"),
                self.add("fetch/c/libpq", [BENCH_FLOOR, "fetch", self.pg], "ms", "libpq"),
            ]
            for lib in ["sqlpool", "sqlpool-async", "psycopg", "asyncpg", "psqlpy", "pysqlx"]:
                owner = lib.split("-")[0]
                ms.append(self.add(f"fetch/py/{lib}", self.py("fetch", "--lib", lib, "--uri", self.pg), "ms", owner))
            self.group(f"3, 6. fetch {s['fetch_rows']:,} rows", ms, s["reps"])

        if want("insert"):
            n = s["insert_rows"]
            ms = [
                self.add("insert/sqlite/sqlpool-loop", [BENCH_SQLPOOL, "insert", self.sqlite, n], "ms", "sqlpool"),
                self.add("insert/sqlite/sqlpool-batch", [BENCH_SQLPOOL, "insert-batch", self.sqlite, n], "ms",
                         "sqlpool"),
                self.add("insert/sqlite/sqlite3-c", [BENCH_FLOOR, "insert-sqlite", self.sqlite_path, n], "ms",
                         "sqlite3-c"),
            ]
            if self.pg:
                ms += [
                    self.add("insert/c/sqlpool-loop", [BENCH_SQLPOOL, "insert", self.pg, n], "ms", "sqlpool"),
                    self.add("insert/c/sqlpool-batch", [BENCH_SQLPOOL, "insert-batch", self.pg, n], "ms", "sqlpool"),
                    self.add("insert/c/libpq-loop", [BENCH_FLOOR, "insert", self.pg, n], "ms", "libpq"),
                    self.add("insert/c/libpq-pipeline", [BENCH_FLOOR, "insert-pipeline", self.pg, n], "ms", "libpq"),
                ]
            for lib in ("sqlpool", "psycopg") if self.pg else ():
                for how in ("loop", "many"):
                    ms.append(self.add(f"insert/py/{lib}-{how}", self.py("insert", "--lib", lib, "--uri", self.pg,
                                                                         "--rows", n, "--how", how), "ms", lib))
            self.group(f"4. {n:,} inserts in one transaction", ms, s["reps"])

        if want("bulk"):
            self.bulk()

        for hold in (False, True):
            if not want("stress-hold" if hold else "stress"):
                continue
            ms = []
            for db, uri in dbs:
                for mode in ("sync", "async"):
                    for lib in ["sqlpool"] + self.stress_peers(db, mode):
                        args = ["stress", "--lib", lib, "--mode", mode, "--uri", uri, "--jobs", s["stress_jobs"],
                                "--concurrency", s["stress_conc"]]
                        if hold:
                            args += ["--hold", "--hold-scale", s["hold_scale"]]
                        ms.append(self.add(f"stress{'-hold' if hold else ''}/{db}/{mode}/{lib}", self.py(*args),
                                           "seconds", lib, timeout=600))
            self.group("5, 8. seed stress, " + ("with the 0.1-0.5 s hold" if hold else "no hold"), ms,
                       s["reps_hold"] if hold else s["reps"])

    def bulk(self) -> None:
        """9. Issue 13: streaming (time, and peak RSS of 2,000,000 rows), COPY
        against execute_many. Three repetitions: the runs are long."""
        s, pg, reps = self.s, self.pg, self.s["reps_hold"]
        n, c = s["stream_rows"], s["copy_rows"]
        if pg:
            self.group("9. streaming a result", [
                self.add("bulk/c/sqlpool-stream-fetch", [BENCH_SQLPOOL, "stream-fetch", pg], "ms", "sqlpool"),
                self.add("bulk/c/libpq-fetch", [BENCH_FLOOR, "fetch", pg], "ms", "libpq"),
            ], s["reps"])
        ms = [self.add("bulk/sqlite/sqlpool-stream", [BENCH_SQLPOOL, "stream", self.sqlite, n], "ms", "sqlpool"),
              self.add("bulk/sqlite/py-sqlpool-stream",
                       self.py("stream", "--lib", "sqlpool", "--uri", self.sqlite, "--rows", n), "ms", "sqlpool")]
        if pg:
            ms += [self.add("bulk/c/sqlpool-stream", [BENCH_SQLPOOL, "stream", pg, n], "ms", "sqlpool")]
            ms += [self.add(f"bulk/py/{lib}-stream", self.py("stream", "--lib", lib, "--uri", pg, "--rows", n), "ms",
                            lib, timeout=600) for lib in ("sqlpool", "psycopg")]
        self.group(f"9. streaming {n:,} rows (peak RSS)", ms, reps)
        if pg:
            ms = [self.add("bulk/c/sqlpool-copy", [BENCH_SQLPOOL, "copy", pg, c], "ms", "sqlpool"),
                  self.add("bulk/c/libpq-copy", [BENCH_FLOOR, "copy", pg, c], "ms", "libpq")]
            for lib, how in (("sqlpool", "copy"), ("sqlpool", "many"), ("psycopg", "copy")):
                ms.append(self.add(f"bulk/py/{lib}-{how}", self.py("insert", "--lib", lib, "--uri", pg, "--rows", c,
                                                                   "--how", how), "ms", lib, timeout=600))
            self.group(f"9. loading {c:,} rows: COPY, execute_many", ms, reps)

    @staticmethod
    def stress_peers(db: str, mode: str) -> List[str]:
        if db == "sqlite":
            return ["pysqlx"]
        return ["psycopg", "pysqlx"] if mode == "sync" else ["psycopg", "asyncpg", "psqlpy", "pysqlx"]


def r2d2_versions() -> str:
    lock = ROOT / "bench" / "r2d2_floor" / "Cargo.lock"
    found: Dict[str, str] = {}
    name = None
    for line in lock.read_text().splitlines() if lock.exists() else []:
        if line.startswith("name = "):
            name = line.split('"')[1]
        elif line.startswith("version = ") and name in ("r2d2", "r2d2_postgres", "r2d2_sqlite"):
            found[name] = line.split('"')[1]
    return ", ".join(f"{k} {v}" for k, v in sorted(found.items()))


# ---------------------------------------------------------------------------
# The report


@dataclass
class Target:
    kind: str  # "ratio_le", "ratio_lt", "abs_le", "diff_le", "errors", "none"
    value: float = 0.0
    text: str = ""


@dataclass
class Row:
    scenario: str
    peer: str
    version: str
    sq: Optional[Measure]
    peer_m: Optional[Measure]
    unit: str  # "ns", "ms", "s", "kb"
    target: Target
    notes: str = ""
    peer_value: Optional[float] = None  # a computed peer (ideal)
    use: str = "values"  # "values" or "maxrss"

    def sq_values(self) -> List[float]:
        return self._vals(self.sq)

    def peer_values(self) -> List[float]:
        if self.peer_value is not None:
            return [self.peer_value]
        return self._vals(self.peer_m)

    def _vals(self, m: Optional[Measure]) -> List[float]:
        if m is None or m.error or not m.values:
            return []
        if self.use == "maxrss":
            return [float(r["maxrss_kb"]) for r in m.raw]
        return list(m.values)

    @property
    def sq_median(self) -> Optional[float]:
        v = self.sq_values()
        return statistics.median(v) if v else None

    @property
    def peer_median(self) -> Optional[float]:
        v = self.peer_values()
        return statistics.median(v) if v else None

    @property
    def ratio(self) -> Optional[float]:
        a, b = self.sq_median, self.peer_median
        return a / b if a is not None and b else None

    def met(self) -> Optional[bool]:
        t = self.target
        errs = self.errors()
        if t.kind == "none":
            return None if not errs else False
        if t.kind in ("ratio_le", "ratio_lt"):
            r = self.ratio
            if r is None:
                return None
            ok = r <= t.value if t.kind == "ratio_le" else r < t.value
        elif t.kind == "abs_le":
            if self.sq_median is None:
                return None
            ok = self.sq_median <= t.value
        elif t.kind == "diff_le":
            if self.sq_median is None or self.peer_median is None:
                return None
            ok = self.sq_median - self.peer_median <= t.value
        else:
            ok = True
        return ok and not errs

    def errors(self) -> int:
        if self.sq is None or self.sq.error:
            return 0
        return max((int(r.get("errors", 0)) for r in self.sq.raw), default=0)


def fmt(v: Optional[float], unit: str) -> str:
    if v is None:
        return "—"
    if unit == "ns":
        if v < 1e3:
            return f"{v:.0f} ns"
        if v < 1e6:
            return f"{v / 1e3:.2f} µs" if v < 1e4 else f"{v / 1e3:.1f} µs"
        return f"{v / 1e6:.2f} ms"
    if unit == "ms":
        return f"{v:.1f} ms" if v < 1e3 else f"{v / 1e3:.2f} s"
    if unit == "s":
        return f"{v:.3f} s" if v < 10 else f"{v:.2f} s"
    if unit == "kb":
        return f"{v / 1024:.1f} MiB"
    return f"{v:g}"


def fmt_range(vals: List[float], unit: str) -> str:
    if not vals:
        return "—"
    if len(vals) == 1:
        return fmt(vals[0], unit)
    return f"{fmt(min(vals), unit)}–{fmt(max(vals), unit)}"


def build_rows(b: Bench) -> List[Row]:
    m = b.m
    v = b.versions
    get = m.get
    rows: List[Row] = []
    r2d2 = v.get("r2d2", "r2d2")
    py = lambda lib: f"{lib} {v.get(lib) or '?'}"  # noqa: E731

    # 1. acquire + release
    for db, dbname in (("pg", "PostgreSQL"), ("sqlite", "SQLite")):
        for threads in (1, 2):
            for rec, test in (("fast", 0), ("verified", 1)):
                rows.append(Row(
                    f"1. acquire+release, {dbname}, {threads} thread{'s' if threads > 1 else ''}, "
                    f"recycling={rec} (C)",
                    f"r2d2 (Rust), test_on_check_out={'true' if test else 'false'}", r2d2,
                    get(f"acquire/{db}/{threads}/sqlpool-{rec}"), get(f"acquire/{db}/{threads}/r2d2-test{test}"),
                    "ns", Target("ratio_le", 1.0, "≤ 1")))
    rows.append(Row(
        "1. acquire+release, PostgreSQL, 1 thread, default session_reset=auto (C)",
        "sqlpool with session_reset=off (no reset)", "—",
        get("acquire/pg/1/sqlpool-verified"), get("acquire/pg/1/sqlpool-verified-reset-off"),
        "ns", Target("ratio_le", 1.1, "≤ 1.1"),
        "an unchanged session is not reset: no round trip at release"))
    for workers in (1, 4):
        for mode, suffix in (("sync", ""), ("async", "-async")):
            rows.append(Row(
                f"1. acquire+release from Python, PostgreSQL, default settings, {workers} "
                f"{'thread' if mode == 'sync' else 'task'}{'s' if workers > 1 else ''} ({mode})",
                f"psycopg_pool ({mode}), default settings", py("psycopg"),
                get(f"acquire/py/{workers}/sqlpool{suffix}"), get(f"acquire/py/{workers}/psycopg{suffix}"),
                "ns", Target("ratio_le", 1.0, "≤ 1")))
    # 2. SELECT 1, point query (C)
    rows.append(Row("2. SELECT 1 round trip (C)", "libpq PQexecParams (C)", f"libpq {v.get('libpq')}",
                    get("select1/c/sqlpool"), get("select1/c/libpq"), "ns", Target("ratio_le", 1.10, "≤ 1.10")))
    rows.append(Row("2. SELECT 1 round trip (C)", "libpq PQprepare once + PQexecPrepared (C)", f"libpq {v.get('libpq')}",
                    get("select1/c/sqlpool"), get("select1/c/libpq-prepared"), "ns", Target("none", text="—"),
                    "a stricter floor than the target's (sqlpool caches prepared statements)"))
    rows.append(Row("2. SQLite point query by primary key (C)", "sqlite3 C API, prepared statement",
                    f"SQLite {v.get('sqlite_c')} (sqlpool bundles {v.get('sqlpool_sqlite')})",
                    get("point/c/sqlpool"), get("point/c/sqlite3"), "ns", Target("ratio_le", 1.5, "≤ 1.5")))
    # 3. fetch (C)
    n = b.s["fetch_rows"]
    rows.append(Row(f"3. fetch {n:,} rows, every cell, cell getters (C)", "libpq, binary results (C)",
                    f"libpq {v.get('libpq')}", get("fetch/c/sqlpool"), get("fetch/c/libpq"), "ms",
                    Target("ratio_le", 1.3, "≤ 1.3")))
    rows.append(Row(f"3. fetch {n:,} rows, every cell, column_data (C)", "libpq, binary results (C)",
                    f"libpq {v.get('libpq')}", get("fetch/c/sqlpool-columns"), get("fetch/c/libpq"), "ms",
                    Target("ratio_le", 1.3, "≤ 1.3")))
    # 4. inserts
    n = b.s["insert_rows"]
    none = Target("none", text="—")
    rows += [
        Row(f"4. {n:,} inserts, one transaction, execute per row (C)", "libpq PQexecPrepared per row (C)",
            f"libpq {v.get('libpq')}", get("insert/c/sqlpool-loop"), get("insert/c/libpq-loop"), "ms", none),
        Row(f"4. {n:,} inserts, sqlpool_conn_execute_many (C)", "libpq pipeline mode (C)",
            f"libpq {v.get('libpq')}", get("insert/c/sqlpool-batch"), get("insert/c/libpq-pipeline"), "ms",
            Target("ratio_le", 1.3, "≤ 1.3")),
        Row(f"4. {n:,} inserts, sqlpool_conn_execute_many (C)", "psycopg executemany (Python)", py("psycopg"),
            get("insert/c/sqlpool-batch"), get("insert/py/psycopg-many"), "ms", none,
            "C against Python"),
        Row(f"4. {n:,} inserts, execute_many (Python)", "psycopg executemany (Python)", py("psycopg"),
            get("insert/py/sqlpool-many"), get("insert/py/psycopg-many"), "ms",
            Target("ratio_lt", 1.0, "< 1 (faster)")),
        Row(f"4. {n:,} inserts, execute per row (Python)", "psycopg execute per row (Python)", py("psycopg"),
            get("insert/py/sqlpool-loop"), get("insert/py/psycopg-loop"), "ms", none),
        Row(f"4. {n:,} inserts, SQLite, execute per row (C)", "sqlite3 C API, prepared statement",
            f"SQLite {v.get('sqlite_c')}", get("insert/sqlite/sqlpool-loop"), get("insert/sqlite/sqlite3-c"), "ms",
            none),
        Row(f"4. {n:,} inserts, SQLite, sqlpool_conn_execute_many (C)", "sqlite3 C API, prepared statement",
            f"SQLite {v.get('sqlite_c')}", get("insert/sqlite/sqlpool-batch"), get("insert/sqlite/sqlite3-c"), "ms",
            none),
    ]
    # 5. stress
    s = b.s
    label = f"{s['stress_jobs']:,} jobs, {s['stress_conc']} concurrent, pool 5..30"
    peers_of = Bench.stress_peers
    for db, dbname in (("pg", "PostgreSQL"), ("sqlite", "SQLite")):
        for mode in ("sync", "async"):
            sq = get(f"stress/{db}/{mode}/sqlpool")
            peers = [p for p in peers_of(db, mode) if p in b.py_peers]
            for p in peers:
                rows.append(Row(f"5. seed stress, no hold, {dbname}, {mode} ({label})", f"{p} ({mode} pool)",
                                py(p), sq, get(f"stress/{db}/{mode}/{p}"), "s",
                                Target("ratio_le", 1 / 1.3, "≤ 0.77 (1.3× the throughput)")))
            if not peers:
                rows.append(Row(f"5. seed stress, no hold, {dbname}, {mode} ({label})", "(no peer installed)", "—",
                                sq, None, "s", Target("errors", text="0 errors")))
    for db, dbname in (("pg", "PostgreSQL"), ("sqlite", "SQLite")):
        for mode in ("sync", "async"):
            sq = get(f"stress-hold/{db}/{mode}/sqlpool")
            ideal = sq.raw[0]["ideal"] if sq and sq.raw else None
            bound = sq.raw[0]["schedule_bound"] if sq and sq.raw else None
            rows.append(Row(f"5. seed stress, 0.1–0.5 s hold, {dbname}, {mode} ({label})",
                            "ideal: sum of holds / 30", "—", sq, None, "s",
                            Target("ratio_le", 1.025, "≤ 1.025"),
                            notes=(f"FIFO schedule bound {bound:.2f} s (sqlpool / bound = "
                                   f"{statistics.median(sq.values) / bound:.3f})" if bound and sq.values else ""),
                            peer_value=ideal))
            for p in [p for p in peers_of(db, mode) if p in b.py_peers]:
                rows.append(Row(f"5. seed stress, 0.1–0.5 s hold, {dbname}, {mode}", f"{p} ({mode} pool)", py(p),
                                sq, get(f"stress-hold/{db}/{mode}/{p}"), "s", Target("none", text="—")))
    # 6. Python latency and fetch
    libpq = get("select1/c/libpq")
    rows.append(Row("6. SELECT 1 from Python (sync)", "libpq PQexecParams (C)", f"libpq {v.get('libpq')}",
                    get("select1/py/sqlpool"), libpq, "ns", Target("ratio_le", 1.05, "≤ 1.05")))
    for lib, label2 in (("psycopg", "psycopg (sync)"), ("pysqlx", "pysqlx-engine (sync)")):
        if lib in b.py_peers:
            rows.append(Row("6. SELECT 1 from Python (sync)", label2, py(lib), get("select1/py/sqlpool"),
                            get(f"select1/py/{lib}"), "ns",
                            Target("ratio_le", 1.0, "≤ 1") if lib == "psycopg" else none))
    for lib, label2 in (("psycopg-async", "psycopg (async)"), ("asyncpg", "asyncpg"), ("psqlpy", "psqlpy")):
        owner = lib.split("-")[0]
        if owner in b.py_peers:
            rows.append(Row("6. SELECT 1 from Python (async)", label2, py(owner), get("select1/py/sqlpool-async"),
                            get(f"select1/py/{lib}"), "ns",
                            Target("ratio_le", 1.0, "≤ 1") if owner == "psycopg" else none))
    n = b.s["fetch_rows"]
    for lib, label2 in (("psycopg", "psycopg, binary cursor, tuples"), ("asyncpg", "asyncpg Records"),
                        ("psqlpy", "psqlpy result() dicts"), ("pysqlx", "pysqlx-engine models")):
        if lib in b.py_peers:
            rows.append(Row(f"6. fetch {n:,} rows into Python rows, every cell", label2, py(lib),
                            get("fetch/py/sqlpool"), get(f"fetch/py/{lib}"), "ms", Target("ratio_lt", 1.0, "< 1")))
    if "asyncpg" in b.py_peers:
        rows.append(Row(f"6. fetch {n:,} rows into Python rows, every cell (async)", "asyncpg Records", py("asyncpg"),
                        get("fetch/py/sqlpool-async"), get("fetch/py/asyncpg"), "ms", Target("ratio_lt", 1.0, "< 1")))
    rows.append(Row("6. SQLite point query from Python (sync)", "sqlite3 (standard library)",
                    f"sqlite3 {v.get('sqlite3')}", get("point/py/sqlpool"), get("point/py/sqlite3"), "ns",
                    Target("ratio_le", 3.0, "≤ 3")))
    rows.append(Row("6. SQLite SELECT 1 from Python (sync)", "sqlite3 (standard library)",
                    f"sqlite3 {v.get('sqlite3')}", get("select1/sqlite-py/sqlpool"), get("select1/sqlite-py/sqlite3"),
                    "ns", Target("ratio_le", 3.0, "≤ 3")))
    rows.append(Row(f"6. fetch {b.s['fetch_rows']:,} rows into Python rows, every cell, SQLite",
                    "sqlite3 (standard library), fetchall", f"sqlite3 {v.get('sqlite3')}",
                    get("fetch/sqlite-py/sqlpool"), get("fetch/sqlite-py/sqlite3"), "ms",
                    Target("ratio_le", 1.3, "≤ 1.3")))
    rows.append(Row(f"4. {b.s['insert_rows']:,} inserts, SQLite, execute_many (Python)",
                    "sqlite3 (standard library) executemany", f"sqlite3 {v.get('sqlite3')}",
                    get("insert/sqlite-py/sqlpool-many"), get("insert/sqlite-py/sqlite3-many"), "ms",
                    Target("ratio_le", 1.5, "≤ 1.5")))
    if "pysqlx" in b.py_peers:
        rows.append(Row("6. SQLite point query from Python (sync)", "pysqlx-engine (sync)", py("pysqlx"),
                        get("point/py/sqlpool"), get("point/py/pysqlx"), "ns", none))
    rows.append(Row("6. SQLite point query from Python (async)", "sqlite3 (standard library, sync)",
                    f"sqlite3 {v.get('sqlite3')}", get("point/py/sqlpool-async"), get("point/py/sqlite3"), "ns",
                    none, "the overhead row (7.) carries the target"))
    # 7. async overhead
    rows.append(Row("7. async overhead: SELECT 1, PostgreSQL (async − blocking)", "sqlpool blocking API", "—",
                    get("select1/py/sqlpool-async"), get("select1/py/sqlpool"), "ns",
                    Target("diff_le", 10_000, "≤ +10 µs")))
    rows.append(Row("7. async overhead: SQLite point query (async − blocking)", "sqlpool blocking API", "—",
                    get("point/py/sqlpool-async"), get("point/py/sqlpool"), "ns",
                    Target("diff_le", 25_000, "≤ +25 µs")))
    # 8. memory
    for db, dbname in (("pg", "PostgreSQL"), ("sqlite", "SQLite")):
        for mode in ("sync", "async"):
            sq = get(f"stress-hold/{db}/{mode}/sqlpool")
            for p in [p for p in peers_of(db, mode) if p in b.py_peers]:
                rows.append(Row(f"8. peak RSS, seed stress with hold, {dbname}, {mode}", f"{p} ({mode} pool)", py(p),
                                sq, get(f"stress-hold/{db}/{mode}/{p}"), "kb", none, use="maxrss"))
    rows += bulk_rows(b)
    return [r for r in rows if r.sq is not None]


def bulk_rows(b: Bench) -> List[Row]:
    """9. Issue 13's targets: streaming, peak RSS of a streamed result, COPY."""
    get, v, s = b.m.get, b.versions, b.s
    py = lambda lib: f"{lib} {v.get(lib) or '?'}"  # noqa: E731
    libpq = f"libpq {v.get('libpq')}"
    none = Target("none", text="—")
    rss = Target("abs_le", 64 * 1024 - 1, "< 64 MiB")
    n, c, f = s["stream_rows"], s["copy_rows"], s["fetch_rows"]
    cursor = "psycopg server-side cursor, itersize 5,000 (Python)"
    return [
        Row(f"9. stream {f:,} rows (bench_fetch), chunks of 10,000, column_data (C)", "libpq, binary results (C)",
            libpq, get("bulk/c/sqlpool-stream-fetch"), get("bulk/c/libpq-fetch"), "ms",
            Target("ratio_le", 1.3, "≤ 1.3"), "libpq reads the result whole"),
        Row(f"9. peak RSS, {n:,} rows streamed, PostgreSQL (C)", cursor, py("psycopg"),
            get("bulk/c/sqlpool-stream"), get("bulk/py/psycopg-stream"), "kb", rss, "C against Python", use="maxrss"),
        Row(f"9. peak RSS, {n:,} rows streamed, PostgreSQL (Python, conn.stream)", cursor, py("psycopg"),
            get("bulk/py/sqlpool-stream"), get("bulk/py/psycopg-stream"), "kb", rss, use="maxrss"),
        Row(f"9. stream {n:,} rows into Python rows, PostgreSQL (conn.stream)", cursor, py("psycopg"),
            get("bulk/py/sqlpool-stream"), get("bulk/py/psycopg-stream"), "ms", none),
        Row(f"9. peak RSS, {n:,} rows streamed, SQLite (C)", "(no peer)", "—",
            get("bulk/sqlite/sqlpool-stream"), None, "kb", rss, use="maxrss"),
        Row(f"9. peak RSS, {n:,} rows streamed, SQLite (Python, conn.stream)", "(no peer)", "—",
            get("bulk/sqlite/py-sqlpool-stream"), None, "kb", rss, use="maxrss"),
        Row(f"9. load {c:,} rows, COPY write_row (Python)", "sqlpool execute_many (Python)", "—",
            get("bulk/py/sqlpool-copy"), get("bulk/py/sqlpool-many"), "ms",
            Target("ratio_le", 0.2, "≤ 0.2 (≥ 5× faster)"), "one transaction each"),
        Row(f"9. load {c:,} rows, COPY write_row (Python)", "psycopg copy write_row (Python)", py("psycopg"),
            get("bulk/py/sqlpool-copy"), get("bulk/py/psycopg-copy"), "ms", none),
        Row(f"9. load {c:,} rows, COPY FROM STDIN, 64 KiB writes (C)", "libpq PQputCopyData (C)", libpq,
            get("bulk/c/sqlpool-copy"), get("bulk/c/libpq-copy"), "ms", none),
    ]


def machine_info(b: Bench) -> List[str]:
    """Lines describing the machine and the versions, taken when the run starts."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    osname = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"') + f", Linux {platform.release()}"
    except OSError:
        pass

    def cmd_version(cmd: List[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    v = b.versions
    git = cmd_version(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return [
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, {mem} RAM; {osname}",
        f"- sqlpool source: git {git}" + (" (uncommitted changes)" if git.endswith("-dirty") else ""),
        f"- sqlpool {v.get('sqlpool_native')} (release build, {cmd_version(['rustc', '--version'])}), "
        f"C programs: {cmd_version([os.environ.get('CC', 'cc'), '--version'])} -O2",
        f"- PostgreSQL server {v.get('postgresql_server')} on the same machine (TCP 127.0.0.1, "
        "scram-sha-256, fsync=off); libpq " + str(v.get("libpq")) + f"; SQLite C library {v.get('sqlite_c')}; "
        f"{v.get('r2d2')}",
        f"- Python {v.get('python')}: " + ", ".join(
            f"{k} {v[k]}" for k in ("psycopg", "psycopg_pool", "asyncpg", "psqlpy", "pysqlx") if v.get(k)),
    ]


def results_path(out: Path) -> Path:
    """The raw results: next to the report, except for docs/ (which holds only
    benchmarks.md and benchmarks.png): target/bench/results.json then."""
    if out.resolve() == (ROOT / "docs").resolve():
        return TARGET / "bench" / "results.json"
    return out / "results.json"


def write_report(b: Bench, rows: List[Row], out: Path, smoke: bool, started: datetime.datetime,
                 load_start: Tuple[float, ...], load_end: Tuple[float, ...], info: List[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    s = b.s
    reps_text = (f"{b.reps_override} repetitions per measurement (--reps)" if b.reps_override else
                 f"{s['reps']} repetitions per measurement ({s['reps_hold']} for the stress runs with holds "
                 "and the bulk loads)")
    lines = [
        "# Benchmarks",
        "",
        ("**Smoke run** (tiny sizes, one repetition: checks that every scenario runs; the numbers mean nothing)."
         if smoke else
         "sqlpool against the libraries a user would pick instead, measured side by side in one run "
         "(`make bench`; `make bench-smoke` runs every scenario at a tiny size)."),
        "",
        f"Run {started.strftime('%Y-%m-%d %H:%M UTC')}, {reps_text}, each in its own process, sqlpool and its peers "
        "alternating. Ratio = sqlpool median / peer median: **lower is better** for sqlpool "
        "(times, and bytes for peak RSS). min–max: sqlpool's range; peer's range.",
        "",
    ]
    lines += info[:1] + [
        f"- Load average (1 min) at start / end: {load_start[0]:.2f} / {load_end[0]:.2f}"
        " (the machine is shared: ratios from interleaved runs, not absolute times, are the result)"] + info[1:]
    lines += ["", "| Scenario | Peer | Peer version | sqlpool median | peer median | ratio | min–max (sqlpool; peer) "
              "| target | met? | notes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = r.met()
        met_s = "—" if met is None else ("yes" if met else "**no**")
        notes = [r.notes] if r.notes else []
        if r.errors():
            notes.append(f"{r.errors()} errors")
        elif r.scenario.startswith("5.") and r.sq and not r.sq.error:
            notes.append("0 errors")
        if r.peer_m is not None and r.peer_m.error:
            notes.append(f"peer failed: {r.peer_m.error}")
        if r.sq is not None and r.sq.error:
            notes.append(f"sqlpool failed: {r.sq.error}")
        if r.peer_m is not None and r.peer_m.raw and r.scenario.startswith("5.") and r.use == "values":
            perr = max(int(x.get("errors", 0)) for x in r.peer_m.raw)
            if perr:
                notes.append(f"peer: {perr} errors")
        if r.target.kind == "diff_le" and r.sq_median is not None and r.peer_median is not None:
            notes.append(f"difference {fmt(r.sq_median - r.peer_median, 'ns')}")
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
        rng = f"{fmt_range(r.sq_values(), r.unit)}; {fmt_range(r.peer_values(), r.unit)}"
        cells = [r.scenario, r.peer, r.version, fmt(r.sq_median, r.unit), fmt(r.peer_median, r.unit), ratio, rng,
                 r.target.text, met_s, "; ".join(notes)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    targeted = [r for r in rows if r.target.kind != "none"]
    met_n = sum(1 for r in targeted if r.met())
    lines += ["", f"Targets met: {met_n} of {len(targeted)}."]
    if b.notes:
        lines += [""] + [f"- Note: {n}" for n in b.notes]
    lines += ["", "![sqlpool / peer ratios](benchmarks.png)", "", METHOD]
    (out / "benchmarks.md").write_text("\n".join(lines) + "\n")
    results_path(out).parent.mkdir(parents=True, exist_ok=True)
    results_path(out).write_text(json.dumps({
        "started": started.isoformat(), "smoke": smoke, "sizes": s, "versions": b.versions,
        "load_start": load_start, "load_end": load_end, "notes": b.notes, "machine": info,
        "py_peers": b.py_peers,
        "measurements": {k: {"values": m.values, "raw": m.raw, "error": m.error, "field": m.field}
                         for k, m in b.m.items()},
    }, indent=1) + "\n")
    chart(rows, out / "benchmarks.png", smoke)


METHOD = """## How it is measured

- Scenarios 1–4 are C programs (`bench/c/bench_sqlpool.c` against `libsqlpool.so`, `bench/c/bench_floor.c` against
  libpq and the sqlite3 C library) and a Rust program using r2d2 directly (`bench/r2d2_floor`). Each timed loop
  follows a warm-up on the same connection; times per operation are wall time / operations (with 2 threads: over
  both threads, i.e. inverse throughput).
- libpq uses binary results and parameters and prepared statements (PQprepare/PQexecPrepared per row; pipeline mode,
  synced every 1,000 rows, as the floor of the batch call); SQLite's floor is a prepared statement with
  `sqlite3_bind_*`/`sqlite3_step`/`sqlite3_reset` on a NOMUTEX WAL connection.
- Scenario 1 pairs sqlpool's `recycling=fast` with r2d2's `test_on_check_out=false`, and `verified` (sqlpool's
  default: a round trip only for a connection idle longer than 500 ms or suspect since its last use) with r2d2's
  default `true` (a round trip per checkout). The session-reset row runs the default `session_reset=auto` against
  `off`: a borrower that changed nothing costs no reset. The Python rows run each pool with its defaults (sizes
  aside), N threads or tasks each acquiring and releasing in a loop.
- Scenario 5 is the seed scenario: 1,000 jobs, 50 at a time (threads, or tasks behind a semaphore), pool 5..30,
  each job `SELECT 1 as a` checked, optionally holding the connection 0.1–0.5 s; the holds are drawn once with
  `random.seed(0)` so every library sleeps the same. Time runs from before the pool is created to after it is
  closed, as in the seed. Each library runs with its own defaults besides the sizes (sqlpool: `recycling=verified`).
  The ideal with holds is the sum of holds / 30; the "FIFO schedule bound" is what 30 connections taking the jobs in
  order achieve at best (the ideal is not reachable exactly).
- Scenario 6–7: one held connection, `SELECT 1 AS a` read through each library's row API; the SQLite point query
  reads `id, name, value` by a scattered primary key. The fetch reads all rows of `bench_fetch` (int4, text, float8,
  timestamptz, 16-byte bytea) and touches every cell.
- Scenario 8: peak RSS (VmHWM) of the process running the stress scenario with holds (each library in its own process).
- Scenario 9 (bulk data): `bench_fetch` streamed with `sqlpool_conn_query_stream` in chunks of 10,000 rows against
  libpq reading it whole; 2,000,000 generated rows (`id`, `'name-' || id`) streamed from C (chunks of 10,000) and
  from Python (`conn.stream`, chunks of 5,000) against psycopg's server-side cursor, the number being the peak RSS
  (VmHWM) of the process; the insert scenario's rows loaded with COPY (text format: 64 KiB writes from C,
  `write_row` from Python) and with `execute_many`, each in one transaction.
"""


def chart_label(r: Row) -> str:
    """A short y-axis label: the scenario without its size details, the peer."""
    scenario = r.scenario
    for cut in (" (1,000 jobs", " (100 jobs"):
        if cut in scenario:
            scenario = scenario[: scenario.index(cut)]
    scenario = (scenario.replace("acquire+release", "acquire").replace(", every cell", "")
                .replace(" (async − blocking)", ""))
    scenario = scenario.replace("sqlpool_conn_execute_batch", "execute_batch").replace("sqlpool_conn_execute_many", "execute_many").replace(", one transaction", "")
    peer = (r.peer.replace(" (Rust)", "").replace("test_on_check_out", "test")
            .replace(", prepared statement", ""))
    label = f"{scenario} — vs {peer}"
    return label if len(label) <= 110 else label[:107] + "..."


def chart(rows: List[Row], path: Path, smoke: bool) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # the report is still written
        log(f"NOTE: no chart ({e})")
        return
    pts = [r for r in rows if r.ratio is not None]
    labels = [chart_label(r) for r in pts]
    ratios = [r.ratio for r in pts]
    colors = []
    for r in pts:
        met = r.met()
        colors.append("#9e9e9e" if met is None else ("#2e7d32" if met else "#c62828"))
    height = max(4.0, 0.24 * len(pts) + 1.8)
    fig, ax = plt.subplots(figsize=(15, height))
    y = list(range(len(pts)))[::-1]
    ax.barh(y, ratios, color=colors, height=0.7)
    for yi, r in zip(y, pts):
        if r.target.kind in ("ratio_le", "ratio_lt"):
            ax.plot([r.target.value, r.target.value], [yi - 0.4, yi + 0.4], color="black", linewidth=1.5)
        ax.text(r.ratio * 1.03, yi, f"{r.ratio:.2f}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1.0, color="#555", linestyle="--", linewidth=0.8)
    ax.set_ylim(-0.7, len(pts) - 0.3)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("sqlpool / peer, medians (log scale; lower is better)\n"
                  "green: target met, red: missed, grey: no target; black tick: the target ratio")
    ax.set_title("sqlpool vs peers" + (" (SMOKE RUN: tiny sizes, meaningless numbers)" if smoke else ""))
    # Room for the longest label (tight_layout misjudges long tick labels).
    longest = max((len(t) for t in labels), default=10)
    fig.subplots_adjust(left=min(0.55, longest * 0.058 / 15 + 0.02), right=0.97,
                        top=1 - 0.5 / height, bottom=0.9 / height)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------


def hold_cpus_awake() -> Tuple[Optional[int], str]:
    """Asks the kernel to keep CPUs out of idle states for the run (the PM QoS
    request cyclictest makes: /dev/cpu_dma_latency = 0, dropped when the file
    is closed). On virtual machines a halted vCPU takes 50-150 µs to wake, so
    without this a loopback round trip costs 15 µs or 150 µs depending on
    whatever else the machine is doing."""
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(fd, struct.pack("i", 0))
        return fd, "CPU idle states: held at polling for the run (/dev/cpu_dma_latency = 0)"
    except OSError as e:
        return None, (f"CPU idle states: as configured (/dev/cpu_dma_latency: {e.strerror}); round trips may "
                      "include waking idle CPUs")


def start_pg(tmp: Path, smoke: bool) -> Tuple[Optional[str], Optional[Path]]:
    """The server to use: SQLPOOL_BENCH_PG_URL, or a throwaway cluster. In a
    smoke run outside CI, no PostgreSQL means SQLite only (with a note), as
    `make test` skips PostgreSQL tests then; otherwise it is an error."""
    url = os.environ.get("SQLPOOL_BENCH_PG_URL")
    if url:
        return url, None
    d = tmp / "pg"
    p = subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "start", str(d)], capture_output=True, text=True)
    if p.returncode != 0:
        # Removes what the failed start left (e.g. its /tmp directory).
        subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "stop", str(d)], capture_output=True)
        msg = f"cannot start a PostgreSQL cluster (set SQLPOOL_BENCH_PG_URL?): {p.stderr.strip()[-500:]}"
        if smoke and os.environ.get("CI") != "true":
            log(f"NOTE: {msg}\nNOTE: the PostgreSQL scenarios are skipped")
            return None, None
        raise SystemExit(msg)
    return p.stdout.strip(), d


def replot(path: Path, out: Path) -> int:
    """Rewrites benchmarks.md/png from a results.json (no measuring)."""
    d = json.loads(path.read_text())
    b = Bench(d["sizes"], None, "", None)
    b.versions, b.notes, b.py_peers = d["versions"], d["notes"], d.get("py_peers", [])
    for key, m in d["measurements"].items():
        owner = "sqlpool"  # only the key and the values matter for the report
        b.m[key] = Measure(key, [], m["field"], owner, values=m["values"], raw=m["raw"], error=m["error"])
    rows = build_rows(b)
    started = datetime.datetime.fromisoformat(d["started"])
    write_report(b, rows, out, d["smoke"], started, tuple(d["load_start"]), tuple(d["load_end"]), d["machine"])
    log(f"wrote {out / 'benchmarks.md'}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="every scenario at a tiny size")
    ap.add_argument("--out", help="where benchmarks.md/png and results.json go")
    ap.add_argument("--only", help="comma-separated: acquire,select1,point,fetch,insert,bulk,stress,stress-hold")
    ap.add_argument("--reps", type=int, help="repetitions (overrides the defaults)")
    ap.add_argument("--cpu-idle", action="store_true",
                    help="leave CPU idle states alone (default: hold CPUs awake through /dev/cpu_dma_latency)")
    ap.add_argument("--replot", metavar="RESULTS_JSON",
                    help="only rewrite the report and chart from a results.json (into --out, default docs/)")
    a = ap.parse_args()
    if a.replot:
        return replot(Path(a.replot), Path(a.out) if a.out else ROOT / "docs")
    smoke = a.smoke
    out = Path(a.out) if a.out else (TARGET / "bench" / "smoke" if smoke else ROOT / "docs")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="sqlpool-bench-"))
    pg_dir: Optional[Path] = None
    qos_fd, qos_note = (None, "CPU idle states: as configured (--cpu-idle)") if a.cpu_idle else hold_cpus_awake()
    log(qos_note)
    try:
        pg_url, pg_dir = start_pg(tmp, smoke)
        b = Bench(SIZES["smoke" if smoke else "full"], pg_url, str(tmp / "bench.db"), a.reps)
        if not pg_url:
            b.notes.append("No PostgreSQL server could be started: the PostgreSQL scenarios were skipped.")
        b.setup()
        info = machine_info(b) + [f"- {qos_note}"]
        b.run_all(a.only.split(",") if a.only else None)
        rows = build_rows(b)
        write_report(b, rows, out, smoke, started, load_start, os.getloadavg(), info)
    finally:
        if qos_fd is not None:
            os.close(qos_fd)
        if pg_dir is not None:
            subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "stop", str(pg_dir)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"\nwrote {out / 'benchmarks.md'} and benchmarks.png ({time.monotonic() - t0:.0f} s)")
    failed = [m.key for m in b.m.values() if m.owner == "sqlpool" and m.error]
    erred = [m.key for m in b.m.values() if m.owner == "sqlpool" and any(r.get("errors") for r in m.raw)]
    targeted = [r for r in rows if r.target.kind != "none"]
    log(f"targets met: {sum(1 for r in targeted if r.met())} of {len(targeted)}"
        + (" (smoke run: sizes too small to mean anything)" if smoke else ""))
    if failed or erred:
        log(f"sqlpool measurements failed: {failed}; with errors: {erred}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
