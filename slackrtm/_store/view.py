"""Read-only entries and table views of the workspace store (see ``_store``)."""

from __future__ import annotations

import threading
from types import MappingProxyType
from typing import Any, Dict, ItemsView, Iterator, KeysView, Mapping, ValuesView

#: One cached object: a read-only mapping (nested dicts read-only, lists as tuples).
Entry = Mapping[str, Any]


def freeze(value: Any) -> Any:
    """A read-only deep copy: dicts become ``MappingProxyType``, lists tuples."""
    if isinstance(value, (dict, MappingProxyType)):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of an entry (dicts and lists again), e.g. to store it."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class View(Mapping[str, Entry]):
    """A live, read-only view of one table of the store (id -> entry).

    Reading it never calls the Web API: it shows what is cached now. Iteration, ``keys()``,
    ``values()`` and ``items()`` work on a snapshot taken under the store's lock, so they
    never fail while events change the table on another thread.
    """

    def __init__(self, lock: threading.Lock, data: Dict[str, Entry], name: str) -> None:
        self._lock = lock
        self._data = data
        self._name = name

    def __getitem__(self, key: str) -> Entry:
        return self._data[key]  # one dict lookup: atomic

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            keys = list(self._data)
        return iter(keys)

    def _snapshot(self) -> Mapping[str, Entry]:
        with self._lock:
            return MappingProxyType(dict(self._data))

    def keys(self) -> KeysView[str]:
        """The ids cached now (a snapshot)."""
        return self._snapshot().keys()

    def values(self) -> ValuesView[Entry]:
        """The entries cached now (a snapshot)."""
        return self._snapshot().values()

    def items(self) -> ItemsView[str, Entry]:
        """``(id, entry)`` pairs cached now (a snapshot)."""
        return self._snapshot().items()

    def __repr__(self) -> str:
        return f"<slackrtm store {self._name}: {len(self._data)} cached>"
