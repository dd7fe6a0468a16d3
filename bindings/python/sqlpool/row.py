"""Result rows: tuples that also answer by column name."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Iterator, Optional, Tuple, Type, Union, overload

__all__ = ["Row", "row_class"]


_tuple_getitem = tuple.__getitem__


class Row(tuple):  # type: ignore[type-arg]
    """One result row: a tuple with access by column name.

    ``row.a``, ``row["a"]``, ``row[0]``, iteration over the values,
    ``len(row)``, equality with another Row or a plain tuple, ``dict(row)``
    and ``row.to_dict()``. Rows of one result share one column map (a Row
    subclass per distinct column list), so a row costs no more than a tuple.

    With duplicate column names, ``row["name"]`` and ``row.name`` give the
    leftmost such column. A column whose name is also a tuple method
    (``count``, ``index``) or starts with ``_`` is reached with ``row["count"]``.

    ``repr(row)`` looks like PySQLXEngine's models:
    ``BaseModel(id=1, x_position=1.2, y_position=2.3)``.
    """

    __slots__ = ()

    _fields: Tuple[str, ...] = ()
    _index: Dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return tuple.__getitem__(self, self._index[name])
        except KeyError:
            raise AttributeError(
                f"row has no column {name!r} (columns: {', '.join(self._fields)})"
            ) from None

    @overload  # type: ignore[override]
    def __getitem__(self, key: Union[int, str]) -> Any: ...

    @overload
    def __getitem__(self, key: slice) -> Tuple[Any, ...]: ...

    def __getitem__(self, key: Union[int, str, slice]) -> Any:
        if type(key) is int:
            return _tuple_getitem(self, key)
        if isinstance(key, str):
            try:
                key = self._index[key]
            except KeyError:
                raise KeyError(key) from None
        return _tuple_getitem(self, key)

    def keys(self) -> Tuple[str, ...]:
        """The column names, in order (duplicates included)."""
        return self._fields

    def values(self) -> Tuple[Any, ...]:
        """The values, in column order."""
        return tuple(self)

    def items(self) -> Iterator[Tuple[str, Any]]:
        """(name, value) pairs in column order."""
        return zip(self._fields, self)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of column ``key``, or ``default`` when there is none."""
        i = self._index.get(key)
        return default if i is None else tuple.__getitem__(self, i)

    def to_dict(self) -> Dict[str, Any]:
        """The row as a dict (the leftmost column wins for duplicate names)."""
        return {name: tuple.__getitem__(self, i) for name, i in self._index.items()}

    def __dir__(self) -> Any:
        return list(super().__dir__()) + [f for f in self._fields if f.isidentifier()]

    def __repr__(self) -> str:
        return (
            "BaseModel("
            + ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self))
            + ")"
        )

    def __reduce__(self) -> Any:
        return (_make_row, (self._fields, tuple(self)))


try:  # namedtuple's field descriptor: reads the tuple slot in C
    from collections import _tuplegetter  # type: ignore[attr-defined]

    def _field(i: int) -> Any:
        return _tuplegetter(i, None)

except ImportError:  # pragma: no cover - other Python implementations

    def _field(i: int) -> Any:
        return property(lambda row: _tuple_getitem(row, i))


@lru_cache(maxsize=1024)
def row_class(fields: Tuple[str, ...]) -> Type[Row]:
    """The Row subclass for one column list (cached).

    Each column reachable as an attribute gets a descriptor (namedtuple's
    field getter): ``row.name`` then costs no failed lookup before
    :meth:`Row.__getattr__`. Names of tuple and Row attributes and names
    starting with ``_`` keep going through ``row["name"]``."""
    index: Dict[str, int] = {}
    for i, name in enumerate(fields):
        index.setdefault(name, i)
    namespace: Dict[str, Any] = {"__slots__": (), "_fields": fields, "_index": index}
    for name, i in index.items():
        if name.isidentifier() and not name.startswith("_") and not hasattr(Row, name):
            namespace[name] = _field(i)
    return type("Row", (Row,), namespace)


def _make_row(fields: Tuple[str, ...], values: Tuple[Any, ...]) -> Row:
    return row_class(tuple(fields))(values)


def make_row(values: Any, fields: Optional[Tuple[str, ...]] = None) -> Row:
    """A Row from values and column names (mainly for tests)."""
    values = tuple(values)
    if fields is None:
        fields = tuple(f"column{i}" for i in range(len(values)))
    return row_class(tuple(fields))(values)
