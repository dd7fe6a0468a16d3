"""Builds the Rust library with cargo and ships it inside the package.

``pip install ./bindings/python`` runs ``cargo build --release`` on the
crate (in the repository two levels up, or in ``rust/`` inside an sdist)
and copies ``libsqlpool.so`` (``.dylib`` on macOS) into the installed
``sqlpool`` package. Environment:

- ``SQLPOOL_LIBRARY=/path/to/libsqlpool.so``: ship that file, skip cargo
  (``make wheel`` uses it for the manylinux build).
- ``CARGO``: the cargo executable (default ``cargo``).
- ``CARGO_TARGET_DIR``: where cargo builds (reused between installs).

The sdist (``python -m build --sdist``) carries the crate in ``rust/``
(Cargo.toml, Cargo.lock, src/, include/, cbindgen.toml), so
``pip install sqlpool-*.tar.gz`` builds it wherever cargo is installed.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# What of the repository the crate needs to build (copied into sdists).
CRATE_FILES = ["Cargo.toml", "Cargo.lock", "LICENSE", "cbindgen.toml", "build.rs"]
CRATE_DIRS = ["src", "include"]


def crate_root() -> Path:
    """The crate: ``rust/`` in an unpacked sdist, else the repository."""
    bundled = HERE / "rust"
    if (bundled / "Cargo.toml").is_file():
        return bundled
    return REPO


def say(line: str) -> None:
    """A progress line that shows even when pip hides build output."""
    print(line, flush=True)
    print(line, file=sys.stderr, flush=True)
    try:  # pip captures stdout/stderr unless -v: tell the terminal too
        with open("/dev/tty", "w") as tty:
            tty.write(line + "\n")
    except OSError:
        pass


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
    root = crate_root()
    manifest = root / "Cargo.toml"
    if not manifest.is_file():
        raise SystemExit(
            f"cannot build the sqlpool library: no Cargo.toml at {manifest} "
            "(build from a repository checkout or an sdist, or set SQLPOOL_LIBRARY)"
        )
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "build", "--release", "--lib", "--manifest-path", str(manifest)]
    say("sqlpool: building the Rust library with cargo (release; a first build takes "
        "1-3 minutes, cargo's progress follows; `pip install -v` shows it all)")
    say("sqlpool: running " + " ".join(cmd))
    started = time.monotonic()
    env = dict(os.environ)
    if "CARGO_TERM_PROGRESS_WHEN" not in env:  # progress bars even into a pipe
        env["CARGO_TERM_PROGRESS_WHEN"] = "always"
        env.setdefault("CARGO_TERM_PROGRESS_WIDTH", "80")
    try:
        subprocess.run(cmd, check=True, cwd=str(root), env=env)
        meta = subprocess.run(
            [cargo, "metadata", "--format-version", "1", "--no-deps", "--manifest-path", str(manifest)],
            check=True, cwd=str(root), stdout=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise SystemExit("cannot build the sqlpool library: cargo not found (install Rust, or set SQLPOOL_LIBRARY)")
    say(f"sqlpool: cargo finished in {time.monotonic() - started:.0f} s")
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


class SdistWithCrate(sdist):
    """An sdist that also carries the crate (in ``rust/``), so it builds
    without the repository."""

    def make_release_tree(self, base_dir: str, files) -> None:
        super().make_release_tree(base_dir, files)
        root = crate_root()
        dest = Path(base_dir) / "rust"
        for name in CRATE_FILES:
            if (root / name).is_file():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / name, dest / name)
        for name in CRATE_DIRS:
            if (root / name).is_dir():
                shutil.copytree(root / name, dest / name,
                                ignore=shutil.ignore_patterns("target", "__pycache__", "*.pyc"))


class BinaryDistribution(Distribution):
    """The wheel holds a native library: platform-specific, not pure."""

    def has_ext_modules(self) -> bool:
        return True


cmdclass = {"build_py": BuildPyWithCargo, "sdist": SdistWithCrate}

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
