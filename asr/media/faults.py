"""A decoder child with a fault-injection hook, for tests only: `python -m asr.media.faults`.

The supervisor starts this entry point instead of `asr.media.child` only when
ASR_FAULT_INJECTION=1, so the production decode path carries no test code. A file starting with
`ASR-FAULT:<kind>` makes the process fail for real, the way a broken decoder would: crash
(SIGSEGV), abort (SIGABRT), hang (blocks), spin (burns CPU), oom (allocates until the memory
limit), exit (exits without a word). Any other file is decoded normally.
"""

from __future__ import annotations

import os
import sys
import time

from .child import main

FAULT_MAGIC = b"ASR-FAULT:"


def inject(path: str) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return
    if not head.startswith(FAULT_MAGIC):
        return
    rest = head[len(FAULT_MAGIC):].split()
    kind = rest[0].decode("ascii", "replace") if rest else ""
    if kind == "crash":
        import ctypes

        ctypes.string_at(0)  # a real segmentation fault
    elif kind == "abort":
        os.abort()
    elif kind == "hang":
        while True:
            time.sleep(3600)
    elif kind == "spin":
        while True:
            pass
    elif kind == "oom":
        hog = []
        while True:
            hog.append(bytearray(64 * 2**20))
    elif kind == "exit":
        os._exit(7)


if __name__ == "__main__":
    sys.exit(main(sys.argv, before_decode=inject))
