"""Library logs -> Python ``logging`` (the ``sqlpool`` logger hierarchy), and LOG_CONFIG."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Dict, Optional

from . import errors as _errors
from ._lib import LOG_CALLBACK, lib
from .errors import check

__all__ = ["LOG_CONFIG", "LogConfig", "TRACE"]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# SQLPOOL_LOG_* -> logging levels
_PY_LEVEL = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: TRACE}
_COLORS = {1: "\x1b[31m", 2: "\x1b[33m", 3: "\x1b[32m", 4: "\x1b[36m", 5: "\x1b[90m"}
_RESET = "\x1b[0m"

_loggers: Dict[bytes, logging.Logger] = {}
_use_color = False


def _logger_for(target: bytes) -> logging.Logger:
    logger = _loggers.get(target)
    if logger is None:
        name = target.decode("utf-8", "replace").replace("::", ".") or "sqlpool"
        if name != "sqlpool" and not name.startswith("sqlpool."):
            name = "sqlpool." + name
        logger = logging.getLogger(name)
        _loggers[target] = logger
    return logger


@LOG_CALLBACK  # type: ignore[untyped-decorator]
def _trampoline(user_data: Any, level: int, target: Optional[bytes], message: Optional[bytes]) -> None:
    # Runs on any thread (library threads included): ctypes takes the GIL.
    # Keep it minimal, and never let an exception escape into C.
    try:
        logger = _logger_for(target or b"sqlpool")
        py_level = _PY_LEVEL.get(level, logging.DEBUG)
        if not logger.isEnabledFor(py_level):
            return
        text = (message or b"").decode("utf-8", "replace")
        if _use_color:
            text = _COLORS.get(level, "") + text + _RESET
        logger.log(py_level, text)
    except BaseException:  # noqa: BLE001
        pass


# Levels the library is asked to send (SQLPOOL_LOG_*): formatting a line and
# taking the GIL for it cost something, so only what LOG_CONFIG asks for.
_LOG_WARN = 2
_LOG_DEBUG = 4
_LOG_TRACE = 5

_lock = threading.Lock()


class LogConfig:
    """Logging and error-format switches, applied as soon as they are set
    (PySQLXEngine's ``LOG_CONFIG``)::

        from sqlpool import LOG_CONFIG
        LOG_CONFIG.SQLPOOL_DEV_MODE = True       # every library log line (TRACE and up)
        LOG_CONFIG.SQLPOOL_SQL_LOG = True        # each statement, its duration and rows
        LOG_CONFIG.SQLPOOL_USE_COLOR = True      # ANSI colors in messages
        LOG_CONFIG.SQLPOOL_ERROR_JSON_FMT = True # str(exception) is the library's JSON

    Library lines go to the ``sqlpool`` logger hierarchy (``sqlpool.pool``,
    ``sqlpool.sql``); configure handlers and levels with :mod:`logging`.
    Without DEV_MODE or SQL_LOG, warnings and errors are forwarded.
    """

    _names = (
        "SQLPOOL_DEV_MODE",
        "SQLPOOL_SQL_LOG",
        "SQLPOOL_SQL_LOG_VALUES",
        "SQLPOOL_USE_COLOR",
        "SQLPOOL_ERROR_JSON_FMT",
    )

    _values: Dict[str, bool]

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {name: False for name in self._names})

    @property
    def SQLPOOL_DEV_MODE(self) -> bool:  # noqa: N802
        """Forward every library log line (down to TRACE), not only warnings."""
        return bool(self._values["SQLPOOL_DEV_MODE"])

    @property
    def SQLPOOL_SQL_LOG(self) -> bool:  # noqa: N802
        """Log each statement (logger ``sqlpool.sql``, level DEBUG)."""
        return bool(self._values["SQLPOOL_SQL_LOG"])

    @property
    def SQLPOOL_SQL_LOG_VALUES(self) -> bool:  # noqa: N802
        """With SQLPOOL_SQL_LOG: include parameter values (else redacted)."""
        return bool(self._values["SQLPOOL_SQL_LOG_VALUES"])

    @property
    def SQLPOOL_USE_COLOR(self) -> bool:  # noqa: N802
        """Color messages by level with ANSI escapes (for terminals)."""
        return bool(self._values["SQLPOOL_USE_COLOR"])

    @property
    def SQLPOOL_ERROR_JSON_FMT(self) -> bool:  # noqa: N802
        """``str(exception)`` is the error's JSON (``sqlpool_last_error_json``)."""
        return bool(self._values["SQLPOOL_ERROR_JSON_FMT"])

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._names:
            raise AttributeError(f"LOG_CONFIG has no setting {name!r} (settings: {', '.join(self._names)})")
        with _lock:
            self._values[name] = bool(value)
            self._apply()

    def _apply(self) -> None:
        global _use_color
        v = self._values
        _use_color = v["SQLPOOL_USE_COLOR"]
        _errors._json_format = v["SQLPOOL_ERROR_JSON_FMT"]
        check(lib.sqlpool_set_sql_logging(1 if v["SQLPOOL_SQL_LOG"] else 0,
                                          1 if v["SQLPOOL_SQL_LOG_VALUES"] else 0))
        level = _LOG_WARN
        if v["SQLPOOL_SQL_LOG"]:
            level = _LOG_DEBUG
        if v["SQLPOOL_DEV_MODE"]:
            level = _LOG_TRACE
        install(level)

    def __repr__(self) -> str:
        return "LogConfig(" + ", ".join(f"{k}={self._values[k]}" for k in self._names) + ")"


_installed_level = 0


def install(level: int) -> None:
    """Routes library logs at ``level`` (SQLPOOL_LOG_*) and more severe to logging."""
    global _installed_level
    if level == _installed_level:
        return
    check(lib.sqlpool_set_logger(_trampoline, level, None))
    _installed_level = level


def _uninstall() -> None:
    # At exit, stop library threads from calling into a finalizing interpreter.
    global _installed_level
    try:
        lib.sqlpool_set_logger(LOG_CALLBACK(), _LOG_WARN, None)
        _installed_level = 0
    except BaseException:  # noqa: BLE001
        pass


LOG_CONFIG = LogConfig()
install(_LOG_WARN)
atexit.register(_uninstall)
