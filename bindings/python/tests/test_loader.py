"""Finding and loading the native library; declared prototypes; version check."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import ctypes

import pytest

import sqlpool
from sqlpool import _lib
from test_safety import run_python

REPO = Path(__file__).resolve().parents[3]
HEADER = REPO / "include" / "sqlpool.h"


def test_version_matches_library_and_cargo():
    assert sqlpool.native_version() == sqlpool.__version__
    cargo = (REPO / "Cargo.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', cargo, re.M).group(1) == sqlpool.__version__


# C types of the header -> the ctypes type a prototype must use (scalars),
# or "pointer" (any ctypes pointer-sized type that passes a pointer).
_SCALARS = {
    "uint16_t": ctypes.c_uint16, "uint32_t": ctypes.c_uint32, "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64, "size_t": ctypes.c_size_t,
    "int": ctypes.c_int, "double": ctypes.c_double, "sqlpool_status": ctypes.c_uint32,
}
_CALLBACKS = {"sqlpool_log_callback", "sqlpool_completion_callback", "sqlpool_conn_callback"}


def _header_prototypes():
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    protos = {}
    for m in re.finditer(r"^([A-Za-z_][\w ]*?[\s*]+)(sqlpool_\w+)\(([^)]*)\);", text, re.M):
        ret, name, args = m.group(1).strip(), m.group(2), m.group(3).strip()
        params = [] if args in ("", "void") else [
            re.sub(r"\b\w+$", "", a.strip()).strip() for a in args.split(",")]
        protos[name] = (ret, params)
    return protos


def _matches(c_type: str, py_type) -> bool:
    c = " ".join(c_type.replace("*", " * ").split())
    if "*" in c or c in _CALLBACKS:
        if py_type is None:
            return False
        if py_type in (ctypes.c_void_p, ctypes.c_char_p):
            return True
        # POINTER(...) types and CFUNCTYPE types pass one pointer.
        return issubclass(py_type, (ctypes._Pointer, ctypes._CFuncPtr))
    if c == "void":
        return py_type is None
    want = _SCALARS.get(c.replace("const ", ""))
    assert want is not None, f"unknown C type {c_type!r} in the header: teach this test"
    return py_type is want or (
        py_type is not None and ctypes.sizeof(py_type) == ctypes.sizeof(want)
        and py_type._type_ == want._type_)


def _all_tables():
    """Every prototype table of the package (the bulk module keeps its own)."""
    import sqlpool.aio
    import sqlpool.bulk

    tables = dict(_lib._PROTOTYPES)
    tables.update(_lib._ASYNC_PROTOTYPES)
    tables.update(sqlpool.aio._TASK_PROTOTYPES)
    tables.update(sqlpool.aio._FAST_PROTOTYPES)
    tables.update(sqlpool.bulk._PROTOTYPES)
    return tables


def test_prototypes_match_the_header_in_full():
    """Each Python prototype has the header's arity, return type and every
    argument type (a scalar exactly; a pointer as a pointer): a signature
    change in the C API fails here."""
    if not HEADER.exists():
        pytest.skip("no header in this checkout")
    header = _header_prototypes()
    assert len(header) > 80, "header parse found too few functions"
    tables = _all_tables()
    problems = []
    for name, (restype, argtypes) in tables.items():
        if name not in header:
            problems.append(f"{name}: not in the header")
            continue
        ret, params = header[name]
        if not _matches(ret, restype):
            problems.append(f"{name}: returns {ret}, Python says {restype}")
        if len(params) != len(argtypes):
            problems.append(f"{name}: {len(params)} parameters in C, {len(argtypes)} in Python")
            continue
        for i, (c, py) in enumerate(zip(params, argtypes)):
            if not _matches(c, py):
                problems.append(f"{name}: parameter {i} is {c} in C, {py} in Python")
        # And what was applied to the loaded function is that table.
        fn = getattr(_lib.lib, name, None)
        if fn is not None:
            assert fn.argtypes == argtypes and fn.restype is restype, name
    assert problems == [], "\n".join(problems)
    assert all(r is not ctypes.c_char_p for r, _ in tables.values()), "c_char_p restype leaks"


def test_status_codes_match_the_header():
    """The header's status enum is the one source: every SQLPOOL_* status
    there has the same number in Python (a missing or renumbered one fails)."""
    if not HEADER.exists():
        pytest.skip("no header in this checkout")
    text = HEADER.read_text()
    body = re.search(r"enum sqlpool_status\b[^{]*\{(.*?)\}", text, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    header = {m.group(1): int(m.group(2)) for m in re.finditer(r"SQLPOOL_(\w+) = (\d+)", body)}
    assert len(header) >= 26
    python = {name: getattr(_lib, name) for name in header if hasattr(_lib, name)}
    assert python == header, {k: (header[k], python.get(k)) for k in header if python.get(k) != header[k]}
    # And the library names each code as the header does.
    for name, code in header.items():
        got = ctypes.string_at(_lib.lib.sqlpool_status_name(code)).decode()
        assert got == f"SQLPOOL_{name}", (code, got)


def test_every_header_function_is_declared():
    if not HEADER.exists():
        pytest.skip("no header in this checkout")
    declared = set(_all_tables())
    in_header = set(re.findall(r"\b(sqlpool_[a-z0-9_]+)\(", HEADER.read_text()))
    # Functions the binding does not need.
    unused = {"sqlpool_set_async_threads"}
    missing = sorted(in_header - declared - unused)
    assert missing == [], f"header functions without a Python prototype: {missing}"


def test_package_sources_use_only_declared_functions():
    used = set()
    for f in Path(sqlpool.__file__).parent.glob("*.py"):
        used |= set(re.findall(r"lib\.(sqlpool_[a-z0-9_]+)", f.read_text()))
    declared = set(_all_tables())
    assert used <= declared, used - declared


def test_env_override(tmp_path):
    copy = tmp_path / "libcopy.so"
    shutil.copyfile(_lib.library_path, copy)
    res = run_python("import sqlpool; print(sqlpool.library_path)", SQLPOOL_LIBRARY=str(copy))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(copy)


def test_env_override_that_fails(tmp_path):
    res = run_python("import sqlpool", SQLPOOL_LIBRARY=str(tmp_path / "nope.so"))
    assert res.returncode != 0
    assert "ImportError" in res.stderr and "SQLPOOL_LIBRARY" in res.stderr and "nope.so" in res.stderr


def test_import_error_lists_every_place_tried(tmp_path):
    # A copy of the package outside any repository, without a library.
    pkg = tmp_path / "site" / "sqlpool"
    shutil.copytree(Path(sqlpool.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("*.so", "*.dylib", "*.dll", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("SQLPOOL_LIBRARY", "CARGO_TARGET_DIR")}
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", "import sqlpool"], capture_output=True, text=True,
                         env=dict(env, PYTHONPATH=str(tmp_path / "site")), timeout=60, cwd=str(tmp_path))
    assert res.returncode != 0
    err = res.stderr
    assert "ImportError" in err and "Places tried" in err
    assert "SQLPOOL_LIBRARY" in err and "package copy" in err and "repository build" in err
    assert str(pkg / "libsqlpool.so") in err


def test_version_mismatch_is_a_clear_import_error(tmp_path):
    pkg = tmp_path / "site" / "sqlpool"
    shutil.copytree(Path(sqlpool.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    (pkg / "_version.py").write_text('__version__ = "0.0.0-test"\n')
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", "import sqlpool"], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(tmp_path / "site"), SQLPOOL_LIBRARY=_lib.library_path),
        timeout=60, cwd=str(tmp_path),
    )
    assert res.returncode != 0
    assert "ImportError" in res.stderr and "0.0.0-test" in res.stderr and sqlpool.__version__ in res.stderr


def test_installed_package_ships_the_library():
    if os.environ.get("SQLPOOL_TEST_INSTALLED") != "1":
        pytest.skip("set SQLPOOL_TEST_INSTALLED=1 to check an installed package")
    pkg = Path(sqlpool.__file__).resolve().parent
    assert "site-packages" in str(pkg), pkg
    assert Path(_lib.library_path).resolve().parent == pkg
    assert (pkg / "py.typed").exists()


def test_statuses_have_names():
    from sqlpool.errors import _status_name

    assert _status_name(9) == "SQLPOOL_POOL_TIMEOUT"
    assert _status_name(22) == "SQLPOOL_EMPTY"
    assert _status_name(12345) == "SQLPOOL_UNKNOWN"
