"""Values between Python and the library: parameters in, result columns out."""

from __future__ import annotations

import ctypes
import datetime as _dt
import gc as _gc
import ipaddress
import json
import operator
import re
import struct
import uuid
from ctypes import byref, c_double, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p
from array import array
from decimal import Decimal
from functools import lru_cache
from itertools import chain, islice, repeat
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _lib
from ._lib import ColumnData, ResultInfo, lib
from .errors import DataError, ProgrammingError, check, last_error
from .row import Row, row_class

__all__ = [
    "Params",
    "build_params",
    "free_params",
    "read_result",
    "format_timedelta",
    "parse_interval",
]

Params = Union[Mapping[str, Any], Sequence[Any], None]

_string_at = ctypes.string_at

# ---------------------------------------------------------------------------
# Python -> C


def format_timedelta(td: _dt.timedelta) -> str:
    """A timedelta as an ISO 8601 duration: ``P1DT2H3.5S``, ``-PT1S``, ``PT0S``."""
    negative = td < _dt.timedelta(0)
    if negative:
        td = -td
    days, secs, us = td.days, td.seconds, td.microseconds
    hours, rem = divmod(secs, 3600)
    minutes, seconds = divmod(rem, 60)
    out = "P"
    if days:
        out += f"{days}D"
    t = ""
    if hours:
        t += f"{hours}H"
    if minutes:
        t += f"{minutes}M"
    if seconds or us:
        if us:
            t += f"{seconds}.{us:06d}".rstrip("0") + "S"
        else:
            t += f"{seconds}S"
    if t:
        out += "T" + t
    if out == "P":
        out = "PT0S"
    return "-" + out if negative else out


