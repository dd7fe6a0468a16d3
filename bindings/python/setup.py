"""Builds the Rust library with cargo and ships it inside the package.

``pip install ./bindings/python`` runs ``cargo build --release`` in the
repository (two levels up) and copies ``libsqlpool.so`` (``.dylib`` on
macOS) into the installed ``sqlpool`` package. Environment:

- ``SQLPOOL_LIBRARY=/path/to/libsqlpool.so``: ship that file, skip cargo.
- ``CARGO``: the cargo executable (default ``cargo``).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def library_name() -> str:
    if sys.platform == "darwin":
        return "libsqlpool.dylib"
    if sys.platform == "win32":
        return "sqlpool.dll"
    return "libsqlpool.so"


def build_library() -> Path:
    prebuilt = os.environ.get("SQLPOOL_LIBRARY")
    if prebuilt:
        path = Path(prebuilt)
        if not path.is_file():
            raise SystemExit(f"SQLPOOL_LIBRARY={prebuilt} is not a file")
        return path
    manifest = REPO / "Cargo.toml"
    if not manifest.is_file():
        raise SystemExit(
            f"cannot build the sqlpool library: no Cargo.toml at {manifest} "
            "(build from a repository checkout, or set SQLPOOL_LIBRARY)"
        )
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "build", "--release", "--manifest-path", str(manifest)]
    print("running", " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True, cwd=str(REPO))
        meta = subprocess.run(
            [cargo, "metadata", "--format-version", "1", "--no-deps", "--manifest-path", str(manifest)],
            check=True, cwd=str(REPO), stdout=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise SystemExit("cannot build the sqlpool library: cargo not found (install Rust, or set SQLPOOL_LIBRARY)")
    target = Path(json.loads(meta.stdout)["target_directory"])
    path = target / "release" / library_name()
    if not path.is_file():
        raise SystemExit(f"cargo did not produce {path}")
    return path


class BuildPyWithCargo(build_py):
    """build_py that also builds and copies the native library."""

    def run(self) -> None:
        super().run()
        source = build_library()
        dest = Path(self.build_lib) / "sqlpool" / library_name()
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        os.chmod(dest, 0o755)
        print(f"copied {source} -> {dest}", flush=True)


class BinaryDistribution(Distribution):
    """The wheel holds a native library: platform-specific, not pure."""

    def has_ext_modules(self) -> bool:
        return True


cmdclass = {"build_py": BuildPyWithCargo}

try:  # tag the wheel py3-none-<platform>: ctypes, no CPython ABI dependence
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # older setuptools
    try:
        from wheel.bdist_wheel import bdist_wheel as _bdist_wheel
    except ImportError:
        _bdist_wheel = None

if _bdist_wheel is not None:

    class BdistWheel(_bdist_wheel):
        def finalize_options(self) -> None:
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = BdistWheel

setup(cmdclass=cmdclass, distclass=BinaryDistribution)
