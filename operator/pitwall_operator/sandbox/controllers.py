"""The shape shared by the sandbox's controllers: one asyncio task per object of one kind."""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from .store import Obj

Key = tuple[str, str]


class Controller(abc.ABC):
    """Subscribes to the store (on the API loop) and runs `_control(key, uid)` once per object.

    An object's task is woken (its event set) on every change of the object; it exits when it
    has nothing more to do and is started again by the next change.
    """

    kind_key: tuple[str, str] = ("", "")

    def __init__(self, sandbox: Any) -> None:
        self.sb, self.store = sandbox, sandbox.api.store
        self.controllers: dict[Key, asyncio.Task[None]] = {}
        self.wakeups: dict[Key, asyncio.Event] = {}
        self.stopping = False

    def start(self) -> None:
        self.store.subscribers.append(self._on_event)
        if self.kind_key in self.store.kinds:
            for obj in self.store.list(self.store.kinds[self.kind_key], None, lambda o: True):
                self._wake(obj)

    async def stop(self) -> None:
        self.stopping = True
        if self._on_event in self.store.subscribers:
            self.store.subscribers.remove(self._on_event)
        for task in self.controllers.values():
            task.cancel()
        await self._teardown()
        await asyncio.gather(*self.controllers.values(), return_exceptions=True)

    @abc.abstractmethod
    async def _teardown(self) -> None:
        """Stop whatever processes the controller started (after its tasks were cancelled)."""

    def _on_event(self, etype: str, kind: Any, obj: Obj, old: Obj | None) -> None:
        if kind.key == self.kind_key:
            self._wake(obj)

    def _idle(self, obj: Obj) -> bool:
        """True when a change of this object needs no controller task (e.g. a finished Job)."""
        return False

    def _wake(self, obj: Obj) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.wakeups.setdefault(key, asyncio.Event()).set()
        task = self.controllers.get(key)
        if not self.stopping and (task is None or task.done()) and not self._idle(obj):
            self.controllers[key] = asyncio.get_running_loop().create_task(self._control(key, obj["metadata"]["uid"]))

    @abc.abstractmethod
    async def _control(self, key: Key, uid: str) -> None:
        """Drive one object (a Job's pods, a RayCluster's processes) until it needs nothing more."""
