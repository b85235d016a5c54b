"""An in-memory cache for failure counters that drops only expired entries.

Django's LocMemCache culls a third of its entries, live ones included, once it holds MAX_ENTRIES
(300 by default): any request that caches something could then push a failure counter out and
reset its budget. Here an entry only goes when its window ends; memory grows with the number of
networks that failed within one window, which the per-address throttle keeps in proportion to
the traffic actually seen.
"""

from __future__ import annotations

import time

from django.core.cache.backends.locmem import LocMemCache


class ExpiringOnlyLocMemCache(LocMemCache):
    def __init__(self, name, params):
        super().__init__(name, params)
        self._next_sweep = 0.0

    def _cull(self) -> None:
        # Called under the cache's lock whenever the entry count reaches MAX_ENTRIES; sweep the
        # expired ones at most once a second so a large live set costs no scan per write.
        now = time.time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for key in [key for key, expiry in self._expire_info.items() if expiry is not None and expiry <= now]:
            self._delete(key)
