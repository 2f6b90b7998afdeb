"""Fences two of coglet 0.23.1's faults from inside the worker: files it leaves behind.

- URL inputs are downloaded by Cog's Python side (`cog.types.URLPath.convert`) into a
  `tempfile.NamedTemporaryFile` that nobody removes when the download fails, or when the request
  is cancelled or its client goes away (the download runs on to the end). Repeated, this fills
  the disk. `setup()` points `tempfile` at a folder of the service's own (`use_private_tempdir`),
  and a sweeper thread removes what no running prediction owns once it has stopped changing.
- Every request leaves an empty `/tmp/coglet/predictions/<id>/` (with empty `inputs/` and
  `outputs/`) forever. The sweeper removes such folders once they are old; it never removes one
  that holds a file.

A live download writes at least every 10 s (coglet's read timeout), so a file unchanged for
`stale_s` (default 60 s) is no download in progress; a prediction's input is protected by
`owning()` for as long as run() uses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DOWNLOAD_NAME = re.compile(r"tmp[a-z0-9_]{8}.+")
"""Cog's download names: tempfile's prefix and 8 random characters, then the URL's file name."""
PRIVATE_PREFIX = "asr-downloads-"
COGLET_PREDICTIONS = Path("/tmp/coglet/predictions")
"""Where coglet 0.23.1 makes a folder per prediction (a fixed path, not $TMPDIR)."""


@dataclass(frozen=True)
class SweepOptions:
    downloads_dir: Path
    """The service's own temp folder (see use_private_tempdir); only its files are swept."""
    coglet_dir: Path = COGLET_PREDICTIONS
    stale_s: float = 60.0
    """A file or folder unchanged this long, and owned by no running prediction, is an orphan."""
    interval_s: float = 30.0


@dataclass(frozen=True)
class SweepReport:
    files_removed: int = 0
    bytes_freed: int = 0
    folders_removed: int = 0
    names: tuple[str, ...] = field(default=(), repr=False)


def use_private_tempdir(base: str | os.PathLike | None = None) -> Path:
    """Make a folder of this process's own (mode 0700) and point `tempfile` (so Cog's downloads)
    at it; folders left by earlier workers that have exited are removed first."""
    base_dir = Path(base or tempfile.gettempdir())
    for old in base_dir.glob(PRIVATE_PREFIX + "*"):
        pid = old.name[len(PRIVATE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-", dir=base_dir))
    tempfile.tempdir = str(path)
    return path


class Sweeper:
    """Removes orphaned downloads and coglet's empty prediction folders, every `interval_s` on a
    daemon thread (start/stop), or once (sweep_once, for tests and shutdown)."""

    def __init__(self, options: SweepOptions, clock: Callable[[], float] = time.time):
        self.options = options
        self._clock = clock
        self._owned: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def owning(self, path: str | os.PathLike) -> Iterator[None]:
        """While inside, `path` belongs to a running prediction and is never swept."""
        key = os.path.abspath(path)
        with self._lock:
            self._owned.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._owned.discard(key)

    def sweep_once(self) -> SweepReport:
        now = self._clock()
        files = bytes_freed = folders = 0
        names: list[str] = []
        with self._lock:
            owned = set(self._owned)
        try:
            entries = list(os.scandir(self.options.downloads_dir))
        except OSError:
            entries = []
        for entry in entries:
            if not DOWNLOAD_NAME.fullmatch(entry.name) or entry.path in owned:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < self.options.stale_s:
                    continue
                os.unlink(entry.path)
            except OSError:
                continue
            files += 1
            bytes_freed += st.st_size
            names.append(entry.name)
        try:
            folders_in = list(os.scandir(self.options.coglet_dir))
        except OSError:
            folders_in = []
        for entry in folders_in:
            if self._empty_and_stale(Path(entry.path), now):
                try:
                    shutil.rmtree(entry.path)
                except OSError:
                    continue
                folders += 1
        if files or folders:
            log.info("swept %d orphaned download%s (%.1f MB) and %d empty prediction folder%s",
                     files, "" if files == 1 else "s", bytes_freed / 1e6, folders, "" if folders == 1 else "s")
        return SweepReport(files, bytes_freed, folders, tuple(names))

    def _empty_and_stale(self, folder: Path, now: float) -> bool:
        """A real folder of this user's, holding only (empty) folders, none changed lately."""
        try:
            st = folder.lstat()
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                return False
            for root, dirs, files in os.walk(folder, followlinks=False):
                if files or any(os.path.islink(os.path.join(root, d)) for d in dirs):
                    return False
                if now - os.lstat(root).st_mtime < self.options.stale_s:
                    return False
        except OSError:
            return False
        return True

    def start(self) -> "Sweeper":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="temp-sweeper", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.options.interval_s):
            try:
                self.sweep_once()
            except Exception:  # a sweep must never take the worker down; say so and go on
                log.exception("temp sweep failed")
