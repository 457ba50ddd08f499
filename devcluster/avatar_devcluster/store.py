"""Objects, one resourceVersion counter, the change history that watches resume from.

Everything runs on the server's event loop, so no locks: a change is stored,
recorded in the history and handed to the matching watchers in one step. The
state is written to a JSON file after every change (atomically: temp file,
then rename), so a restarted dev cluster loses nothing, watches included:
resourceVersions keep counting from where they were.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name

_HISTORY = 2000  # changes a watch can resume from; older -> 410 Gone


@dataclass(frozen=True)
class Change:
    type: str  # ADDED, MODIFIED, DELETED
    group: str
    plural: str
    resource_version: int
    object: Obj
    previous: Obj | None = None  # the object before a MODIFIED change


class Watcher:
    def __init__(self, accepts: Callable[[Change], bool]) -> None:
        self.accepts = accepts
        self.queue: asyncio.Queue[Change] = asyncio.Queue()


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._objects: dict[Key, Obj] = {}
        self._history: collections.deque[Change] = collections.deque(maxlen=_HISTORY)
        self._watchers: set[Watcher] = set()
        self.revision = 0
        self._first_revision = 0  # the oldest revision a watch may resume after
        if path is not None and path.exists():
            self._load(path)

    # -- reading -------------------------------------------------------------------------

    def get(self, key: Key) -> Obj | None:
        obj = self._objects.get(key)
        return copy.deepcopy(obj) if obj is not None else None

    def objects(self, group: str, plural: str, namespace: str | None = None) -> list[Obj]:
        return [
            copy.deepcopy(obj)
            for (g, p, ns, _), obj in sorted(self._objects.items())
            if g == group and p == plural and (namespace is None or ns == namespace)
        ]

    def all_keys(self) -> Iterator[Key]:
        return iter(list(self._objects))

    def history_since(self, revision: int) -> list[Change] | None:
        """Changes after ``revision``; None when they are no longer known (410 Gone)."""
        if revision < self._first_revision:
            return None
        return [c for c in self._history if c.resource_version > revision]

    # -- writing -------------------------------------------------------------------------

    def next_revision(self) -> int:
        self.revision += 1
        return self.revision

    def put(self, key: Key, obj: Obj, *, created: bool) -> None:
        previous = self._objects.get(key)
        self._objects[key] = copy.deepcopy(obj)
        self._record("ADDED" if created else "MODIFIED", key, obj, previous=previous)

    def remove(self, key: Key) -> Obj | None:
        obj = self._objects.pop(key, None)
        if obj is not None:
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.next_revision())
            self._record("DELETED", key, obj)
        return obj

    def _record(self, kind: str, key: Key, obj: Obj, *, previous: Obj | None = None) -> None:
        change = Change(
            type=kind,
            group=key[0],
            plural=key[1],
            resource_version=int(obj["metadata"]["resourceVersion"]),
            object=copy.deepcopy(obj),
            previous=previous,
        )
        if len(self._history) == self._history.maxlen:
            self._first_revision = self._history[0].resource_version
        self._history.append(change)
        for watcher in list(self._watchers):
            if watcher.accepts(change):
                watcher.queue.put_nowait(change)
        self._save()

    # -- watching ------------------------------------------------------------------------

    def subscribe(self, accepts: Callable[[Change], bool]) -> Watcher:
        watcher = Watcher(accepts)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    # -- persistence ---------------------------------------------------------------------

    def _save(self) -> None:
        if self._path is None:
            return
        state = {
            "revision": self.revision,
            "objects": [{"key": list(key), "object": obj} for key, obj in self._objects.items()],
        }
        partial = self._path.with_suffix(".partial")
        partial.write_text(json.dumps(state))
        partial.replace(self._path)

    def _load(self, path: Path) -> None:
        state = json.loads(path.read_text())
        self.revision = int(state["revision"])
        for item in state["objects"]:
            g, p, ns, name = item["key"]
            self._objects[(g, p, ns, name)] = item["object"]
        # Nothing before a restart can be replayed: older watches get 410 and relist.
        self._first_revision = self.revision
