"""One base class for every object that owns a native handle."""

from __future__ import annotations

import os
from typing import Any, Optional, TypeVar

from .errors import InterfaceError

__all__ = ["Managed", "fork_generation"]

_T = TypeVar("_T", bound="Managed")

# Incremented in a forked child: handles created before the fork belong to
# the parent (its sockets, its library threads) and must not be touched.
_generation = 0


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_generation() -> int:
    return _generation


class Managed:
    """Owns one native handle (wasmtime-py's ``Managed`` pattern).

    - :meth:`close` is idempotent; the handle is freed exactly once.
    - Using the object after :meth:`close` raises :class:`InterfaceError`.
    - ``with obj:`` closes it on exit.
    - ``__del__`` closes it as a fallback, and is safe during interpreter
      shutdown and in a forked child (where it never calls the library for a
      handle the parent owns).
    """

    _ptr: Optional[int] = None
    _generation: int = 0
    _pid: int = 0
    _what: str = "object"
    _closed_message: str = ""

    def _adopt(self, ptr: int) -> None:
        """Takes ownership of a freshly created native handle."""
        self._ptr = ptr
        self._generation = _generation
        self._pid = os.getpid()

    def _handle(self) -> int:
        """The live handle, or InterfaceError when closed or forked."""
        ptr = self._ptr
        if ptr is None:
            raise InterfaceError(self._closed_message or f"the {self._what} is closed")
        if self._generation != _generation:
            raise InterfaceError(
                f"the {self._what} was created in process {self._pid} and cannot be used "
                f"after os.fork() (this is process {os.getpid()}); create a new one in the child"
            )
        return ptr

    def _free(self, ptr: int) -> None:  # pragma: no cover - abstract
        """Frees the native handle; implemented by subclasses."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the handle was given up)."""
        return self._ptr is None

    def close(self) -> None:
        """Frees the native handle. Calling it again does nothing."""
        ptr = self._ptr
        if ptr is None:
            return
        self._ptr = None
        if self._generation != _generation:
            return  # owned by the parent process: never touch it here
        self._free(ptr)

    def __enter__(self: _T) -> _T:
        self._handle()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            ptr = self._ptr
            if ptr is None:
                return
            self._ptr = None
            if self._generation != _generation:
                return
            self._free(ptr)
        except BaseException:  # noqa: BLE001 - interpreter shutdown, etc.
            pass
