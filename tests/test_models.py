"""Every model family through the real Cog server (Canary, Parakeet-TDT and CTC tiny models loaded
together): transcription on the original timeline, the `model` input, refusals, chunk order."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from asr.errors import LanguageError, ModelLoadError, UnknownModelError
from asr.models import Capabilities, ModelSet, parse_spec
from asr.testing import ctc as tiny_ctc_kind
from asr.testing import parakeet as tiny_parakeet_kind
from asr.testing.canary import TINY_PHRASE
from asr.testing.timed_words import FRAME_S, word_frame
from tests.conftest import ROOT


def data_uri(path: Path, mime: str = "audio/wav") -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def speech60(shared_audio):
    """Silero's 60 s clip and its chunk plan (`python -m asr segment`): three chunks of
    different lengths, which the CPU batch of 4 sends to the model together."""
    path = shared_audio / "test.wav"
    r = subprocess.run([sys.executable, "-m", "asr", "segment", str(path), "--compact"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=True)
    plan = json.loads(r.stdout)
    return path, plan["chunks"]


def to_original_s(chunk: dict, local_s: float) -> float:
    """A chunk-local time on the original timeline (through the chunk's speech spans)."""
    for start, end in chunk["spans"]:
        if local_s <= end - start:
            return start + local_s
        local_s -= end - start
    return chunk["spans"][-1][1]


@pytest.mark.parametrize("kind", [tiny_parakeet_kind, tiny_ctc_kind], ids=["parakeet-tdt", "ctc"])
def test_each_family_transcribes_on_the_original_timeline(server, speech60, tiny_parakeet, tiny_ctc, kind):
    path, chunks = speech60
    model_path = tiny_parakeet if kind is tiny_parakeet_kind else tiny_ctc
    per_chunk = [kind.expected_words(c["duration_s"]) for c in chunks]
    assert len(chunks) >= 3 and len({len(w) for w in per_chunk}) == len(chunks)  # order is visible
    status, body = server.predict(audio=data_uri(path), model=model_path.stem,
                                  source_lang="hi" if kind is tiny_ctc_kind else "en")
    assert body["status"] == "succeeded", body
    out = body["output"]
    assert out["model"] == model_path.stem  # the file's name: never the server's path
    # every chunk's words, in time order: a result attached to the wrong chunk changes the text
    assert out["text"].split() == [w for words in per_chunk for w in words]
    words = [w for s in out["segments"] for w in s["words"]]
    assert [w["word"] for w in words] == out["text"].split()
    # each word at its frame, mapped through its chunk's spans. TDT: starts exactly there. CTC:
    # NeMo's word runs from the previous word's frame to its own, and the pipeline keeps a word
    # that crosses a seam between spans inside one span: it lies between the two frames.
    expected = [to_original_s(c, word_frame(k) * FRAME_S) for c, ws in zip(chunks, per_chunk)
                for k in range(1, len(ws) + 1)]
    for i, (w, t) in enumerate(zip(words, expected)):
        assert isinstance(w["start"], float) and isinstance(w["end"], float)
        if kind is tiny_parakeet_kind:
            assert w["start"] == pytest.approx(t, abs=0.011), (w, t)
        else:
            assert expected[i - 1] - 0.011 <= w["start"] <= w["end"] <= t + 0.011 if i else w["end"] == pytest.approx(t, abs=0.011), (w, t)
    for s in out["segments"]:
        assert s["start"] <= s["words"][0]["start"] and s["words"][-1]["end"] <= s["end"]
    assert len(list(srt.parse(out["srt"]))) == len(out["segments"])
    assert len(webvtt.from_string(out["vtt"]).captions) == len(out["segments"])
    assert server.ready()


def test_model_input_switches_models(server, shared_audio, tiny_model, tiny_parakeet):
    uri = data_uri(shared_audio / "jfk.flac", "audio/flac")
    _, default = server.predict(audio=uri)
    _, parakeet = server.predict(audio=uri, model=tiny_parakeet.name)  # the file name works too
    _, canary = server.predict(audio=uri, model=tiny_model.stem, target_lang="de")
    assert default["output"]["model"] == tiny_model.stem and default["output"]["text"] == TINY_PHRASE
    assert parakeet["output"]["model"] == tiny_parakeet.stem
    assert parakeet["output"]["text"].startswith("one two three")
    assert canary["output"]["task"] == "translate"
    assert server.ready()


@pytest.mark.parametrize("inputs, fragments", [
    ({"model": "parakeet", "source_lang": "en", "target_lang": "de"}, ["does not translate", "tiny-parakeet-tdt"]),
    ({"model": "parakeet", "target_lang": "de"}, ["detected as English (en)", "does not translate"]),
    ({"model": "ctc", "source_lang": "pl"}, ["source_lang 'pl' is not supported", "tiny-ctc", "hi (Hindi)"]),
    ({"model": "ctc", "source_lang": "hi", "target_lang": "en"}, ["does not translate"]),
    ({"model": "canary", "source_lang": "de", "target_lang": "fr"}, ["cannot translate", "from de it translates to en"]),
    ({"model": "whisper"}, ["model 'whisper' is not loaded", "tiny-canary", "tiny-parakeet-tdt", "tiny-ctc"]),
], ids=["parakeet-translate", "parakeet-auto-translate", "ctc-polish", "ctc-translate", "canary-de-fr", "unknown-model"])
def test_refusals_name_the_model_and_what_it_accepts(server, shared_audio, tiny_model, tiny_parakeet, tiny_ctc,
                                                     inputs, fragments):
    stems = {"parakeet": tiny_parakeet.stem, "ctc": tiny_ctc.stem, "canary": tiny_model.stem}
    inputs = {**inputs, "model": stems.get(inputs["model"], inputs["model"])}
    status, body = server.predict(audio=data_uri(shared_audio / "jfk.flac", "audio/flac"), **inputs)
    assert body["status"] == "failed", body
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    assert server.ready()


def test_capabilities_resolve_without_a_model():
    hindi = Capabilities(languages=frozenset({"hi"}), timestamps="native", word_timestamps=True)
    assert hindi.resolve(" HI ", None, "m") == ("hi", "hi", "transcribe")
    assert hindi.resolve("hi", "hi", "m") == ("hi", "hi", "transcribe")
    undeclared = Capabilities(picks_language=True, timestamps="native")
    assert undeclared.resolve("sw", "", "m") == ("sw", "sw", "transcribe")
    with pytest.raises(LanguageError, match="'xx' is not supported"):
        undeclared.resolve("xx", None, "m")
    with pytest.raises(ValueError):
        Capabilities(timestamps="sometimes")


def test_asr_model_entries_and_annotations():
    entries = parse_spec("a.nemo[hi], nvidia/parakeet-tdt-0.6b-v3, b.nemo[en de]")
    assert [(e.name, sorted(e.languages)) for e in entries] == [
        ("a.nemo", ["hi"]), ("nvidia/parakeet-tdt-0.6b-v3", []), ("b.nemo", ["de", "en"])]
    with pytest.raises(ModelLoadError, match="unknown language"):
        parse_spec("a.nemo[klingon]")
    with pytest.raises(ModelLoadError, match="twice"):
        parse_spec("a.nemo,a.nemo")


def test_model_set_lookup():
    class Fake:
        def __init__(self, name, langs):
            self.name, self.capabilities = name, Capabilities(languages=frozenset(langs))

    models = ModelSet([Fake("/m/tiny-canary.nemo", ["en", "de"]), Fake("nvidia/x", ["hi"])])
    assert models.default.name == "/m/tiny-canary.nemo"
    assert models.get(None) is models.default and models.get("tiny-canary") is models.default
    assert models.get("tiny-canary.nemo") is models.default and models.get("nvidia/x").name == "nvidia/x"
    assert models.all_languages() == {"en", "de", "hi"}
    assert models.get("x").name == "nvidia/x"  # the name without the organisation
    with pytest.raises(UnknownModelError, match="loaded: tiny-canary, nvidia/x"):
        models.get("y")


def test_no_server_path_in_outputs_or_model_errors(server, shared_audio, tiny_model):
    """`model` in the output and every model refusal use public names (here the checkpoints'
    file names); a 5,000-character unknown name is echoed cut, not whole."""
    from tests.service import ROOT

    uri = data_uri(shared_audio / "jfk.flac", "audio/flac")
    _, ok = server.predict(audio=uri, source_lang="en")
    assert ok["output"]["model"] == tiny_model.stem
    _, long = server.predict(audio=uri, model="m" * 5000)
    assert long["status"] == "failed" and len(long["error"]) < 600, len(long["error"])
    assert "m" * 99 + "…" in long["error"] and tiny_model.stem in long["error"]
    _, pair = server.predict(audio=uri, model=tiny_model.stem, source_lang="de", target_lang="fr")
    for text in (str(ok["output"]), long["error"], pair["error"]):
        assert str(ROOT) not in text and ".cache/" not in text and ".nemo" not in text, text
