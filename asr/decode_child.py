"""Entry point of the decoder child process: `python -m asr.decode_child PATH LIMITS_JSON`.

It limits itself first (address space, CPU time, no core files), then streams framed messages
(see asr.audio) on its stdout. Nothing else may write to that descriptor, so stdout is moved to
a private descriptor and fd 1 is pointed at stderr before any library is imported.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def _limit_self(memory_bytes: int, cpu_s: float) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if cpu_s > 0:
        soft = int(cpu_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))


def main(argv: list[str]) -> int:
    out_fd = os.dup(1)
    os.dup2(2, 1)
    path, limits_json = argv[1], argv[2]

    from .types import AudioLimits

    limits = AudioLimits(**json.loads(limits_json))
    _limit_self(limits.decoder_memory_bytes, limits.decode_timeout_s)

    from .audio import DecodeSummary, StreamInfo, decode_blocks, write_message
    from .errors import ASRError

    try:
        if os.environ.get("ASR_FAULT_INJECTION") == "1":
            _inject_fault(path)
        for item in decode_blocks(path, limits):
            if isinstance(item, StreamInfo):
                write_message(out_fd, b"I", json.dumps(item.to_dict()).encode())
            elif isinstance(item, DecodeSummary):
                write_message(out_fd, b"S", json.dumps(item.__dict__).encode())
            else:
                write_message(out_fd, b"A", item.tobytes())
    except ASRError as e:
        write_message(out_fd, b"E", json.dumps({"type": type(e).__name__, "message": str(e)}).encode())
    except MemoryError:
        message = (
            f"decoding '{os.path.basename(path)}' needed more than the decoder's "
            f"{limits.decoder_memory_bytes // 2**20} MB memory limit; the file is probably damaged"
        )
        write_message(out_fd, b"E", json.dumps({"type": "DecoderFailure", "message": message}).encode())
    except BrokenPipeError:
        return 1  # the parent went away (cancelled or stopped): nothing left to tell
    except Exception as e:  # a bug here, not a bad file: say so instead of blaming the upload
        import traceback

        traceback.print_exc()  # to stderr, which the parent logs
        message = f"internal error in the audio decoder ({type(e).__name__}: {e}); please report it"
        write_message(out_fd, b"E", json.dumps({"type": "DecoderBug", "message": message}).encode())
    return 0


FAULT_MAGIC = b"ASR-FAULT:"


def _inject_fault(path: str) -> None:
    """Test hook, off unless ASR_FAULT_INJECTION=1: a file starting with `ASR-FAULT:<kind>` makes
    this process fail for real the way a broken decoder would, so tests can prove the server
    survives it. Kinds: crash (SIGSEGV), abort (SIGABRT), hang (blocks), spin (burns CPU),
    oom (allocates until the memory limit), exit (exits without a word)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return
    if not head.startswith(FAULT_MAGIC):
        return
    kind = head[len(FAULT_MAGIC):].split()[0].decode("ascii", "replace") if head[len(FAULT_MAGIC):].strip() else ""
    if kind == "crash":
        import ctypes

        ctypes.string_at(0)  # a real segmentation fault
    elif kind == "abort":
        os.abort()
    elif kind == "hang":
        import time

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
    sys.exit(main(sys.argv))
