"""Progress of `python -m asr transcribe`: bars on a terminal, none on a pipe, stdout only the result."""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
import threading

from asr.progress import ProgressDisplay
from tests.service import ROOT

SAMPLE = ROOT / "samples" / "en.mp3"


def _transcribe(tiny_model, stderr) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "asr", "transcribe", str(SAMPLE), "--model", str(tiny_model)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)


def test_bar_on_a_terminal_not_on_a_pipe(tiny_model):
    master, slave = pty.openpty()
    seen = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    on_tty = _transcribe(tiny_model, slave)
    on_pipe = _transcribe(tiny_model, subprocess.PIPE)  # at the same time: two cores, half the wait
    os.close(slave)
    on_tty_stdout, _ = on_tty.communicate(timeout=300)
    piped_stdout, piped_stderr = on_pipe.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    terminal = seen.decode(errors="replace")
    assert on_tty.returncode == 0, terminal
    assert "en.mp3: decoded" in terminal and "s of audio" in terminal, terminal
    assert "en.mp3: transcribed" in terminal and "chunk" in terminal and "\r" in terminal, terminal

    assert on_pipe.returncode == 0, piped_stderr
    assert b"\r" not in piped_stderr and b"transcribed" not in piped_stderr, piped_stderr
    assert piped_stdout == on_tty_stdout and piped_stdout.strip(), "stdout holds the result alone, either way"


def test_plain_lines_without_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="asr.progress")
    with ProgressDisplay("talk.mp3", interactive=False, log_every_s=0) as progress:
        progress("decode", 125.5, 0)
        progress("transcribe", 3, 7)
    lines = [r.getMessage() for r in caplog.records if r.name == "asr.progress"]
    assert lines[0].startswith("talk.mp3: 125.5 s of audio decoded, 0 chunks transcribed")
    assert lines[-1].startswith("talk.mp3: 125.5 s of audio decoded, 3/7 chunks transcribed")


def test_a_stage_s_clock_stops_when_the_stage_ends():
    """Decoding ends when the chunk total is known: its bar must not keep counting seconds (and
    lowering its rate) while the model works on."""
    import io
    import time

    stream = io.StringIO()
    with ProgressDisplay("talk.mp3", stream=stream, interactive=True) as progress:
        progress("decode", 720.0, 0)
        progress("transcribe", 1, 0)
        progress("transcribe", 2, 5)  # decoding has ended: 5 chunks in all
        decode_shown = stream.getvalue()
        time.sleep(1.2)
        progress("decode", 720.0, 0)  # a late report from the front end's thread changes nothing
        progress("transcribe", 5, 5)
    after = stream.getvalue()  # the bars as left on the screen, after the command's end
    decode_lines = [line for line in after.replace("\r", "\n").splitlines() if "decoded" in line]
    assert decode_lines and all("[00:00" in line for line in decode_lines), decode_lines
    assert after.count("decoded 720.0 s of audio") == decode_shown.count("decoded 720.0 s of audio")
    assert "5/5" in after