def _json_default(value: Any) -> Any:
    """Makes values JSON can't hold into what the library binds them as."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return format_timedelta(value)
    if isinstance(value, (uuid.UUID, ipaddress._BaseAddress, ipaddress._BaseNetwork)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_Adder = Callable[..., int]
_add_null: _Adder = lib.sqlpool_params_add_null
_add_bool: _Adder = lib.sqlpool_params_add_bool
_add_int64: _Adder = lib.sqlpool_params_add_int64
_add_double: _Adder = lib.sqlpool_params_add_double
_add_text: _Adder = lib.sqlpool_params_add_text
_add_blob: _Adder = lib.sqlpool_params_add_blob

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _text(p: int, name: Optional[bytes], s: str) -> int:
    try:
        b = s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f"cannot bind a str that is not valid Unicode: {e}") from None
    return _add_text(p, name, b, len(b))


def _bind_int(p: int, name: Optional[bytes], v: int) -> int:
    if _INT64_MIN <= v <= _INT64_MAX:
        return _add_int64(p, name, v)
    # Beyond int64: sent as decimal text, which PostgreSQL numeric (and
    # SQLite's numeric affinity) accept; int8 columns reject it.
    return _text(p, name, str(int(v)))


def _bind_decimal(p: int, name: Optional[bytes], v: Decimal) -> int:
    return _text(p, name, format(v, "f"))


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _array_item(x: Any) -> Any:
    # JSON has no NaN/Infinity: array elements travel as the strings the
    # library parses for float and numeric elements.
    if type(x) is float and (x != x or x in (float("inf"), float("-inf"))):
        return _NON_FINITE[repr(x)]
    return x


def _bind_json(p: int, name: Optional[bytes], v: Any) -> int:
    if isinstance(v, (list, tuple)):
        v = [_array_item(x) for x in v]
    try:
        s = json.dumps(v, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ProgrammingError(f"cannot bind {type(v).__name__} as JSON: {e}") from None
    return _text(p, name, s)


def _bind_ip(p: int, name: Optional[bytes], v: Any) -> int:
    return _text(p, name, str(v))


_BINDERS: Dict[type, Callable[[int, Optional[bytes], Any], int]] = {
    type(None): lambda p, n, v: _add_null(p, n),
    bool: lambda p, n, v: _add_bool(p, n, 1 if v else 0),
    int: _bind_int,
    float: lambda p, n, v: _add_double(p, n, v),
    str: _text,
    bytes: lambda p, n, v: _add_blob(p, n, v, len(v)),
    bytearray: lambda p, n, v: _add_blob(p, n, bytes(v), len(v)),
    memoryview: lambda p, n, v: _add_blob(p, n, v.tobytes(), v.nbytes),
    Decimal: _bind_decimal,
    _dt.datetime: lambda p, n, v: _text(p, n, v.isoformat(sep=" ")),
    _dt.date: lambda p, n, v: _text(p, n, v.isoformat()),
    _dt.time: lambda p, n, v: _text(p, n, v.isoformat()),
    _dt.timedelta: lambda p, n, v: _text(p, n, format_timedelta(v)),
    uuid.UUID: lambda p, n, v: _text(p, n, str(v)),
    dict: _bind_json,
    list: _bind_json,
    tuple: _bind_json,
    ipaddress.IPv4Address: _bind_ip,
    ipaddress.IPv6Address: _bind_ip,
    ipaddress.IPv4Interface: _bind_ip,
    ipaddress.IPv6Interface: _bind_ip,
    ipaddress.IPv4Network: _bind_ip,
    ipaddress.IPv6Network: _bind_ip,
}

# For subclasses: the first base class (in this order) that matches.
_BASES: Tuple[type, ...] = (
    bool,
    int,
    float,
    str,
    bytes,
    bytearray,
    memoryview,
    Decimal,
    _dt.datetime,
    _dt.date,
    _dt.time,
    _dt.timedelta,
    uuid.UUID,
    dict,
    list,
    tuple,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def _binder_for(t: type) -> Callable[[int, Optional[bytes], Any], int]:
    for base in _BASES:
        if issubclass(t, base):
            binder = _BINDERS[base]
            break
    else:
        if issubclass(t, Mapping):
            binder = _bind_json
        elif hasattr(t, "__index__"):  # numpy integers and the like
            binder = lambda p, n, v: _bind_int(p, n, v.__index__())  # noqa: E731
        elif hasattr(t, "__float__") and not hasattr(t, "__len__"):
            binder = lambda p, n, v: _add_double(p, n, float(v))  # noqa: E731
        else:
            raise ProgrammingError(
                f"cannot bind a parameter of type {t.__module__}.{t.__qualname__}"
            )
    _BINDERS[t] = binder
    return binder


def _add(p: int, name: Optional[bytes], value: Any) -> None:
    binder = _BINDERS.get(type(value))
    if binder is None:
        binder = _binder_for(type(value))
    status = binder(p, name, value)
    if status:
        raise last_error(status)


def _check_shape(parameters: Params) -> None:
    if isinstance(parameters, (str, bytes, bytearray)):
        raise ProgrammingError(
            "parameters must be a sequence (positional) or a mapping (named), "
            f"not {type(parameters).__name__}"
        )


def _fill(p: int, parameters: Params) -> None:
    """Appends one parameter set to the native list ``p``."""
    if parameters is None:
        return
    _check_shape(parameters)
    if isinstance(parameters, Mapping):
        for key, value in parameters.items():
            if not isinstance(key, str):
                raise ProgrammingError(f"parameter names must be str, not {key!r}")
            _add(p, key.encode("utf-8"), value)
    else:
        try:
            it = iter(parameters)
        except TypeError:
            raise ProgrammingError(
                "parameters must be a sequence (positional) or a mapping (named), "
                f"not {type(parameters).__name__}"
            ) from None
        for value in it:
            _add(p, None, value)


def _new_params() -> int:
    h = c_void_p()
    check(lib.sqlpool_params_new(byref(h)))
    assert h.value is not None
    return h.value


def build_params(parameters: Params) -> Optional[int]:
    """A native parameter list for ``parameters`` (None for none).

    The caller frees it with :func:`free_params` (in a ``finally``).
    """
    if parameters is None:
        return None
    _check_shape(parameters)
    p = _new_params()
    try:
        _fill(p, parameters)
    except BaseException:
        lib.sqlpool_params_free(p)
        raise
    return p


def build_param_sets(seq_of_params: Iterable[Params]) -> int:
    """One native parameter list holding every set of ``seq_of_params``
    (``sqlpool_params_next_set`` between them), for ``execute_many``.
    The caller frees it with :func:`free_params`."""
    p = _new_params()
    try:
        for params in seq_of_params:
            _fill(p, params)
            check(lib.sqlpool_params_next_set(p))
    except BaseException:
        lib.sqlpool_params_free(p)
        raise
    return p


def free_params(p: Optional[int]) -> None:
    if p is not None:
        lib.sqlpool_params_free(p)


_KIND_INT64 = _lib.KIND_INT64
_pack_int = struct.Struct("<Bq").pack
_pack_double = struct.Struct("<Bd").pack
_pack_len = struct.Struct("<BQ").pack
_PACKED_NULL = bytes([_lib.KIND_NULL])
_PACKED_TRUE = bytes([_lib.KIND_BOOL, 1])
_PACKED_FALSE = bytes([_lib.KIND_BOOL, 0])


def pack_params(parameters: Params) -> Optional[bytes]:
    """Positional parameters of the plain types (int, float, str, bytes,
    bool, None) packed in one buffer for ``sqlpool_conn_query_packed``;
    None when they need the parameter-list path (named, other types, ints
    beyond int64, text that is not valid Unicode: its errors are worded
    there)."""
    if parameters is None:
        return b""
    t = type(parameters)
    if t is not list and t is not tuple:
        return None
    if len(parameters) == 1:  # the common lookup by one key
        v = parameters[0]
        if type(v) is int and _INT64_MIN <= v <= _INT64_MAX:
            return _pack_int(_KIND_INT64, v)
    parts = []
    for v in parameters:
        t = type(v)
        if t is int:
            if not _INT64_MIN <= v <= _INT64_MAX:
                return None
            parts.append(_pack_int(_lib.KIND_INT64, v))
        elif t is str:
            try:
                b = v.encode("utf-8")
            except UnicodeEncodeError:
                return None
            parts.append(_pack_len(_lib.KIND_TEXT, len(b)))
            parts.append(b)
        elif t is float:
            parts.append(_pack_double(_lib.KIND_DOUBLE, v))
        elif v is None:
            parts.append(_PACKED_NULL)
        elif t is bool:
            parts.append(_PACKED_TRUE if v else _PACKED_FALSE)
        elif t is bytes:
            parts.append(_pack_len(_lib.KIND_BLOB, len(v)))
            parts.append(v)
        else:
            return None
    return b"".join(parts)


_END_SET = bytes([255])  # SQLPOOL_PACKED_END_SET


def pack_param_sets(seq_of_params: Iterable[Params]) -> Tuple[Optional[bytes], Iterable[Params]]:
    """Every set packed in one buffer for ``sqlpool_conn_execute_many_packed``
    (each ended by SQLPOOL_PACKED_END_SET), or None when one needs the
    parameter-list path; with the sets as a list (a generator is read once)."""
    sets = seq_of_params if isinstance(seq_of_params, (list, tuple)) else list(seq_of_params)
    packed = _pack_columns(sets)
    if packed is not None:
        return packed, sets
    parts = []
    for params in sets:
        packed = pack_params(params)
        if packed is None:
            return None, sets
        parts.append(packed)
    parts.append(b"")
    return _END_SET.join(parts) if len(parts) > 1 else b"", sets


_SET_TYPES = frozenset((list, tuple))
_BOOL_PACKED = {True: _PACKED_TRUE, False: _PACKED_FALSE}.__getitem__
_encode = str.encode


def _pack_columns(sets: Sequence[Params]) -> Optional[bytes]:
    """The sets packed column by column, each column in C-level loops
    (``map``): for sets that are all lists or tuples of one length whose
    columns each hold one plain type (int within int64, float, str, bytes,
    bool, None). None otherwise (the caller packs set by set)."""
    n = len(sets)
    if n < 2 or not set(map(type, sets)) <= _SET_TYPES or len(set(map(len, sets))) != 1:
        return None
    chunks: List[Iterable[bytes]] = []
    for col in zip(*sets):
        kinds = set(map(type, col))
        if len(kinds) != 1:
            return None
        t = kinds.pop()
        if t is int:
            if min(col) < _INT64_MIN or max(col) > _INT64_MAX:
                return None
            chunks.append(map(_pack_int, repeat(_KIND_INT64, n), col))
        elif t is float:
            chunks.append(map(_pack_double, repeat(_lib.KIND_DOUBLE, n), col))
        elif t is str or t is bytes:
            if t is str:
                try:
                    col = tuple(map(_encode, col))
                except UnicodeEncodeError:
                    return None
            kind = _lib.KIND_TEXT if t is str else _lib.KIND_BLOB
            chunks.append(map(_pack_len, repeat(kind, n), map(len, col)))
            chunks.append(col)
        elif t is bool:
            chunks.append(map(_BOOL_PACKED, col))
        elif t is type(None):
            chunks.append(repeat(_PACKED_NULL, n))
        else:
            return None
    chunks.append(repeat(_END_SET, n))
    return b"".join(chain.from_iterable(zip(*chunks)))


_ParamColumn = _lib.ParamColumn
_KIND_NULL = _lib.KIND_NULL
_KIND_DOUBLE = _lib.KIND_DOUBLE
_KIND_TEXT = _lib.KIND_TEXT
_KIND_BLOB = _lib.KIND_BLOB
_FLOAT_ONLY = {float}
_BYTES_ONLY = {bytes}


def pack_param_columns(sets: Sequence[Params]) -> Optional[Tuple[Any, int, int]]:
    """The sets as (column array, column count, row count) for
    ``sqlpool_conn_execute_many_columns``, each column made in one C-level
    step (``array``, ``str.join``): for two or more sets that are lists or
    tuples of one length whose columns each hold ints within int64 (bools
    among them), floats, str without NUL, or bytes, with or without None
    among them. None otherwise (the caller packs set by set). SQLite only:
    its bools are integers, so they share an int column; PostgreSQL tells
    them apart. The column array holds references to its buffers (keep it
    until the call returns)."""
    n = len(sets)
    if n < 2 or not set(map(type, sets)) <= _SET_TYPES:
        return None
    columns = list(zip(*sets))
    width = len(columns)
    if width == 0 or sum(map(len, sets)) != n * width:  # zip stops at the shortest
        return None
    out = (_ParamColumn * width)()
    keep: List[Any] = []
    for c, col in zip(out, columns):
        if not _fill_column(c, col, n, keep):
            if None not in col:
                return None
            # Nullable: None becomes a placeholder of the column's type,
            # flagged in ``nulls`` (the path without None, once more).
            present = [v for v in col if v is not None]
            if not present:
                c.kind = _KIND_NULL
                continue
            placeholder = _PLACEHOLDERS.get(type(present[0]))
            if placeholder is None:
                return None
            filled = [placeholder if v is None else v for v in col]
            if not _fill_column(c, filled, n, keep):
                return None
            c.nulls = bytes(map(_is, col, repeat(None)))
    out._keep = keep  # the arrays live as long as the column array
    return out, width, n


_is = operator.is_
_PLACEHOLDERS: Dict[type, Any] = {int: 0, bool: False, float: 0.0, str: "", bytes: b""}


def _fill_column(c: Any, col: Sequence[Any], n: int, keep: List[Any]) -> bool:
    """Fills the ``sqlpool_param_column`` ``c`` from ``col`` when its values
    are all of one plain type (ints and bools together); False otherwise."""
    t = type(col[0])
    if t is int or t is bool:
        try:
            values: Any = array("q", col)
        except (TypeError, OverflowError):
            return False
        c.kind = _KIND_INT64
    elif t is float:
        if set(map(type, col)) != _FLOAT_ONLY:
            return False
        values = array("d", col)
        c.kind = _KIND_DOUBLE
    elif t is str:
        try:
            joined = "\0".join(col)
        except TypeError:
            return False
        if joined.count("\0") != n - 1:
            return False  # a value holds a NUL
        try:
            data = joined.encode("utf-8") + b"\0"
        except UnicodeEncodeError:
            return False
        c.kind, c.values, c.values_len = _KIND_TEXT, data, len(data)
        return True
    elif t is bytes:
        if set(map(type, col)) != _BYTES_ONLY:
            return False
        data = b"".join(col)
        lengths = array("q", map(len, col))
        keep.append(lengths)
        c.kind, c.values, c.values_len = _KIND_BLOB, data, len(data)
        c.lengths = lengths.buffer_info()[0]
        return True
    else:
        return False
    keep.append(values)
    c.values, c.values_len = values.buffer_info()[0], len(values) * 8
    return True


class ParamSets:
    """Several parameter lists (``execute_many``), freed together."""

    __slots__ = ("handles", "array")

    def __init__(self, seq_of_params: Iterable[Params]) -> None:
        self.handles: List[int] = []
        try:
            for params in seq_of_params:
                h = build_params(params if params is not None else ())
                assert h is not None
                self.handles.append(h)
        except BaseException:
            self.free()
            raise
        self.array = (c_void_p * len(self.handles))(*self.handles)

    def free(self) -> None:
        handles, self.handles = self.handles, []
        for h in handles:
            lib.sqlpool_params_free(h)


# ---------------------------------------------------------------------------
# C -> Python: scalar converters by declared type


_INTERVAL_RE = re.compile(
    r"^(-)?P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(?:\.(\d{1,9}))?S)?)?$",
    re.IGNORECASE,
)


def parse_interval(text: str) -> _dt.timedelta:
    """An ISO 8601 duration as a timedelta.

    A timedelta has no months: like PostgreSQL's ``justify_days``, a month is
    30 days and a year 12 months (360 days).
    """
    m = _INTERVAL_RE.match(text)
    if m is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    neg, y, mo, w, d, h, mi, s_sign, s, frac = m.groups()
    days = int(y or 0) * 360 + int(mo or 0) * 30 + int(w or 0) * 7 + int(d or 0)
    micros = (int(h or 0) * 3600 + int(mi or 0) * 60) * 1_000_000
    if s is not None:
        sec_us = int(s) * 1_000_000 + (int((frac or "").ljust(6, "0")[:6]) if frac else 0)
        micros += -sec_us if s_sign else sec_us
    td = _dt.timedelta(days=days, microseconds=micros)
    return -td if neg else td


_UTC = _dt.timezone.utc
_DT_MAX_UTC = _dt.datetime.max.replace(tzinfo=_UTC)
_DT_MIN_UTC = _dt.datetime.min.replace(tzinfo=_UTC)


def _timestamp(text: str) -> Any:
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        if text == "infinity":
            return _dt.datetime.max
        if text == "-infinity":
            return _dt.datetime.min
        return text


def _timestamptz(text: str) -> Any:
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        if text == "infinity":
            return _DT_MAX_UTC
        if text == "-infinity":
            return _DT_MIN_UTC
        return text


def _date(text: str) -> Any:
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        if text == "infinity":
            return _dt.date.max
        if text == "-infinity":
            return _dt.date.min
        return text


def _time(text: str) -> Any:
    try:
        return _dt.time.fromisoformat(text)
    except ValueError:
        return text


def _interval(text: str) -> Any:
    try:
        return parse_interval(text)
    except (ValueError, OverflowError):
        return text


def _decimal(text: Any) -> Any:
    if isinstance(text, float):
        return Decimal(repr(text))
    return Decimal(text)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _inet(text: str) -> Any:
    try:
        if "/" in text:
            return ipaddress.ip_interface(text)
        return ipaddress.ip_address(text)
    except ValueError:
        return text


def _cidr(text: str) -> Any:
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        return text


def _uuid(text: str) -> Any:
    try:
        return uuid.UUID(text)
    except ValueError:
        return text


def _hex_bytes(text: Any) -> Any:
    if isinstance(text, str) and text.startswith("\\x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return text
    return text


def _float_text(value: Any) -> Any:
    # Arrays carry NaN and infinities as strings.
    return float(value) if isinstance(value, str) else value


# Converters whose core, applied to a whole column, raises for the few
# values only the converter handles (then the column goes through it).
_BULK: Dict[Callable[[Any], Any], Callable[[Any], Any]] = {
    _timestamp: _dt.datetime.fromisoformat,
    _timestamptz: _dt.datetime.fromisoformat,
    _date: _dt.date.fromisoformat,
    _time: _dt.time.fromisoformat,
}

# PostgreSQL type names (as the library reports them) -> converter of text.
_PG_SCALAR: Dict[str, Callable[[Any], Any]] = {
    "numeric": _decimal,
    "decimal": _decimal,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "date": _date,
    "time": _time,
    "timetz": _time,
    "interval": _interval,
    "uuid": _uuid,
    "json": _json,
    "jsonb": _json,
    "inet": _inet,
    "cidr": _cidr,
}

# Converters of array elements (already JSON-decoded).
_PG_ELEMENT: Dict[str, Callable[[Any], Any]] = {
    "numeric": lambda v: _decimal(v),
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "date": _date,
    "time": _time,
    "timetz": _time,
    "interval": _interval,
    "uuid": _uuid,
    "inet": _inet,
    "cidr": _cidr,
    "bytea": _hex_bytes,
    "float4": _float_text,
    "float8": _float_text,
}


def _pg_array(element: str) -> Callable[[str], Any]:
    conv = _PG_ELEMENT.get(element)
    if element in ("json", "jsonb"):
        conv = None  # elements arrive already decoded

    def elements(items: List[Any]) -> List[Any]:
        assert conv is not None
        return [
            None if v is None else elements(v) if isinstance(v, list) else conv(v)
            for v in items
        ]

    def convert(text: str) -> Any:
        try:
            items = json.loads(text)
        except ValueError:
            return text
        if conv is not None and isinstance(items, list):
            return elements(items)
        return items

    return convert


def _sqlite_datetime(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _sqlite_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value)
        except ValueError:
            return _sqlite_datetime(value)
    return value


def _sqlite_json(value: Any) -> Any:
    if isinstance(value, str):
        return _json(value)
    return value


_SQLITE_BY_BASE: Dict[str, Callable[[Any], Any]] = {
    "DATETIME": _sqlite_datetime,
    "TIMESTAMP": _sqlite_datetime,
    "TIMESTAMPTZ": _sqlite_datetime,
    "DATE": _sqlite_date,
    "JSON": _sqlite_json,
    "JSONB": _sqlite_json,
}

_DECL_BASE_RE = re.compile(r"[\s(]")


@lru_cache(maxsize=1024)
def converter_for(decltype: str, postgres: bool) -> Optional[Callable[[Any], Any]]:
    """The converter for text values of a column of this declared type."""
    if not decltype:
        return None
    if postgres:
        if decltype.endswith("[]"):
            return _pg_array(decltype[:-2])
        return _PG_SCALAR.get(decltype)
    base = _DECL_BASE_RE.split(decltype.strip().upper(), 1)[0]
    return _SQLITE_BY_BASE.get(base)


# ---------------------------------------------------------------------------
# C -> Python: whole results

_column_data = lib.sqlpool_result_column_data
_describe = lib.sqlpool_result_describe

# How a result is read (the ``mode`` argument of the readers below; a bool
# there means POSTGRES or not): bits.
POSTGRES = 1
# TEXT values as bytes, undecoded (``text_factory = bytes``).
TEXT_AS_BYTES = 2


def read_mode(postgres: bool, text_factory: Any) -> int:
    """The reader ``mode`` for a connection's settings."""
    if text_factory is str:
        return POSTGRES if postgres else 0
    if text_factory is bytes:
        return (POSTGRES if postgres else 0) | TEXT_AS_BYTES
    raise ProgrammingError(f"text_factory must be str or bytes, not {text_factory!r}")


