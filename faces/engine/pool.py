"""The engine's threads: a fixed pool that runs requests' work first and background work in the gaps.

Like `concurrent.futures.ThreadPoolExecutor` (same `Future`s), with two differences that matter for
video: work submitted as background (a tracked face's periodic re-embedding) waits while any
frame or request waits, so it never delays an answer; it runs when a thread would otherwise idle.
And work can carry a rank, how much its client was served lately (a socket's answers in the last
second): among the waiting work, the lowest rank goes first, so when frames of many cameras arrive
together no camera is always served last; unranked work (REST, a frame's own extra steps) ranks 0.
"""

from __future__ import annotations

import atexit
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

_STOP = -1  # before everything queued: a stopping pool does not start queued work
_NOW = 0
_BACKGROUND = 1


class EnginePool:
    def __init__(self, *, workers: int, name: str, initializer: Callable[[], None]):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()  # first in, first out within a priority
        self._initializer = initializer
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()
        atexit.register(self.shutdown)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._put(_NOW, 0.0, fn, args, kwargs)

    def submit_ranked(self, rank: float, fn, /, *args, **kwargs) -> Future:
        """`fn` before waiting work of a higher rank (and after a lower one's), first in, first out within one."""
        return self._put(_NOW, rank, fn, args, kwargs)

    def submit_background(self, fn, /, *args, **kwargs) -> Future:
        """`fn` once no other submitted work is waiting."""
        return self._put(_BACKGROUND, 0.0, fn, args, kwargs)

    def _put(self, priority: int, rank: float, fn, args, kwargs) -> Future:
        future: Future = Future()
        self._queue.put((priority, rank, next(self._order), future, fn, args, kwargs))
        return future

    def shutdown(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._queue.put((_STOP, 0.0, next(self._order), None, None, (), {}))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _work(self) -> None:
        self._initializer()
        while True:
            priority, _, _, future, fn, args, kwargs = self._queue.get()
            if priority == _STOP:
                return
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # handed to whoever waits on the future, as an executor does
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            # Not held while waiting for the next task: a frame's pixels are freed now.
            del future, fn, args, kwargs
            result = None
