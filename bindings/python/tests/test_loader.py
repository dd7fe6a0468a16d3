"""Finding and loading the native library; declared prototypes; version check."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

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


def test_every_used_function_is_declared():
    for table in (_lib._PROTOTYPES, _lib._ASYNC_PROTOTYPES if _lib.HAS_ASYNC else {}):
        for name, (restype, argtypes) in table.items():
            fn = getattr(_lib.lib, name)
            assert fn.restype is restype, name
            assert fn.argtypes == argtypes, name
    # No c_char_p restype anywhere (the library's strings are read with string_at).
    import ctypes

    assert all(r is not ctypes.c_char_p for r, _ in _lib._PROTOTYPES.values())


def test_every_header_function_is_declared():
    if not HEADER.exists():
        pytest.skip("no header in this checkout")
    declared = set(_lib._PROTOTYPES) | set(_lib._ASYNC_PROTOTYPES)
    in_header = set(re.findall(r"\b(sqlpool_[a-z0-9_]+)\(", HEADER.read_text()))
    # Functions the binding does not need.
    unused = {"sqlpool_set_async_threads"}
    missing = sorted(in_header - declared - unused)
    assert missing == [], f"header functions without a Python prototype: {missing}"


def test_package_sources_use_only_declared_functions():
    used = set()
    for f in Path(sqlpool.__file__).parent.glob("*.py"):
        used |= set(re.findall(r"lib\.(sqlpool_[a-z0-9_]+)", f.read_text()))
    declared = set(_lib._PROTOTYPES) | set(_lib._ASYNC_PROTOTYPES)
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
