"""Progress on stderr for long work: bars on a terminal (tqdm), plain log lines otherwise.

`ProgressDisplay` is the pipeline's `progress(stage, done, total)` callback: "decode" reports
seconds of audio decoded (from the front end's thread; total unknown), "transcribe" reports
chunks transcribed of the total (known once decoding has ended). Nothing goes to stdout, which
holds only the result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("asr.progress")

LOG_EVERY_S = 30.0
"""Without a terminal, one line at most this often (a batch job's log stays readable)."""


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def screen(stream: TextIO) -> dict:
    """tqdm's width and height arguments for `stream`: the terminal's own, or 80x24 where it
    reports none (some pseudo-terminals say 0x0, and tqdm then prints empty bars)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        columns, lines = size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        columns = lines = 0
    return {"ncols": columns or 80, "nrows": lines or 24}


class ProgressDisplay:
    """Use as a context manager; call it as the pipeline's progress callback."""

    def __init__(self, label: str, stream: TextIO | None = None, interactive: bool | None = None,
                 log_every_s: float = LOG_EVERY_S):
        self.label = label
        self.stream = stream or sys.stderr
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        self.log_every_s = log_every_s
        self._bars: dict = {}
        self._ended: set[str] = set()
        """Stages whose bar was closed when they ended, so that its clock stopped there."""
        self._lock = threading.Lock()
        self._state = {"decode": 0.0, "transcribe": 0.0, "total": 0.0}
        self._start = time.monotonic()
        self._last_log = self._start
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "ProgressDisplay":
        if self.interactive:
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._stack.enter_context(logging_redirect_tqdm())  # log lines above the bars, not through them
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
        self._stack.close()

    def __call__(self, stage: str, done: float, total: float) -> None:
        with self._lock:
            self._state[stage] = done
            if stage == "transcribe" and total:
                self._state["total"] = total
            if self.interactive and stage not in self._ended:
                self._update_bar(stage, done, total)
                # The chunk total is known once decoding has ended; the last chunk ends the run.
                if stage == "transcribe" and total:
                    self._end("decode")
                    if done >= total:
                        self._end("transcribe")
            elif not self.interactive:
                self._maybe_log()

    def _end(self, stage: str) -> None:
        """Close the stage's bar now: its elapsed time and rate stop at the stage's end, instead
        of running on until the whole command finishes."""
        self._ended.add(stage)
        bar = self._bars.pop(stage, None)
        if bar is not None:
            bar.close()

    def _update_bar(self, stage: str, done: float, total: float) -> None:
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            if stage == "decode":
                bar = tqdm(desc=f"{self.label}: decoded", unit="s", file=self.stream, **screen(self.stream),
                           bar_format="{desc} {n:.1f} s of audio [{elapsed}, {rate_fmt}]", position=0)
            else:
                bar = tqdm(desc=f"{self.label}: transcribed", unit="chunk", total=total or None,
                           file=self.stream, **screen(self.stream), position=1)
            self._bars[stage] = bar
        if stage == "transcribe" and total and bar.total != total:
            bar.total = total
        if done > bar.n:
            bar.update(done - bar.n)

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._last_log < self.log_every_s:
            return
        self._last_log = now
        total = self._state["total"]
        log.info("%s: %.1f s of audio decoded, %d%s chunks transcribed, %.0f s elapsed", self.label,
                 self._state["decode"], self._state["transcribe"], f"/{total:.0f}" if total else "",
                 now - self._start)


class Waiting:
    """Elapsed time on a terminal while waiting for something that reports no progress (a
    server's answer); nothing otherwise. Use as a context manager; it ticks on its own thread."""

    def __init__(self, label: str, stream: TextIO | None = None, interactive: bool | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Waiting":
        if self.interactive:
            self._thread = threading.Thread(target=self._tick, name="waiting", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _tick(self) -> None:
        from tqdm import tqdm

        with tqdm(desc=self.label, file=self.stream, **screen(self.stream), bar_format="{desc} {elapsed}",
                  leave=False) as bar:
            while not self._stop.wait(0.5):
                bar.refresh()
