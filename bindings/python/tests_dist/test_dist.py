"""The wheel and the sdist as a user gets them (run by ``make test-dist``,
after ``make wheel sdist``): each is installed into a fresh venv outside
the repository and used there."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

DIST = Path(os.environ.get("SQLPOOL_DIST", Path(__file__).resolve().parent.parent / "dist"))
REPO = Path(os.environ.get("SQLPOOL_REPO", Path(__file__).resolve().parents[3]))
README = Path(__file__).resolve().parent.parent / "README.md"


def only(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {DIST} (run make wheel sdist): {found}"
    return found[0]


def quickstart() -> str:
    """The Quickstart program of the Python README."""
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


def fresh_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    return where / "bin" / "python"


def env_without_cargo(tmp: Path) -> dict:
    """PATH with the system directories only: no cargo, no rustc."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SQLPOOL_", "CARGO", "RUSTUP", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = str(tmp)
    assert shutil.which("cargo", path=env["PATH"]) is None, "cargo is in a system directory"
    return env


def test_wheel_is_manylinux_and_complete():
    wheel = only("sqlpool-*.whl")
    assert re.fullmatch(r"sqlpool-[\d.]+-py3-none-(manylinux2014_x86_64\.)?manylinux_2_17_x86_64(\.manylinux2014_x86_64)?\.whl",
                        wheel.name), wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "sqlpool/libsqlpool.so" in names
        assert "sqlpool/py.typed" in names
        assert "sqlpool/compat/psqlpy.py" in names and "sqlpool/dbapi.py" in names
        assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
                   for n in names), names
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
        entry_points = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert meta.get_all("Project-URL") and len(meta.get_all("Project-URL")) >= 3
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and "License :: OSI Approved :: MIT License" in classifiers
    assert "postgresql.sqlpool" in entry_points
    shown = subprocess.run([Path(sys.executable).parent / "auditwheel", "show", str(wheel)],
                           capture_output=True, text=True, check=True).stdout
    assert "manylinux_2_17_x86_64" in " ".join(shown.split())


def test_wheel_installs_without_cargo_and_runs_the_quickstart(tmp_path):
    wheel = only("sqlpool-*.whl")
    py = fresh_venv(tmp_path / "venv")
    env = env_without_cargo(tmp_path)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-index", str(wheel)],
                   check=True, env=env, cwd=str(tmp_path))
    work = tmp_path / "app"
    work.mkdir()
    (work / "quickstart.py").write_text(quickstart())
    p = subprocess.run([str(py), "quickstart.py"], cwd=str(work), env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "BaseModel(id=1, name='ada', score=1.5)" in p.stdout, p.stdout
    where = subprocess.run([str(py), "-c", "import sqlpool; print(sqlpool.library_path)"],
                           cwd=str(work), env=env, capture_output=True, text=True, check=True).stdout
    assert where.strip().startswith(str(tmp_path / "venv")), where  # the wheel's own copy


def test_sdist_carries_the_crate_and_installs_with_cargo(tmp_path):
    sdist = only("sqlpool-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for needed in ("rust/Cargo.toml", "rust/Cargo.lock", "rust/src/lib.rs", "rust/LICENSE",
                   "setup.py", "pyproject.toml", "sqlpool/__init__.py", "sqlpool/compat/psqlpy.py"):
        assert needed in names, needed
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).exists():
        pytest.skip("cargo is not installed: the sdist cannot be built here")
    py = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLPOOL_", "VIRTUAL_ENV"))}
    env["PATH"] = str(Path(cargo).parent) + os.pathsep + env.get("PATH", "")
    env["CARGO_TARGET_DIR"] = str(REPO / "target" / "sdist")  # kept between runs
    p = subprocess.run([str(py), "-m", "pip", "install", "-v", str(sdist)], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    assert "sqlpool: building the Rust library with cargo" in p.stdout + p.stderr
    assert "sqlpool: cargo finished in" in p.stdout + p.stderr
    out = subprocess.run([str(py), "-c", "import sqlpool; print(sqlpool.connect('sqlite::memory:')"
                          ".execute('SELECT 40 + 2').fetchone()[0], sqlpool.library_path)"],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, check=True).stdout
    answer, path = out.split()
    assert answer == "42" and path.startswith(str(tmp_path / "venv")), out
