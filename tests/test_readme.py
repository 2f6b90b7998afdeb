"""The README's examples run as written, and its quoted errors and warnings are the real ones.

A README that a newcomer follows literally must not go stale: every `asr segment`, `asr
tiny-model`, `asr transcribe` and `export` line in its code blocks (the ones that need no server
and no real weights) runs here in order, in one shell, from the project root; the errors and
warnings it quotes are produced by the code that writes them and compared character for
character.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.service import ROOT, ensure_tiny_model

README = (ROOT / "README.md").read_text()
RUNNABLE = ("asr segment ", "asr tiny-model ", "asr transcribe ", "export ASR_")


def code_lines(text: str) -> list[str]:
    """Lines of the indented code blocks (4 spaces after a blank line), comments dropped."""
    out, in_block, previous_blank = [], False, True
    for line in text.splitlines():
        if line.startswith("    ") and (in_block or previous_blank):
            in_block = True
            out.append(line[4:])
        elif line.strip():
            in_block = False
        previous_blank = not line.strip()
    return out


def runnable_examples() -> list[str]:
    commands = []
    for line in code_lines(README):
        command = re.sub(r"\s+#.*$", "", line).strip()  # '#' inside these commands only starts comments
        if command.startswith(RUNNABLE):
            commands.append(command)
    return commands


def test_the_readme_has_the_examples_this_test_runs():
    commands = runnable_examples()
    kinds = [c.split()[0:2] for c in commands]
    assert ["asr", "segment"] in kinds and ["asr", "tiny-model"] in kinds and ["asr", "transcribe"] in kinds, commands


def test_readme_examples_run_as_written(tmp_path):
    """Each example line runs in one bash, in order, with `asr` on PATH as `make venv` puts it and
    /tmp/ standing for a private folder. `asr tiny-model OUT --kind K` lines are checked by the
    CLI's own parser and served from the tests' cache of the same command's output (building
    four models again would double this test's time); everything else runs as written."""
    from asr.__main__ import build_parser

    commands = runnable_examples()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "asr"  # what the `asr` console script does, with this interpreter
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m asr \"$@\"\n")
    shim.chmod(0o755)
    work = tmp_path / "tmp"
    work.mkdir()
    script = ["set -e"]
    for command in commands:
        command = command.replace("/tmp/", f"{work}/")
        words = shlex.split(command)
        if words[:2] == ["asr", "tiny-model"]:
            args = build_parser().parse_args(words[1:])
            shutil.copyfile(ensure_tiny_model(args.kind), args.out)
            continue
        redirect = re.search(r">\s*(\S+)$", command)
        if redirect:  # written next to the project in the README; here into the private folder
            command = command[: redirect.start()] + f"> {shlex.quote(str(work / Path(redirect.group(1)).name))}"
        script.append(f"echo '$ {command}' >&2; {command}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASR_")}  # the README's own settings only
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stdout.count("Hello world! The quick brown fox.") >= 2, r.stdout[-2000:]
    assert '"chunks"' in r.stdout  # asr segment's plan
    srt = [p for p in work.iterdir() if p.suffix == ".srt"]
    assert srt and srt[0].read_text().startswith("1\n00:00:"), srt
    noise = [line for line in r.stderr.splitlines() if line and not line.startswith("$ ")]
    assert noise == [], "the README's commands print nothing on stderr but their own warnings: " + "\n".join(noise)


def quoted(text: str) -> bool:
    return text in README


def test_quoted_refusals_are_the_real_ones():
    from asr.languages import CODES, pivot_pairs
    from asr.models.capabilities import Capabilities
    from asr.routing import Routing, prompts

    canary = Capabilities(languages=frozenset(CODES), translation_pairs=pivot_pairs(CODES), timestamps="aligner",
                          word_timestamps=True, needs_prompt=True)
    with pytest.raises(Exception) as e:
        canary.resolve("de", "fr", "nvidia/canary-1b-v2")
    assert quoted(f"`{e.value}`"), str(e.value)
    assert len(str(e.value)) <= 400
    routing = Routing("de", 0.97, ("de",), (0.97,), (("de", 0.97),))
    with pytest.raises(Exception) as e:
        prompts(routing, "fr", pivot_pairs(CODES))
    assert quoted(f"`{e.value}`"), str(e.value)
    assert len(str(e.value)) <= 400


def test_quoted_decoder_errors_are_the_real_ones(tmp_path):
    import av

    from asr.client import failure_message
    from asr.errors import ASRError
    from asr.media import decode

    png = tmp_path / "holiday.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    with pytest.raises(ASRError) as e:
        decode(png)
    assert quoted(f"`{e.value}`"), str(e.value)
    # the client's line for the same file sent as holiday.mp3 (coglet's prefixes stripped)
    served = "Async prediction failed: InputError: " + str(e.value).replace("'holiday.png'", "the uploaded file")
    assert quoted(f"error: the prediction failed: {failure_message(served, 'photos/holiday.mp3')}\n"), served

    silent = tmp_path / "silent.mp4"
    with av.open(str(silent), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(ASRError) as e:
        decode(silent)
    assert quoted(f"`{e.value}`"), str(e.value)


def test_quoted_warning_is_the_real_one(tmp_path, speech_16k):
    from asr.frontend import FrontEnd
    from tests.media import write_pcm16_wav

    left = speech_16k[: 6 * 16_000]
    path = write_pcm16_wav(tmp_path / "interview.wav", np.stack([left, np.zeros_like(left)]), 16_000)
    run = FrontEnd().run(path)
    for _ in run:
        pass
    summary = run.summary
    assert summary.warnings, "a silent channel is reported"
    for warning in summary.warnings:
        assert quoted(f"`{warning}`"), warning


def test_preflight_message_quoted_in_the_readme_is_the_real_one(monkeypatch):
    from asr import preflight

    monkeypatch.setenv("ASR_MODEL", "nvidia/canary-1b-v2")
    monkeypatch.setenv("ASR_LID_MODEL", "none")
    monkeypatch.setenv("ASR_DIAR_MODEL", "none")
    monkeypatch.setattr(preflight, "cached", lambda name: False)  # whatever this machine has downloaded
    why = "cannot reach https://huggingface.co ([Errno -2] Name or service not known)"
    message = "error: the service could not start: " + preflight.report(preflight.check_models(hub=lambda: why))
    assert quoted("\n".join("    " + line for line in message.splitlines()) + "\n"), message
