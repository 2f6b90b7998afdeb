"""How many decoder children each running prediction's front end gets, so that all of them
together stay near the host's cores instead of each taking every core."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class CoreShare:
    """A file that starts while n predictions run gets cores // n children (at least one). Files
    already running keep theirs, so the total can briefly exceed the cores while many start at
    once; it settles as they end. The children come from the warm pool (asr.media.pool), which
    keeps at most one per core for the next files."""

    def __init__(self, cores: int | None = None):
        self.cores = cores or usable_cores()
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    @contextlib.contextmanager
    def share(self, requested: int | None = None) -> Iterator[int]:
        with self._lock:
            self._active += 1
            n = self._active
        try:
            yield max(1, (requested or self.cores) // n)
        finally:
            with self._lock:
                self._active -= 1