def _not_utf8(c: int, r: int, raw: bytes) -> DataError:
    shown = raw if len(raw) <= 40 else raw[:40] + b"..."
    return DataError(
        f"column {c}, row {r} holds TEXT that is not valid UTF-8 ({shown!r}); "
        "read it as bytes with text_factory=bytes"
    )


def _decode_text(c: int, r: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(c, r, raw) from None


def _cell(res: int, r: int, c: int, mode: int = 0) -> Any:
    """One cell, read with the per-cell getters (mixed-kind columns)."""
    kind = c_uint32()
    check(lib.sqlpool_result_kind(res, r, c, byref(kind)))
    k = kind.value
    if k == _lib.KIND_NULL:
        return None
    if k == _lib.KIND_INT64:
        i = c_int64()
        check(lib.sqlpool_result_get_int64(res, r, c, byref(i)))
        return i.value
    if k == _lib.KIND_DOUBLE:
        d = c_double()
        check(lib.sqlpool_result_get_double(res, r, c, byref(d)))
        return d.value
    if k == _lib.KIND_BOOL:
        b = c_int32()
        check(lib.sqlpool_result_get_bool(res, r, c, byref(b)))
        return bool(b.value)
    ptr = c_void_p()
    n = c_size_t()
    if k == _lib.KIND_TEXT:
        check(lib.sqlpool_result_get_text(res, r, c, byref(ptr), byref(n)))
        raw = _string_at(ptr.value or 0, n.value) if n.value else b""
        return raw if mode & TEXT_AS_BYTES else _decode_text(c, r, raw)
    check(lib.sqlpool_result_get_blob(res, r, c, byref(ptr), byref(n)))
    return _string_at(ptr.value or 0, n.value) if n.value else b""


def _read_column(
    res: int, c: int, nrows: int, conv: Optional[Callable[[Any], Any]], mode: int = 0
) -> List[Any]:
    cd = ColumnData()
    check(_column_data(res, c, byref(cd)))
    kind = cd.kind
    n = cd.rows
    if n == 0:
        return []
    nulls = _string_at(cd.nulls, n) if cd.nulls else bytes(n)
    has_null = 1 in nulls
    values: List[Any]
    if kind == _lib.KIND_NULL:
        return [None] * n
    if kind == _lib.KIND_INT64:
        values = _array(cd.ints, n, "q")
        conv = None
    elif kind == _lib.KIND_DOUBLE:
        values = _array(cd.doubles, n, "d")
        conv = None
    elif kind == _lib.KIND_BOOL:
        values = list(map(bool, _array(cd.ints, n, "q")))
        conv = None
    elif (
        kind == _lib.KIND_TEXT
        and n >= _JOINED_ROWS
        and not mode & TEXT_AS_BYTES
        and not cd.flags & _lib.COLUMN_NOT_UTF8
        and (joined := _joined_text(res, c, n, c_uint64.from_address(cd.offsets + 8 * n).value)) is not None
    ):
        values = joined
    elif kind == _lib.KIND_TEXT or kind == _lib.KIND_BLOB:
        offsets = _array(cd.offsets, n + 1, "Q")
        total = offsets[-1]
        data = _string_at(cd.bytes, total) if total else b""
        width = offsets[1]
        if kind == _lib.KIND_BLOB and n >= _JOINED_ROWS and width and total == width * n and (
            offsets == list(range(0, total + 1, width))
        ):
            # Values of one width (hashes, uuids): one struct format.
            values = list(_unpack(f"{width}s" * n, data))
            conv = None
        elif kind == _lib.KIND_TEXT and mode & TEXT_AS_BYTES:
            values = list(map(data.__getitem__, map(slice, offsets, islice(offsets, 1, None))))
            conv = None
        elif kind == _lib.KIND_TEXT:
            if cd.flags & _lib.COLUMN_NOT_UTF8:
                values = [
                    _decode_text(c, r, data[a:b])
                    for r, (a, b) in enumerate(zip(offsets, islice(offsets, 1, None)))
                ]
            elif data.isascii():
                # Byte offsets are character offsets: slice one str.
                text = data.decode("ascii")
                values = list(map(text.__getitem__, map(slice, offsets, islice(offsets, 1, None))))
            else:
                values = [
                    data[a:b].decode("utf-8")
                    for a, b in zip(offsets, islice(offsets, 1, None))
                ]
        else:
            values = list(map(data.__getitem__, map(slice, offsets, islice(offsets, 1, None))))
            conv = None
    else:  # KIND_MIXED: cell by cell
        values = [_cell(res, r, c, mode) for r in range(n)]
        if conv is not None:
            values = [conv(v) if isinstance(v, str) else v for v in values]
        return values
    if has_null:
        i = nulls.find(1)
        while i >= 0:
            values[i] = None
            i = nulls.find(1, i + 1)
        if conv is not None:
            values = [None if v is None else conv(v) for v in values]
    elif conv is not None:
        bulk = _BULK.get(conv)
        try:
            # The converter's core on every value in one C-level loop; a
            # value it refuses (infinity, ...) sends all through `conv`.
            values = list(map(bulk or conv, values))
        except (ValueError, ArithmeticError):
            values = list(map(conv, values))
    return values


# Columns of at least this many rows are read whole (below: per value).
_JOINED_ROWS = 64
_column_joined = lib.sqlpool_result_column_joined
_unpack = struct.unpack


def _joined_text(res: int, c: int, n: int, total: int) -> Optional[List[str]]:
    """A TEXT column's values from ``sqlpool_result_column_joined`` (NUL
    after each, split in one step); None when a value holds a NUL."""
    need = total + n
    buf = bytearray(need)
    written = c_size_t()
    if _column_joined(res, c, 0, (ctypes.c_char * need).from_buffer(buf), need, byref(written)):
        return None
    values = buf.decode("utf-8").split("\0")
    values.pop()  # after the last separator
    return values


def _array(address: int, n: int, code: str) -> List[Any]:
    """``n`` native values (``code``: q, d, Q) at ``address`` as a list, in
    one step (memoryview.tolist)."""
    return memoryview((ctypes.c_char * (8 * n)).from_address(address)).cast("B").cast(code).tolist()


def describe(res: int) -> Tuple[int, Tuple[str, ...], Tuple[str, ...]]:
    """(row count, column names, declared types) of a native result, in one call."""
    info = ResultInfo()
    check(_describe(res, byref(info)))
    if not info.columns:
        return info.rows, (), ()
    parts = _string_at(info.names, info.names_len).decode("utf-8", "replace").split("\0")
    return info.rows, tuple(parts[0:-1:2]), tuple(parts[1:-1:2])


def read_columns(res: int, mode: int) -> Tuple[Tuple[str, ...], List[List[Any]], int]:
    """(column names, column value lists, row count) of a native result."""
    nrows, names, decltypes = describe(res)
    return names, _columns(res, nrows, decltypes, mode), nrows


def _columns(res: int, nrows: int, decltypes: Tuple[str, ...], mode: int) -> List[List[Any]]:
    postgres = bool(mode & POSTGRES)
    return [
        _read_column(res, c, nrows, converter_for(decltype, postgres), mode)
        for c, decltype in enumerate(decltypes)
    ]


# Results with at least this many rows are read with the cyclic garbage
# collector paused (see _gc_paused).
_PAUSE_GC_ROWS = 256


class _GcPaused:
    """``with _gc_paused(nrows):`` pauses the cyclic garbage collector while
    a large result becomes Python objects: a Row is a tuple subclass, which
    the collector never untracks as it does plain tuples of atoms, so each
    collection the allocations trigger walks every row built so far (on
    100,000 rows, reading took 2x as long). Nothing read here forms a cycle.
    Re-enabled on leaving, unless it was already disabled."""

    __slots__ = ("paused",)

    def __init__(self, nrows: int) -> None:
        self.paused = nrows >= _PAUSE_GC_ROWS and _gc.isenabled()

    def __enter__(self) -> None:
        if self.paused:
            _gc.disable()

    def __exit__(self, *exc: Any) -> None:
        if self.paused:
            _gc.enable()


_gc_paused = _GcPaused


def rows_of(cls: Any, columns: List[List[Any]]) -> List[Any]:
    """``cls`` (a Row class, or ``tuple``) over the columns' values, row by row."""
    rows = zip(*columns)
    return list(rows) if cls is tuple else list(map(cls, rows))


def read_result(res: int, mode: int) -> List[Row]:
    """Every row of a native result as :class:`Row` objects (does not free it)."""
    nrows, names, decltypes = describe(res)
    cls = row_class(names)
    if not decltypes:
        return [cls(()) for _ in range(nrows)]
    with _gc_paused(nrows):
        return rows_of(cls, _columns(res, nrows, decltypes, mode))


def read_table(res: int, mode: int) -> Tuple[Tuple[str, ...], Tuple[str, ...], List[Tuple[Any, ...]]]:
    """(column names, declared types, rows as plain tuples) of a native
    result (does not free it): what a DB-API cursor needs."""
    nrows, names, decltypes = describe(res)
    if not decltypes:
        return names, decltypes, [() for _ in range(nrows)]
    with _gc_paused(nrows):
        return names, decltypes, rows_of(tuple, _columns(res, nrows, decltypes, mode))


def read_result_dicts(res: int, mode: int) -> List[Dict[str, Any]]:
    """Every row of a native result as a dict (does not free it)."""
    nrows, names, decltypes = describe(res)
    if not decltypes:
        return [{} for _ in range(nrows)]
    with _gc_paused(nrows):
        columns = _columns(res, nrows, decltypes, mode)
        if len(set(names)) != len(names):
            # Duplicate names: the leftmost column wins, as with Row["name"].
            keep = [i for i, name in enumerate(names) if names.index(name) == i]
            names = tuple(names[i] for i in keep)
            columns = [columns[i] for i in keep]
        return [dict(zip(names, values)) for values in zip(*columns)]


def read_first(res: int, mode: int) -> Optional[Row]:
    """The first row of a native result, or None (does not free it)."""
    nrows, names, decltypes = describe(res)
    if nrows == 0:
        return None
    if nrows <= 16:
        return row_class(names)(next(zip(*_columns(res, nrows, decltypes, mode)), ()))
    # Many rows: read only the first, cell by cell.
    postgres = bool(mode & POSTGRES)
    values = []
    for c, decltype in enumerate(decltypes):
        conv = converter_for(decltype, postgres)
        v = _cell(res, 0, c, mode)
        values.append(conv(v) if conv is not None and isinstance(v, str) else v)
    return row_class(names)(values)


class _Shape:
    """What a result's column list implies, worked out once per distinct
    list (names and declared types) and mode: the row class and the
    converters."""

    __slots__ = ("names", "decltypes", "cls", "convs")

    def __init__(self, names: Tuple[str, ...], decltypes: Tuple[str, ...], mode: int) -> None:
        self.names = names
        self.decltypes = decltypes
        self.cls = row_class(names)
        convs = [converter_for(d, bool(mode & POSTGRES)) for d in decltypes]
        self.convs: Optional[List[Any]] = convs if any(convs) else None


_SHAPES: Dict[Tuple[bytes, int], _Shape] = {}


def shape_of(names: bytes, mode: int) -> _Shape:
    """The shape of a result from its ``name\\0decltype\\0`` list
    (``sqlpool_result_info.names``), cached."""
    key = (names, mode)
    shape = _SHAPES.get(key)
    if shape is None:
        parts = names.decode("utf-8", "replace").split("\0")
        shape = _Shape(tuple(parts[0:-1:2]), tuple(parts[1:-1:2]), mode)
        if len(_SHAPES) >= 1024:
            _SHAPES.clear()
        _SHAPES[key] = shape
    return shape


decode_text = _decode_text


def read_rows(res: int, nrows: int, shape: _Shape, mode: int, first_only: bool) -> Any:
    """The rows of a native result whose shape is known (does not free
    it): every row, or the first (None without rows) when ``first_only``."""
    if nrows == 0:
        return None if first_only else []
    if first_only and nrows > 16:
        # Many rows: read only the first, cell by cell.
        values = []
        for c, conv in enumerate(shape.convs or (None,) * len(shape.names)):
            v = _cell(res, 0, c, mode)
            values.append(conv(v) if conv is not None and isinstance(v, str) else v)
        return shape.cls(values)
    if first_only:
        return shape.cls(next(zip(*_columns(res, nrows, shape.decltypes, mode)), ()))
    if not shape.decltypes:
        return [shape.cls(()) for _ in range(nrows)]
    with _gc_paused(nrows):
        return rows_of(shape.cls, _columns(res, nrows, shape.decltypes, mode))


def _packed_first(info: Any, shape: _Shape, mode: int) -> Row:
    """The first row of a result from its packed form (``QueryInfo``)."""
    data_len = info.row_data_len
    vals: Any = _unpack(
        _string_at(info.row_format, info.row_format_len),
        _string_at(info.row_data, data_len) if data_len else b"",
    )
    nulls = info.null_cells
    texts = 0 if mode & TEXT_AS_BYTES else info.text_cells
    if nulls or texts:
        vals = list(vals)
        c = 0
        while nulls:
            if nulls & 1:
                vals.insert(c, None)
            nulls >>= 1
            c += 1
        c = 0
        while texts:
            if texts & 1:
                vals[c] = _decode_text(c, 0, vals[c])
            texts >>= 1
            c += 1
    convs = shape.convs
    if convs is not None:
        vals = [
            v if conv is None or type(v) is not str else conv(v)
            for v, conv in zip(vals, convs)
        ]
    return shape.cls(vals)


def read_packed(res: int, info: Any, mode: int, first_only: bool) -> Any:
    """The rows of a result whose shape and first row came packed in a
    ``QueryInfo`` (``sqlpool_task_poll``): its first row, or None, when
    ``first_only``; a one-row result from its packed form, more rows
    column by column."""
    nrows = info.rows
    if nrows == 0:
        return None if first_only else []
    shape = shape_of(_string_at(info.names, info.names_len) if info.names_len else b"", mode)
    if (first_only or nrows == 1) and info.row_format_len:
        row = _packed_first(info, shape, mode)
        return row if first_only else [row]
    return read_rows(res, nrows, shape, mode, first_only)


def free_result(res: int) -> None:
    lib.sqlpool_result_free(res)
